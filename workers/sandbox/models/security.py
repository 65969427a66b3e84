"""Wire models of the security side: an agent's security events and the evidence locker."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class SecurityEvent(BaseModel):
    at: str
    kind: str = Field(description="prompt_injection, exfiltration, tool_abuse, anomaly …")
    detail: str
    tool: str | None = None


class EvidenceIn(BaseModel):
    incident_id: str
    agent_id: str
    cause: str
    impact: str
    events: list[SecurityEvent] = []
    agent_history: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []


class Evidence(EvidenceIn):
    evidence_id: str
    at: str


class EvidenceReceipt(BaseModel):
    evidence_id: str
    events: int
    replayed: bool = False
