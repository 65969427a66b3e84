"""A stand-in that records every `keys` signal it gets, so `stanch keys sync` can be tested for what it
sends and to whom: started with the StanchRunbook search attribute it is listed like an incident; without
it, like any other workflow in the namespace (which must get nothing)."""

from __future__ import annotations

from pydantic import BaseModel, Field
from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from schemas.signatures import Keyring


class KeysProbeInput(BaseModel):
    finish_at_once: bool = False


class KeysReceived(BaseModel):
    keyrings: list[Keyring] = Field(default_factory=list)


@workflow.defn(name="keys_probe")
class KeysProbe:
    def __init__(self) -> None:
        self.received = KeysReceived()

    @workflow.run
    async def run(self, params: KeysProbeInput) -> KeysReceived:
        if not params.finish_at_once:
            await workflow.wait_condition(lambda: False)  # parked like an incident waiting for a person
        return self.received

    @workflow.signal(name="keys")
    def on_keys(self, keyring: Keyring) -> None:
        self.received.keyrings.append(keyring)

    @workflow.query(name="received")
    def get_received(self) -> KeysReceived:
        return self.received
