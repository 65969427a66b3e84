"""Requests and results of the security-incident effects: kill switch, evidence, gold set, post-mortem."""

from __future__ import annotations

from pydantic import BaseModel, Field


class KillSwitchRequest(BaseModel):
    """Turn a subsystem's guardrail kill switch on (or off); the key makes a retried call count once."""

    idempotency_key: str
    subsystem: str
    enabled: bool = True
    by: str
    reason: str


class KillSwitchResult(BaseModel):
    subsystem: str
    kill_switch: bool
    changes: int = Field(description="kill-switch changes over the guardrail's life")


class EvidenceRequest(BaseModel):
    idempotency_key: str
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
    idempotency_key: str
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
