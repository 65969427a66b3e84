"""The per-agent usage meter's own state and its scenario set-up. The contract's answer (`AgentUsage`) is
`schemas/agents.py`."""

from __future__ import annotations

from pydantic import BaseModel, Field

from schemas.agents import AgentUsage


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
