"""What the agent platform keeps around an agent besides its versions (the stand-in's own state).

For onboarding, upgrade and termination: the workspace (files), the injected config, the memory, the
credentials (tokens, secrets), the agents that depend on it, state snapshots to restore, archives, the
retention date, and notices from other agents. The contract's bodies and answers are `schemas/agents.py`."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, Field

from schemas.agents import AgentArchive


class AgentSnapshotData(BaseModel):
    snapshot_id: str
    version: str
    config: dict[str, Any]
    memory: list[str]
    at: str


class AgentNotice(BaseModel):
    from_agent: str
    text: str
    at: str


class AgentLifecycle(BaseModel):
    workspace: dict[str, str] | None = None
    config: dict[str, Any] = {}
    memory: list[str] = []
    secrets: list[str] = []
    tokens: list[str] = []
    dependents: list[str] = []
    healthy: bool = True
    # The config each known version would run with: what an upgrade diff is computed from.
    version_configs: dict[str, dict[str, Any]] = {}
    # Gold-set scores handed to the agent when a config deploy creates it (onboarding: it does not exist yet).
    gold_scores: dict[str, float] = {}
    fixes: int = 0
    snapshots: dict[str, AgentSnapshotData] = {}
    archives: dict[str, AgentArchive] = {}
    retention_until: str | None = None
    retention_archive: str | None = None
    revoked_tokens: list[str] = []
    deleted_secrets: list[str] = []
    notices: list[AgentNotice] = []


class AgentLifecycleSetup(BaseModel):
    """Scenario set-up: every field left out keeps its value."""

    workspace: dict[str, str] | None = None
    config: dict[str, Any] | None = None
    memory: list[str] | None = None
    secrets: list[str] | None = None
    tokens: list[str] | None = None
    dependents: list[str] | None = None
    healthy: bool | None = None
    version_configs: dict[str, dict[str, Any]] | None = None
    gold_scores: dict[str, Annotated[float, Field(ge=0, le=1)]] | None = None


def seed_agent_lifecycles() -> dict[str, AgentLifecycle]:
    # The demo agent of `make dev`, so `stanch fire agent-upgrade` and `agent-termination` have something real.
    support_bot = AgentLifecycle(
        workspace={"JOB.md": "Answer customer support chats for acme."},
        config={"model": "chat-small", "skills": ["faq", "orders"]},
        memory=["acme customers prefer email follow-ups"],
        tokens=["tok-chat", "tok-crm"],
        secrets=["CRM_API_KEY", "CHAT_TOKEN"],
        dependents=["triage-bot"],
        version_configs={"v4": {"model": "chat-large", "skills": ["faq", "orders", "summarise"]}},
    )
    return {"support-bot": support_bot}
