"""The security runbook's kill switch: a Temporal update to the subsystem's guardrail, not a system.

What the agent platform takes and answers (token revocation, evidence, gold set) is in `schemas/agents.py`;
the post-mortem in `schemas/documents.py`."""

from __future__ import annotations

from pydantic import BaseModel, Field

from schemas.actions import SET_BY_ACT
from schemas.guardrail import KillSwitchMode


class KillSwitchRequest(BaseModel):
    """Set a subsystem's guardrail kill switch; the key makes a retried call count once. `mode` (engaged
    for a security incident) wins; runs recorded before the modes sent `enabled` alone (true: armed)."""

    idempotency_key: str = Field("", description=SET_BY_ACT)
    subsystem: str
    enabled: bool = True
    mode: KillSwitchMode | None = None
    by: str
    reason: str


class KillSwitchResult(BaseModel):
    subsystem: str
    kill_switch: bool = Field(description="anything but off")
    mode: KillSwitchMode | None = Field(None, description="None in results recorded before the modes")
    changes: int = Field(description="kill-switch changes over the guardrail's life")
