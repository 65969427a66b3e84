"""The AI-agent platform: read an agent, and pause, resume, roll back, test or terminate it."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException

from schemas.agents import AgentReason, AgentRecord, AgentState, GoldSetResult, RollbackBody
from workers.sandbox.dependencies import SandboxDep, require_idempotency_key
from workers.sandbox.models.agents import Agent

# Reads: not effects a runbook performs, so no key is needed.
router = APIRouter()
# Everything on this router changes the stand-in's state, so it must be safe to retry.
effects = APIRouter(dependencies=[Depends(require_idempotency_key)])


GOLD_SET_THRESHOLD = 0.8


# Versions without a configured gold-set score pass comfortably; a test that needs a failing version sets it.
DEFAULT_GOLD_SCORE = 0.93


@router.get("/agents/{agent_id}")
async def get_agent(sandbox: SandboxDep, agent_id: str) -> AgentRecord:
    return sandbox.agent(agent_id)


def alive_agent(agent: Agent) -> Agent:
    if agent.state == "terminated":
        raise HTTPException(409, f"agent {agent.agent_id} is terminated")
    return agent


@effects.post("/agents/{agent_id}/pause")
async def pause_agent(sandbox: SandboxDep, agent_id: str, request: AgentReason = AgentReason()) -> AgentState:
    agent = alive_agent(sandbox.agent(agent_id))
    agent.state = "paused"
    agent.record("paused", request.reason)
    return agent.answer()


@effects.post("/agents/{agent_id}/resume")
async def resume_agent(
    sandbox: SandboxDep, agent_id: str, request: AgentReason = AgentReason()
) -> AgentState:
    agent = alive_agent(sandbox.agent(agent_id))
    agent.state = "active"
    agent.record("resumed", request.reason)
    return agent.answer()


@effects.post("/agents/{agent_id}/rollback")
async def rollback_agent(
    sandbox: SandboxDep, agent_id: str, request: RollbackBody = RollbackBody()
) -> AgentState:
    agent = alive_agent(sandbox.agent(agent_id))
    current = agent.versions.index(agent.version)
    if request.to_version is None:
        if current == 0:
            raise HTTPException(409, f"agent {agent_id} is at its earliest version {agent.version}")
        target = agent.versions[current - 1]
    elif request.to_version not in agent.versions:
        raise HTTPException(409, f"agent {agent_id} has no version {request.to_version}")
    elif agent.versions.index(request.to_version) >= current:
        raise HTTPException(409, f"{request.to_version} is not earlier than the current {agent.version}")
    else:
        target = request.to_version
    agent.previous_version, agent.version = agent.version, target
    agent.record("rolled_back", request.reason)
    return agent.answer()


@effects.post("/agents/{agent_id}/gold-set")
async def run_gold_set(
    sandbox: SandboxDep, agent_id: str, request: AgentReason = AgentReason()
) -> GoldSetResult:
    agent = sandbox.agent(agent_id)
    score = agent.gold_scores.get(agent.version, DEFAULT_GOLD_SCORE)
    agent.record("gold_set", request.reason)
    return GoldSetResult(
        agent_id=agent_id,
        version=agent.version,
        score=score,
        threshold=GOLD_SET_THRESHOLD,
        passed=score >= GOLD_SET_THRESHOLD,
    )


@effects.post("/agents/{agent_id}/terminate")
async def terminate_agent(
    sandbox: SandboxDep, agent_id: str, request: AgentReason = AgentReason()
) -> AgentState:
    agent = sandbox.agent(agent_id)
    agent.state = "terminated"
    agent.record("terminated", request.reason)
    return agent.answer()


router.include_router(effects)
