"""Requests to, and answers from, the AI-agent platform: one set, shared by the runbooks, the adapters
(`activities/agents/`) and the sandbox that implements the http contract.

Each effect's request is `AgentAction` or a model built on it; its wire body (the `…Body` models) is what
the http adapter sends and the platform's route reads. Every answer carries `replayed`, true when the
platform had already applied the request's idempotency key and answers with its first result.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from schemas.actions import SET_BY_ACT

# ---- requests ------------------------------------------------------------------------------------------


class AgentAction(BaseModel):
    """One effect on, or read of, one agent; a read ignores the key."""

    agent_id: str
    idempotency_key: str = Field("", description=SET_BY_ACT)
    reason: str = ""


class AgentRollback(AgentAction):
    """Roll an agent back; without `to_version`, to the version before the current one."""

    to_version: str | None = None


class WorkspaceRequest(AgentAction):
    files: dict[str, str] = Field(description="file name → content, e.g. SCOPE.md, JOB.md, CAPABILITIES.md")


class ConfigRequest(AgentAction):
    version: str
    config: dict[str, Any] = Field(default_factory=dict)


class DiffRequest(AgentAction):
    to_version: str


class RestoreRequest(AgentAction):
    snapshot_id: str


class ArchiveCheck(AgentAction):
    archive_id: str


class RetentionRequest(AgentAction):
    archive_id: str
    until: datetime


class NoticeRequest(AgentAction):
    """A notice delivered to `agent_id` (the dependent), about `from_agent`."""

    from_agent: str
    text: str


class EvidenceRequest(BaseModel):
    idempotency_key: str = Field("", description=SET_BY_ACT)
    incident_id: str
    agent_id: str
    kind: str = Field("", description="what monitoring called it: prompt_injection, exfiltration …")
    summary: str = ""


class UsageQuery(BaseModel):
    agent_ids: list[str] = Field(default_factory=list, description="empty: every agent the platform knows")


# ---- wire bodies (what the http adapter sends, what the platform's routes read) -------------------------


class AgentReason(BaseModel):
    """The body of an effect that needs nothing but why: pause, resume, gold set, debug, snapshot …"""

    reason: str = ""


class RollbackBody(AgentReason):
    to_version: str | None = None


class WorkspaceBody(BaseModel):
    files: dict[str, str] = Field(min_length=1)


class ConfigBody(BaseModel):
    version: str = Field(min_length=1)
    config: dict[str, Any] = Field(default_factory=dict)
    reason: str = ""


class RetentionBody(BaseModel):
    archive_id: str
    until: str = Field(description="ISO 8601")


class NoticeBody(BaseModel):
    from_agent: str
    text: str


class SecurityEvent(BaseModel):
    at: str
    kind: str = Field(description="prompt_injection, exfiltration, tool_abuse, anomaly …")
    detail: str
    tool: str | None = None


class EvidenceBody(BaseModel):
    """What the evidence locker keeps of one security incident."""

    incident_id: str
    agent_id: str
    cause: str
    impact: str
    events: list[SecurityEvent] = Field(default_factory=list)
    agent_history: list[dict[str, Any]] = Field(default_factory=list)
    calls: list[dict[str, Any]] = Field(default_factory=list)


# ---- answers -------------------------------------------------------------------------------------------


class HistoryEntry(BaseModel):
    at: str
    event: str
    version: str
    reason: str = ""


class AgentRecord(BaseModel):
    """`GET /agents/{agent_id}`: the agent, its versions (oldest first) and what happened to it."""

    agent_id: str
    state: str = Field(description="active, paused or terminated")
    version: str
    previous_version: str | None
    versions: list[str]
    history: list[HistoryEntry] = Field(default_factory=list)


class AgentState(BaseModel):
    """Where an agent stands after an effect on it."""

    agent_id: str
    state: str = Field(description="active, paused or terminated")
    version: str
    previous_version: str | None = None
    replayed: bool = Field(False, description="True when the platform had already applied this key")


class WorkspaceResult(BaseModel):
    agent_id: str
    files: list[str]
    replayed: bool = False


class ConfigResult(AgentState):
    config: dict[str, Any] = Field(default_factory=dict)


class HealthResult(BaseModel):
    agent_id: str
    healthy: bool
    detail: str


class GoldSetResult(BaseModel):
    """A gold-set run on the agent's current version. (Runs recorded before the two gold-set activities
    shared this model also carried the agent's state; nothing read it.)"""

    agent_id: str
    version: str
    score: float
    threshold: float
    passed: bool
    replayed: bool = False


class DebugResult(AgentState):
    findings: str


class VersionChange(BaseModel):
    key: str
    before: Any = None
    after: Any = None

    def __str__(self) -> str:
        return f"{self.key}: {self.before!r} → {self.after!r}"


class VersionDiff(BaseModel):
    agent_id: str
    from_version: str
    to_version: str
    target_config: dict[str, Any]
    changes: list[VersionChange]


class SnapshotResult(AgentState):
    snapshot_id: str
    memory_items: int
    config_keys: list[str]


class RestoreResult(AgentState):
    snapshot_id: str
    memory_items: int


class AgentArchive(BaseModel):
    """`GET /agents/{agent_id}/archives/{archive_id}`: what an archive holds, read back from the store."""

    archive_id: str
    version: str
    workspace: dict[str, str]
    memory: list[str]
    logs: list[HistoryEntry]
    at: str


class ArchiveResult(BaseModel):
    agent_id: str
    archive_id: str
    files: int
    memory_items: int
    log_entries: int
    replayed: bool = False


class CredentialsResult(BaseModel):
    """How many tokens or secrets were removed; never their names or values."""

    agent_id: str
    # 0 in results recorded before the security runbook's revocation shared this model (it answered with
    # the agent's state, not a count).
    removed: int = 0
    replayed: bool = False


class RetentionResult(BaseModel):
    agent_id: str
    archive_id: str
    until: str
    replayed: bool = False


class Dependents(BaseModel):
    agent_id: str
    dependents: list[str]


class NoticeResult(BaseModel):
    agent_id: str
    notices: int
    replayed: bool = False


class EvidenceReceipt(BaseModel):
    evidence_id: str
    events: int
    replayed: bool = False


class EvidenceBundle(BaseModel):
    evidence_id: str
    events: int
    cause: str
    impact: str
    tools: list[str] = Field(default_factory=list)
    replayed: bool = False


class AgentUsage(BaseModel):
    agent_id: str
    tokens: int = 0
    tokens_daily_avg: int = 0
    tasks_done: int = 0
    tasks_failed: int = 0

    @property
    def failure_rate(self) -> float:
        total = self.tasks_done + self.tasks_failed
        return self.tasks_failed / total if total else 0.0


class FleetUsage(BaseModel):
    agents: list[AgentUsage] = Field(default_factory=list)


class AccessLogEntry(BaseModel):
    """One call the agent platform received about an agent, from its own access log: the evidence of what
    was done to the agent around an incident (`GET /agents/{agent_id}/access-log`)."""

    method: str
    path: str
    status_code: int
    at: str
    idempotency_key: str | None = None
    replayed: bool = False
