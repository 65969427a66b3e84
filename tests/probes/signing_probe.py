"""A workflow that verifies one signed decision inside the workflow sandbox, run in a fresh interpreter
(`python -m tests.probes.signing_probe <signed decision JSON> <public key line>`): it prints the refusal or
"accepted". Fresh, because what breaks is a process that has not used an OpenSSH key outside the sandbox
before a workflow does — a worker whose own policy holds no keys, or `stanch audit replay`."""

from __future__ import annotations

import asyncio
import sys
import uuid
from pathlib import Path

from pydantic import BaseModel
from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from schemas.signatures import Keyring, SignedDecision
    from stanch.signing import Expected, check_decision


class SigningProbeInput(BaseModel):
    signed: SignedDecision
    keyring: Keyring


@workflow.defn(name="signing_probe")
class SigningProbe:
    @workflow.run
    async def run(self, params: SigningProbeInput) -> str:
        statement = params.signed.statement
        expected = Expected(
            workflow_id=statement.workflow_id,
            run_id=statement.run_id,
            gate=statement.gate,
            action=statement.action,
            verdict=statement.verdict,
            approver=statement.approver,
            digest=statement.digest,
        )
        try:
            refusal = check_decision(
                params.signed,
                expected=expected,
                keyring=params.keyring,
                now=workflow.now(),
                seen=set(),
                signature_needed=True,
            )
        except Exception as error:  # said, not retried for ever as a failed workflow task would be
            return f"{type(error).__name__}: {error}"
        return refusal or "accepted"


async def main(signed_json: str, public_line: str) -> None:
    from temporalio.contrib.pydantic import pydantic_data_converter
    from temporalio.testing import WorkflowEnvironment
    from temporalio.worker import Worker

    approver = SignedDecision.model_validate_json(signed_json).statement.approver
    params = SigningProbeInput(
        signed=SignedDecision.model_validate_json(signed_json),
        keyring=Keyring(people={approver: [public_line]}),
    )
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter,
        test_server_existing_path=str(Path(sys.executable).parent / "temporal-test-server"),
    )
    try:
        async with Worker(env.client, task_queue="signing-probe", workflows=[SigningProbe]):
            result = await env.client.execute_workflow(
                SigningProbe.run, params, id=f"signing-probe-{uuid.uuid4().hex}", task_queue="signing-probe"
            )
        print(result, flush=True)
    finally:
        await env.shutdown()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
