"""Wire models of the AI-agent platform: agents, their versions and history, and the effects on them."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, Field

from workers.sandbox.common import now_iso
from workers.sandbox.models.common import EffectRequest

AgentStatus = Literal["active", "paused", "terminated"]


class HistoryEntry(BaseModel):
    at: str
    event: str
    version: str
    reason: str = ""


class Agent(BaseModel):
    agent_id: str
    state: AgentStatus
    version: str
    previous_version: str | None
    versions: list[str]
    history: list[HistoryEntry] = []
    # Internal: lets a test decide which versions fail the gold set, without exposing it as platform data.
    gold_scores: dict[str, float] = Field(default_factory=dict, exclude=True)
    snapshots: int = Field(default=0, exclude=True)

    def record(self, event: str, reason: str) -> None:
        self.history.append(HistoryEntry(at=now_iso(), event=event, version=self.version, reason=reason))


class AgentSpec(BaseModel):
    versions: list[str] = Field(min_length=1)
    state: AgentStatus = "active"
    gold_scores: dict[str, Annotated[float, Field(ge=0, le=1)]] = {}


class RollbackRequest(EffectRequest):
    to_version: str | None = None


class AgentEffect(BaseModel):
    agent_id: str
    state: AgentStatus
    version: str
    previous_version: str | None
    replayed: bool = False

    @classmethod
    def of(cls, agent: Agent, **extra: Any) -> Self:
        return cls(
            agent_id=agent.agent_id,
            state=agent.state,
            version=agent.version,
            previous_version=agent.previous_version,
            **extra,
        )


class SnapshotEffect(AgentEffect):
    snapshot_id: str


class GoldSetEffect(AgentEffect):
    score: float
    threshold: float
    passed: bool


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
