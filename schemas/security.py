"""Requests and results of the security-incident effects: kill switch, evidence, gold set, post-mortem."""

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


class EvidenceRequest(BaseModel):
    idempotency_key: str = Field("", description=SET_BY_ACT)
    incident_id: str
    agent_id: str
    kind: str = Field("", description="what monitoring called it: prompt_injection, exfiltration …")
    summary: str = ""


class EvidenceBundle(BaseModel):
    evidence_id: str
    events: int
    cause: str
    impact: str
    tools: list[str] = Field(default_factory=list)
    replayed: bool = False


class GoldSetRun(BaseModel):
    agent_id: str
    version: str
    score: float
    threshold: float
    passed: bool
    replayed: bool = False


class PostMortemRequest(BaseModel):
    idempotency_key: str = Field("", description=SET_BY_ACT)
    incident_id: str
    subject: str
    what_happened: str
    root_cause: str
    impact: str
    remediation: str
    prevention: list[str] = Field(default_factory=list)
    timeline: list[str] = Field(default_factory=list)


class PostMortemReceipt(BaseModel):
    id: str
    replayed: bool = False
