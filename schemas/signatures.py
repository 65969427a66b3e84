"""A signed decision: what a person's key signs when they answer a gate (issue 13). The statement names the
incident, the gate and what the gate showed (its digest), so a signature cannot be moved to another
incident, gate, action or recommendation; stanch/signing.py encodes, signs and verifies it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, Field, field_validator

# What a signature can decide. `resolve`, `run_runbook` and the kill switch's are here because each can
# undo a safety (issue 13 §4); `acknowledge` and `escalate` stay unsigned.
Verdict = Literal["approve", "reject", "resolve", "run_runbook", "kill_switch_off", "kill_switch_disengage"]


class DecisionStatement(BaseModel):
    """Exactly what is signed; every field is part of the signed bytes."""

    workflow_id: str = Field(min_length=1)
    run_id: str = Field(min_length=1)
    gate: str = Field(description="the step or gate id the decision answers")
    action: str
    verdict: Verdict
    approver: str = Field(min_length=1, description="a name under [people]")
    expires_at: datetime = Field(description="UTC; checked by the caller against workflow time")
    digest: str = Field(pattern=r"^[0-9a-f]{64}$", description="hex SHA-256 of what the gate showed")
    nonce: str = Field(min_length=1, description="makes each statement unique, so a replay is seen")

    @field_validator("expires_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        # A naive time means different instants on different machines; the signed bytes must not.
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("expires_at needs a time zone (UTC)")
        return value.astimezone(UTC)


class SignedDecision(BaseModel):
    statement: DecisionStatement
    signature: str = Field(description="base64 of the Ed25519 signature over statement_bytes(statement)")
    key: str = Field(description="fingerprint of the signing key, as `ssh-keygen -lf` prints it")


VerificationFailure = Literal["malformed", "unknown_key", "key_of_another_person", "bad_signature"]


class Verification(BaseModel):
    ok: bool
    reason: VerificationFailure | None = None
    detail: str = Field("", description="for the person refused: what was wrong and what to do")
    key: str = Field("", description="fingerprint of the key the signature claims")
