"""The evidence locker's own state: what it stored, under which id and when. The contract's bodies and
answers (security events, the evidence body, its receipt) are `schemas/agents.py`."""

from __future__ import annotations

from schemas.agents import EvidenceBody
from schemas.agents import SecurityEvent as SecurityEvent  # the scenario set-up and the state keep it


class Evidence(EvidenceBody):
    evidence_id: str
    at: str
