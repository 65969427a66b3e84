"""What a human sends to a running incident. Field names are what a person types in the Temporal UI."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from schemas.signatures import SignedDecision


class ApprovalRequest(BaseModel):
    """One named action the runbook asks a human to approve."""

    action: str
    recommendation: str
    risk: str
    requested_by: str = "stanch"
    allowed_roles: list[str] = Field(default_factory=list, description="empty: any approver in the policy")
    required_approvals: int = Field(1, ge=1, description="distinct approvers needed to approve")
    destructive: bool = False
    safe_default: str = Field(description="what happens if nobody answers; never destructive")


class ApprovalAnswer(BaseModel):
    """Payload of the `approve` and `reject` signals."""

    approver: str
    action: str | None = None
    comment: str = ""
    # Only a customer message's review reads it: the text to send instead of the draft. Absent in every
    # payload sent before it existed, and ignored by every other gate.
    text: str | None = Field(None, description="send-customer-message only: replaces the draft")
    # A signed decision (issue 13): `stanch approve --key` or `stanch sign` makes it. Absent in every payload
    # sent before signatures existed; the policy says where one is needed.
    signed: SignedDecision | None = None
    digest: str | None = Field(
        None, description="unsigned answers may name the digest of what they read; another one is stale"
    )


class Decision(ApprovalAnswer):
    """Payload of the `decide` update: the same fields plus the verdict."""

    approved: bool


class DecisionOutcome(BaseModel):
    accepted: bool
    action: str
    approved: bool
    approver: str
    detail: str = ""


class ApprovalOutcome(BaseModel):
    """How an approval gate closed."""

    action: str
    approved: bool
    decided_by: str
    comment: str = ""
    decided_at: datetime
    escalated: bool = False
    timed_out: bool = False


class Acknowledgement(BaseModel):
    by: str


class EscalationRequest(BaseModel):
    by: str
    reason: str = ""


class Resolution(BaseModel):
    by: str
    note: str = ""
    # Resolving withdraws a pending question, so a policy may need it signed (`stanch resolve --key`).
    signed: SignedDecision | None = None
    digest: str | None = None


class RefusedAttempt(BaseModel):
    """Payload of the `refused_attempt` signal: a client that refused a person's action on this incident
    (the console, for a button the person's roles do not allow) tells the incident, which notes it in its
    timeline and writes the audit row, so its hash chain keeps one writer. It changes nothing else."""

    by: str = Field(min_length=1, description="who tried")
    action: str = Field(min_length=1, description="what they tried, e.g. approve rollback")
    reason: str = Field(description="why it was refused")
    via: str = Field("", description="the client that refused it, e.g. console")
