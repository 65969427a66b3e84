"""The AI-agent platform's own state: its agents, with what the contract shows of them (`AgentRecord`) and
what only the stand-in keeps (gold-set scores a test decides). The contract's bodies and answers are
`schemas/agents.py`."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

from schemas.agents import AgentRecord, AgentState, HistoryEntry
from workers.sandbox.common import now_iso

AgentStatus = Literal["active", "paused", "terminated"]


class Agent(AgentRecord):
    state: AgentStatus
    # Internal: lets a test decide which versions fail the gold set, without exposing it as platform data.
    gold_scores: dict[str, float] = Field(default_factory=dict, exclude=True)

    def record(self, event: str, reason: str) -> None:
        self.history.append(HistoryEntry(at=now_iso(), event=event, version=self.version, reason=reason))

    def answer(self) -> AgentState:
        """Where the agent stands, as an effect on it answers."""
        return AgentState(
            agent_id=self.agent_id,
            state=self.state,
            version=self.version,
            previous_version=self.previous_version,
        )


class AgentSpec(BaseModel):
    versions: list[str] = Field(min_length=1)
    state: AgentStatus = "active"
    gold_scores: dict[str, Annotated[float, Field(ge=0, le=1)]] = {}


def seed_agents() -> dict[str, Agent]:
    agent = new_agent("support-bot", AgentSpec(versions=["v1", "v2", "v3"], gold_scores={"v3": 0.62}))
    return {agent.agent_id: agent}


def new_agent(agent_id: str, spec: AgentSpec) -> Agent:
    agent = Agent(
        agent_id=agent_id,
        state=spec.state,
        version=spec.versions[-1],
        previous_version=spec.versions[-2] if len(spec.versions) > 1 else None,
        versions=list(spec.versions),
        gold_scores=dict(spec.gold_scores),
    )
    agent.record("created", "")
    return agent
