"""The per-agent usage meter: the spend and volume a guardrail reads."""

from __future__ import annotations

from fastapi import APIRouter

from schemas.agents import AgentUsage
from workers.sandbox.dependencies import SandboxDep

# Reads: not effects a runbook performs, so no key is needed.
router = APIRouter()


@router.get("/usage")
async def list_usage(sandbox: SandboxDep) -> list[AgentUsage]:
    """One meter per known agent; an agent nobody metered yet reads as zero."""
    return [
        sandbox.usage.get(agent_id, AgentUsage(agent_id=agent_id))
        for agent_id, agent in sandbox.agents.items()
        if agent.state != "terminated"
    ]


@router.get("/agents/{agent_id}/usage")
async def get_usage(sandbox: SandboxDep, agent_id: str) -> AgentUsage:
    sandbox.agent(agent_id)
    return sandbox.usage.get(agent_id, AgentUsage(agent_id=agent_id))
