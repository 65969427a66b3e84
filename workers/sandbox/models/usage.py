"""Wire models of the per-agent usage meter (the spend and volume a guardrail reads)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class AgentUsage(BaseModel):
    agent_id: str
    tokens: int = 0
    tokens_daily_avg: int = 0
    tasks_done: int = 0
    tasks_failed: int = 0


class AgentUsageUpdate(BaseModel):
    tokens: int | None = Field(None, ge=0)
    tokens_daily_avg: int | None = Field(None, ge=0)
    tasks_done: int | None = Field(None, ge=0)
    tasks_failed: int | None = Field(None, ge=0)


def seed_usage() -> dict[str, AgentUsage]:
    return {
        "support-bot": AgentUsage(
            agent_id="support-bot", tokens=182_000, tokens_daily_avg=170_000, tasks_done=412, tasks_failed=9
        )
    }
