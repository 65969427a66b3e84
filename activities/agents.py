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

from activities.errors import raise_for_status

# ---- requests ------------------------------------------------------------------------------------------


class AgentStep(BaseModel):
    """One effect on, or read of, one agent; reads leave the key empty."""

    agent_id: str
    idempotency_key: str = ""
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
        self._client = client

    async def _send(self, method: str, path: str, step: AgentStep, what: str, body: Any = None) -> Any:
        response = await self._client.request(
            method,
            path,
            json=body,
            headers={"Idempotency-Key": step.idempotency_key},
        )
        raise_for_status(response, what)
        return response.json()

    async def _read(self, path: str, what: str, params: dict[str, str] | None = None) -> Any:
        response = await self._client.get(path, params=params)
        raise_for_status(response, what)
        return response.json()

    # onboarding

    @activity.defn(name="agents_create_workspace")
    async def create_workspace(self, request: WorkspaceRequest) -> WorkspaceResult:
        body = {"files": request.files}
        path = f"/agents/{request.agent_id}/workspace"
        data = await self._send("PUT", path, request, f"workspace of agent {request.agent_id}", body)
        return WorkspaceResult.model_validate(data)

    @activity.defn(name="agents_inject_config")
    async def inject_config(self, request: ConfigRequest) -> AgentVersion:
        body = {"version": request.version, "config": request.config, "reason": request.reason}
        path = f"/agents/{request.agent_id}/config"
        data = await self._send("PUT", path, request, f"config of agent {request.agent_id}", body)
        return AgentVersion.model_validate(data)

    @activity.defn(name="agents_health_check")
    async def health_check(self, request: AgentStep) -> HealthResult:
        data = await self._read(f"/agents/{request.agent_id}/health", f"health of agent {request.agent_id}")
        return HealthResult.model_validate(data)

    @activity.defn(name="agents_run_gold_set")
    async def run_gold_set(self, request: AgentStep) -> GoldSetResult:
        path = f"/agents/{request.agent_id}/gold-set"
        data = await self._send(
            "POST", path, request, f"gold set of agent {request.agent_id}", {"reason": request.reason}
        )
        return GoldSetResult.model_validate(data)

    @activity.defn(name="agents_debug")
    async def debug(self, request: AgentStep) -> DebugResult:
        path = f"/agents/{request.agent_id}/debug"
        data = await self._send(
            "POST", path, request, f"debug of agent {request.agent_id}", {"reason": request.reason}
        )
        return DebugResult.model_validate(data)

    @activity.defn(name="agents_activate")
    async def activate(self, request: AgentStep) -> AgentVersion:
        path = f"/agents/{request.agent_id}/resume"
        data = await self._send(
            "POST", path, request, f"activation of agent {request.agent_id}", {"reason": request.reason}
        )
        return AgentVersion.model_validate(data)

    # upgrade

    @activity.defn(name="agents_version_diff")
    async def version_diff(self, request: DiffRequest) -> VersionDiff:
        data = await self._read(
            f"/agents/{request.agent_id}/versions/diff",
            f"diff of agent {request.agent_id} to {request.to_version}",
            params={"to_version": request.to_version},
        )
        return VersionDiff.model_validate(data)

    @activity.defn(name="agents_snapshot_state")
    async def snapshot_state(self, request: AgentStep) -> SnapshotResult:
        path = f"/agents/{request.agent_id}/snapshots"
        data = await self._send(
            "POST", path, request, f"snapshot of agent {request.agent_id}", {"reason": request.reason}
        )
        return SnapshotResult.model_validate(data)

    @activity.defn(name="agents_restore_snapshot")
    async def restore_snapshot(self, request: RestoreRequest) -> RestoreResult:
        path = f"/agents/{request.agent_id}/snapshots/{request.snapshot_id}/restore"
        data = await self._send(
            "POST", path, request, f"restore of agent {request.agent_id}", {"reason": request.reason}
        )
        return RestoreResult.model_validate(data)

    # termination

    @activity.defn(name="agents_archive")
    async def archive(self, request: AgentStep) -> ArchiveResult:
        path = f"/agents/{request.agent_id}/archives"
        data = await self._send(
            "POST", path, request, f"archive of agent {request.agent_id}", {"reason": request.reason}
        )
        return ArchiveResult.model_validate(data)

    @activity.defn(name="agents_verify_archive")
    async def verify_archive(self, request: ArchiveCheck) -> ArchiveResult:
        """Read the archive back from the store: only what can be read back counts as archived."""
        data = await self._read(
            f"/agents/{request.agent_id}/archives/{request.archive_id}",
            f"archive {request.archive_id} of agent {request.agent_id}",
        )
        return ArchiveResult(
            agent_id=request.agent_id,
            archive_id=data["archive_id"],
            files=len(data["workspace"]),
            memory_items=len(data["memory"]),
            log_entries=len(data["logs"]),
        )

    @activity.defn(name="agents_terminate")
    async def terminate(self, request: AgentStep) -> AgentVersion:
        path = f"/agents/{request.agent_id}/terminate"
        data = await self._send(
            "POST", path, request, f"termination of agent {request.agent_id}", {"reason": request.reason}
        )
        return AgentVersion.model_validate(data)

    @activity.defn(name="agents_revoke_tokens")
    async def revoke_tokens(self, request: AgentStep) -> CredentialsResult:
        path = f"/agents/{request.agent_id}/tokens"
        data = await self._send("DELETE", path, request, f"token revocation of agent {request.agent_id}")
        return CredentialsResult.model_validate(data)

    @activity.defn(name="agents_delete_secrets")
    async def delete_secrets(self, request: AgentStep) -> CredentialsResult:
        path = f"/agents/{request.agent_id}/secrets"
        data = await self._send("DELETE", path, request, f"secret deletion of agent {request.agent_id}")
        return CredentialsResult.model_validate(data)

    @activity.defn(name="agents_set_retention")
    async def set_retention(self, request: RetentionRequest) -> RetentionResult:
        body = {"archive_id": request.archive_id, "until": request.until.isoformat()}
        path = f"/agents/{request.agent_id}/retention"
        data = await self._send("PUT", path, request, f"retention of agent {request.agent_id}", body)
        return RetentionResult.model_validate(data)

    @activity.defn(name="agents_dependents")
    async def dependents(self, request: AgentStep) -> Dependents:
        data = await self._read(
            f"/agents/{request.agent_id}/dependents", f"dependents of agent {request.agent_id}"
        )
        return Dependents(agent_id=request.agent_id, dependents=list(data))

    @activity.defn(name="agents_notify_dependent")
    async def notify_dependent(self, request: NoticeRequest) -> NoticeResult:
        body = {"from_agent": request.from_agent, "text": request.text}
        path = f"/agents/{request.agent_id}/notices"
        data = await self._send("POST", path, request, f"notice to agent {request.agent_id}", body)
        return NoticeResult.model_validate(data)

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
