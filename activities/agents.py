"""Agent lifecycle effects on the operator's agent platform (the sandbox in dev and tests).

Onboarding (workspace, config, health, gold set, debug, activate), upgrade (version diff, state snapshot,
restore) and termination (archive and its check, tokens, secrets, retention, termination, notices to the
agents that depend on the one going away). Every effect carries the idempotency key the workflow chose;
reads carry none. The request and result models live here, next to the only code that speaks the wire.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx
from pydantic import BaseModel, Field
from temporalio import activity

from activities.heartbeat import heartbeating
from activities.http import M, PlatformHttp
from schemas.actions import SET_BY_ACT

# ---- requests ------------------------------------------------------------------------------------------


class AgentStep(BaseModel):
    """One effect on, or read of, one agent; a read ignores the key."""

    agent_id: str
    idempotency_key: str = Field("", description=SET_BY_ACT)
    reason: str = ""


class WorkspaceRequest(AgentStep):
    files: dict[str, str] = Field(description="file name → content, e.g. SCOPE.md, JOB.md, CAPABILITIES.md")


class ConfigRequest(AgentStep):
    version: str
    config: dict[str, Any] = Field(default_factory=dict)


class DiffRequest(AgentStep):
    to_version: str


class RestoreRequest(AgentStep):
    snapshot_id: str


class ArchiveCheck(AgentStep):
    archive_id: str


class RetentionRequest(AgentStep):
    archive_id: str
    until: datetime


class NoticeRequest(AgentStep):
    """A notice delivered to `agent_id` (the dependent), about `from_agent`."""

    from_agent: str
    text: str


# ---- results -------------------------------------------------------------------------------------------


class AgentVersion(BaseModel):
    agent_id: str
    state: str
    version: str
    previous_version: str | None = None
    replayed: bool = False


class WorkspaceResult(BaseModel):
    agent_id: str
    files: list[str]
    replayed: bool = False


class HealthResult(BaseModel):
    agent_id: str
    healthy: bool
    detail: str


class GoldSetResult(AgentVersion):
    score: float
    threshold: float
    passed: bool


class DebugResult(AgentVersion):
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


class SnapshotResult(AgentVersion):
    snapshot_id: str
    memory_items: int
    config_keys: list[str]


class RestoreResult(AgentVersion):
    snapshot_id: str
    memory_items: int


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
    removed: int
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


# ---- the activities ------------------------------------------------------------------------------------


class AgentLifecycleActivities:
    """Built once in the worker with the shared platform client."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self._http = PlatformHttp(client)

    async def _send(
        self, method: str, verb: str, step: AgentStep, result: type[M], what: str, body: Any = None
    ) -> M:
        """An effect on `/agents/{agent_id}/{verb}`, named `{what} of agent {agent_id}`."""
        return await self._http.effect(
            method,
            f"/agents/{step.agent_id}/{verb}",
            key=step.idempotency_key,
            body=body,
            result=result,
            what=f"{what} of agent {step.agent_id}",
        )

    async def _post(self, verb: str, step: AgentStep, result: type[M], what: str) -> M:
        """A POST of `{"reason": ...}` to `/agents/{agent_id}/{verb}`."""
        return await self._send("POST", verb, step, result, what, {"reason": step.reason})

    # onboarding

    @activity.defn(name="agents_create_workspace")
    @heartbeating
    async def create_workspace(self, request: WorkspaceRequest) -> WorkspaceResult:
        body = {"files": request.files}
        return await self._send("PUT", "workspace", request, WorkspaceResult, "workspace", body)

    @activity.defn(name="agents_inject_config")
    @heartbeating
    async def inject_config(self, request: ConfigRequest) -> AgentVersion:
        body = {"version": request.version, "config": request.config, "reason": request.reason}
        return await self._send("PUT", "config", request, AgentVersion, "config", body)

    @activity.defn(name="agents_health_check")
    @heartbeating
    async def health_check(self, request: AgentStep) -> HealthResult:
        path = f"/agents/{request.agent_id}/health"
        return await self._http.read(path, HealthResult, f"health of agent {request.agent_id}")

    @activity.defn(name="agents_run_gold_set")
    @heartbeating
    async def run_gold_set(self, request: AgentStep) -> GoldSetResult:
        return await self._post("gold-set", request, GoldSetResult, "gold set")

    @activity.defn(name="agents_debug")
    @heartbeating
    async def debug(self, request: AgentStep) -> DebugResult:
        return await self._post("debug", request, DebugResult, "debug")

    @activity.defn(name="agents_activate")
    @heartbeating
    async def activate(self, request: AgentStep) -> AgentVersion:
        return await self._post("resume", request, AgentVersion, "activation")

    # upgrade

    @activity.defn(name="agents_version_diff")
    @heartbeating
    async def version_diff(self, request: DiffRequest) -> VersionDiff:
        return await self._http.read(
            f"/agents/{request.agent_id}/versions/diff",
            VersionDiff,
            f"diff of agent {request.agent_id} to {request.to_version}",
            params={"to_version": request.to_version},
        )

    @activity.defn(name="agents_snapshot_state")
    @heartbeating
    async def snapshot_state(self, request: AgentStep) -> SnapshotResult:
        return await self._post("snapshots", request, SnapshotResult, "snapshot")

    @activity.defn(name="agents_restore_snapshot")
    @heartbeating
    async def restore_snapshot(self, request: RestoreRequest) -> RestoreResult:
        verb = f"snapshots/{request.snapshot_id}/restore"
        return await self._post(verb, request, RestoreResult, "restore")

    # termination

    @activity.defn(name="agents_archive")
    @heartbeating
    async def archive(self, request: AgentStep) -> ArchiveResult:
        return await self._post("archives", request, ArchiveResult, "archive")

    @activity.defn(name="agents_verify_archive")
    @heartbeating
    async def verify_archive(self, request: ArchiveCheck) -> ArchiveResult:
        """Read the archive back from the store: only what can be read back counts as archived."""
        data = await self._http.call(
            "GET",
            f"/agents/{request.agent_id}/archives/{request.archive_id}",
            what=f"archive {request.archive_id} of agent {request.agent_id}",
        )
        return ArchiveResult(
            agent_id=request.agent_id,
            archive_id=data["archive_id"],
            files=len(data["workspace"]),
            memory_items=len(data["memory"]),
            log_entries=len(data["logs"]),
        )

    @activity.defn(name="agents_terminate")
    @heartbeating
    async def terminate(self, request: AgentStep) -> AgentVersion:
        return await self._post("terminate", request, AgentVersion, "termination")

    @activity.defn(name="agents_revoke_tokens")
    @heartbeating
    async def revoke_tokens(self, request: AgentStep) -> CredentialsResult:
        return await self._send("DELETE", "tokens", request, CredentialsResult, "token revocation")

    @activity.defn(name="agents_delete_secrets")
    @heartbeating
    async def delete_secrets(self, request: AgentStep) -> CredentialsResult:
        return await self._send("DELETE", "secrets", request, CredentialsResult, "secret deletion")

    @activity.defn(name="agents_set_retention")
    @heartbeating
    async def set_retention(self, request: RetentionRequest) -> RetentionResult:
        body = {"archive_id": request.archive_id, "until": request.until.isoformat()}
        return await self._send("PUT", "retention", request, RetentionResult, "retention", body)

    @activity.defn(name="agents_dependents")
    @heartbeating
    async def dependents(self, request: AgentStep) -> Dependents:
        data = await self._http.call(
            "GET", f"/agents/{request.agent_id}/dependents", what=f"dependents of agent {request.agent_id}"
        )
        return Dependents(agent_id=request.agent_id, dependents=list(data))

    @activity.defn(name="agents_notify_dependent")
    @heartbeating
    async def notify_dependent(self, request: NoticeRequest) -> NoticeResult:
        body = {"from_agent": request.from_agent, "text": request.text}
        path = f"/agents/{request.agent_id}/notices"
        what = f"notice to agent {request.agent_id}"
        return await self._http.effect(
            "POST", path, key=request.idempotency_key, body=body, result=NoticeResult, what=what
        )

    def all(self) -> list[Any]:
        """Every activity of this class, for the worker's list."""
        return [
            self.create_workspace,
            self.inject_config,
            self.health_check,
            self.run_gold_set,
            self.debug,
            self.activate,
            self.version_diff,
            self.snapshot_state,
            self.restore_snapshot,
            self.archive,
            self.verify_archive,
            self.terminate,
            self.revoke_tokens,
            self.delete_secrets,
            self.set_retention,
            self.dependents,
            self.notify_dependent,
        ]
