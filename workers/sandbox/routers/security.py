"""The security side: an agent's security events, and the evidence locker."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from schemas.agents import AccessLogEntry, EvidenceBody, EvidenceReceipt, SecurityEvent
from workers.sandbox.common import now_iso
from workers.sandbox.dependencies import SandboxDep, require_idempotency_key
from workers.sandbox.models.security import Evidence

# Reads: not effects a runbook performs, so no key is needed.
router = APIRouter()
# Everything on this router changes the stand-in's state, so it must be safe to retry.
effects = APIRouter(dependencies=[Depends(require_idempotency_key)])


@router.get("/agents/{agent_id}/security-events")
async def get_security_events(sandbox: SandboxDep, agent_id: str) -> list[SecurityEvent]:
    sandbox.agent(agent_id)
    return sandbox.security_events.get(agent_id, [])


@router.get("/agents/{agent_id}/access-log")
async def get_access_log(sandbox: SandboxDep, agent_id: str) -> list[AccessLogEntry]:
    """The calls the platform received about the agent, oldest first: the platform's own access log, kept
    as evidence by the security runbook."""
    sandbox.agent(agent_id)
    prefix = f"/agents/{agent_id}/"
    return [
        AccessLogEntry.model_validate(call.model_dump())
        for call in sandbox.calls
        if call.path.startswith(prefix)
    ]


@effects.post("/evidence", status_code=201)
async def store_evidence(sandbox: SandboxDep, body: EvidenceBody) -> EvidenceReceipt:
    evidence = Evidence(
        **body.model_dump(), evidence_id=f"evidence-{len(sandbox.evidence) + 1}", at=now_iso()
    )
    sandbox.evidence[evidence.evidence_id] = evidence
    return EvidenceReceipt(evidence_id=evidence.evidence_id, events=len(evidence.events))


@router.get("/evidence")
async def list_evidence(sandbox: SandboxDep, incident_id: str = "") -> list[Evidence]:
    return [e for e in sandbox.evidence.values() if e.incident_id.startswith(incident_id)]


router.include_router(effects)
