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
    via: str = Field(
        "",
        description="a trusted service (e.g. the console) asserting the approver it signed in; empty: "
        "the approver signed with their own key",
    )

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


# Where a policy needs signatures (`[approvals] signatures`): every decision; only those that can destroy or
# undo a safety (the shipped policy); or nowhere — a signature given is still checked.
SignatureMode = Literal["required", "destructive", "optional"]


class Keyring(BaseModel):
    """The public keys decisions are checked against: each person's, and each trusted service's (a service
    signs for a person it signed in: `via`). Copied into an incident when it starts, and replaced by the
    `keys` signal when the policy's keys change, so history holds the keys in force at every event."""

    people: dict[str, list[str]] = Field(default_factory=dict, description="person → OpenSSH key lines")
    services: dict[str, list[str]] = Field(default_factory=dict, description="service → OpenSSH key lines")


class GateShown(BaseModel):
    """What a person sees and signs: the structured fields of a question, never its rendered text. The
    digest of these fields (`stanch.signing.gate_digest`) is what a signature binds to."""

    action: str
    recommendation: str = ""
    risk: str = ""
    target: dict[str, str] = Field(default_factory=dict)
    required_approvers: list[str] = Field(
        default_factory=list, description="who may decide, by role or name, as the gate asks"
    )
    required_approvals: int = 1


class ToSign(BaseModel):
    """One decision an incident can take now, with everything a client needs to sign it (the brief lists
    them): `stanch.signing.statement_for(to_sign, ...)` builds the statement."""

    workflow_id: str
    run_id: str
    gate: str = Field(description="the question's id: gate1, gate2, …, resolve, triage, kill-switch")
    verdicts: list[Verdict] = Field(description="what may be answered: approve and reject, or resolve, …")
    shown: GateShown
    digest: str = Field(description="gate_digest(shown); an answer over another digest is refused as stale")
    signature_needed: bool = Field(description="the policy refuses this decision unsigned")
