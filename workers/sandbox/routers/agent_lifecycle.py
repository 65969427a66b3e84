"""The agent platform's lifecycle: what it keeps around an agent, for onboarding, upgrade and termination.

The workspace (files), the injected config, the memory, the credentials (tokens, secrets), the agents that
depend on it, state snapshots to restore, archives, the retention date, and notices from other agents. Kept
beside `Agent` (one record per agent id, created on first use) so an agent that never went through a
lifecycle runbook looks exactly as before, and so an onboarding can prepare a record before the agent exists."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException

from schemas.agents import (
    AgentArchive,
    AgentReason,
    ArchiveResult,
    ConfigBody,
    ConfigResult,
    CredentialsResult,
    DebugResult,
    HealthResult,
    NoticeBody,
    NoticeResult,
    RestoreResult,
    RetentionBody,
    RetentionResult,
    SnapshotResult,
    VersionChange,
    VersionDiff,
    WorkspaceBody,
    WorkspaceResult,
)
from workers.sandbox.common import found_or_404, now_iso
from workers.sandbox.dependencies import SandboxDep, require_idempotency_key
from workers.sandbox.models.agent_lifecycle import AgentLifecycle, AgentNotice, AgentSnapshotData
from workers.sandbox.models.agents import Agent, AgentSpec, new_agent
from workers.sandbox.routers.agents import alive_agent
from workers.sandbox.state import Sandbox

# Reads: not effects a runbook performs, so no key is needed.
router = APIRouter()
# Everything on this router changes the stand-in's state, so it must be safe to retry.
effects = APIRouter(dependencies=[Depends(require_idempotency_key)])


def lifecycle_of(sandbox: Sandbox, agent_id: str) -> AgentLifecycle:
    return sandbox.agent_lifecycles.setdefault(agent_id, AgentLifecycle())


def _state(agent: Agent) -> dict[str, Any]:
    """The fields of an answer that say where the agent stands."""
    return agent.answer().model_dump(exclude={"replayed"})


def _archived(lifecycle: AgentLifecycle, agent_id: str, what: str) -> None:
    # The platform's own last line of defence: data that cannot be brought back needs an archive first.
    if not lifecycle.archives:
        raise HTTPException(409, f"agent {agent_id} has no archive; refusing to {what}")


@router.get("/agents/{agent_id}/lifecycle")
async def get_agent_lifecycle(sandbox: SandboxDep, agent_id: str) -> AgentLifecycle:
    return lifecycle_of(sandbox, agent_id)


@router.get("/agents/{agent_id}/health")
async def agent_health(sandbox: SandboxDep, agent_id: str) -> HealthResult:
    lifecycle = lifecycle_of(sandbox, agent_id)
    agent = sandbox.agents.get(agent_id)
    if agent is None or agent.state == "terminated":
        return HealthResult(agent_id=agent_id, healthy=False, detail="no running agent")
    if lifecycle.workspace is None:
        return HealthResult(agent_id=agent_id, healthy=False, detail="no workspace")
    if not lifecycle.healthy:
        return HealthResult(agent_id=agent_id, healthy=False, detail="agent does not answer its probe")
    return HealthResult(agent_id=agent_id, healthy=True, detail=f"{agent.version} answers its probe")


@router.get("/agents/{agent_id}/versions/diff")
async def agent_version_diff(sandbox: SandboxDep, agent_id: str, to_version: str) -> VersionDiff:
    agent = sandbox.agent(agent_id)
    lifecycle = lifecycle_of(sandbox, agent_id)
    if to_version not in lifecycle.version_configs and to_version not in agent.versions:
        raise HTTPException(404, f"agent {agent_id} has no version {to_version} to upgrade to")
    before = lifecycle.config
    after = lifecycle.version_configs.get(to_version, before)
    changes = [VersionChange(key="version", before=agent.version, after=to_version)]
    changes += [
        VersionChange(key=key, before=before.get(key), after=after.get(key))
        for key in sorted(set(before) | set(after))
        if before.get(key) != after.get(key)
    ]
    return VersionDiff(
        agent_id=agent_id,
        from_version=agent.version,
        to_version=to_version,
        target_config=dict(after),
        changes=changes,
    )


@router.get("/agents/{agent_id}/dependents")
async def agent_dependents(sandbox: SandboxDep, agent_id: str) -> list[str]:
    return list(lifecycle_of(sandbox, agent_id).dependents)


@router.get("/agents/{agent_id}/archives/{archive_id}")
async def get_agent_archive(sandbox: SandboxDep, agent_id: str, archive_id: str) -> AgentArchive:
    archives = lifecycle_of(sandbox, agent_id).archives
    return found_or_404(archives, archive_id, f"agent {agent_id} has no archive {archive_id}")


@effects.put("/agents/{agent_id}/workspace")
async def put_agent_workspace(sandbox: SandboxDep, agent_id: str, spec: WorkspaceBody) -> WorkspaceResult:
    existing = sandbox.agents.get(agent_id)
    if existing is not None and existing.state != "terminated":
        raise HTTPException(409, f"agent {agent_id} already exists ({existing.state}); pick another name")
    lifecycle = lifecycle_of(sandbox, agent_id)
    lifecycle.workspace = dict(spec.files)
    return WorkspaceResult(agent_id=agent_id, files=sorted(spec.files))


@effects.put("/agents/{agent_id}/config")
async def put_agent_config(sandbox: SandboxDep, agent_id: str, spec: ConfigBody) -> ConfigResult:
    lifecycle = lifecycle_of(sandbox, agent_id)
    agent = sandbox.agents.get(agent_id)
    if agent is None or agent.state == "terminated":
        if lifecycle.workspace is None:
            raise HTTPException(409, f"agent {agent_id} has no workspace to deploy into")
        # A new agent starts paused: it serves nobody until it has passed its gold set.
        agent = new_agent(
            agent_id, AgentSpec(versions=[spec.version], state="paused", gold_scores=lifecycle.gold_scores)
        )
        sandbox.agents[agent_id] = agent
    elif spec.version != agent.version:
        if spec.version not in agent.versions:
            agent.versions.append(spec.version)
        agent.previous_version, agent.version = agent.version, spec.version
        agent.record("upgraded", spec.reason)
    lifecycle.config = dict(spec.config)
    agent.record("config_injected", spec.reason)
    return ConfigResult(**_state(agent), config=lifecycle.config)


@effects.post("/agents/{agent_id}/debug")
async def debug_agent(
    sandbox: SandboxDep, agent_id: str, request: AgentReason = AgentReason()
) -> DebugResult:
    # The platform's assistant reads the failed gold-set cases and ships a patched revision.
    agent = alive_agent(sandbox.agent(agent_id))
    lifecycle = lifecycle_of(sandbox, agent_id)
    lifecycle.fixes += 1
    fixed = f"{agent.versions[0]}-fix{lifecycle.fixes}"
    failed = agent.version
    agent.versions.append(fixed)
    agent.previous_version, agent.version = agent.version, fixed
    agent.record("debugged", request.reason)
    return DebugResult(
        **_state(agent), findings=f"gold-set failures of {failed} traced and patched as {fixed}"
    )


@effects.post("/agents/{agent_id}/snapshots")
async def snapshot_agent_state(
    sandbox: SandboxDep, agent_id: str, request: AgentReason = AgentReason()
) -> SnapshotResult:
    agent = sandbox.agent(agent_id)
    lifecycle = lifecycle_of(sandbox, agent_id)
    snapshot = AgentSnapshotData(
        snapshot_id=f"{agent_id}-state-{len(lifecycle.snapshots) + 1}",
        version=agent.version,
        config=dict(lifecycle.config),
        memory=list(lifecycle.memory),
        at=now_iso(),
    )
    lifecycle.snapshots[snapshot.snapshot_id] = snapshot
    agent.record("state_snapshot", request.reason)
    return SnapshotResult(
        **_state(agent),
        snapshot_id=snapshot.snapshot_id,
        memory_items=len(snapshot.memory),
        config_keys=sorted(snapshot.config),
    )


@effects.post("/agents/{agent_id}/snapshots/{snapshot_id}/restore")
async def restore_agent_snapshot(
    sandbox: SandboxDep, agent_id: str, snapshot_id: str, request: AgentReason = AgentReason()
) -> RestoreResult:
    agent = alive_agent(sandbox.agent(agent_id))
    lifecycle = lifecycle_of(sandbox, agent_id)
    snapshot = found_or_404(
        lifecycle.snapshots, snapshot_id, f"agent {agent_id} has no snapshot {snapshot_id}"
    )
    if agent.version != snapshot.version:
        agent.previous_version, agent.version = agent.version, snapshot.version
    lifecycle.config = dict(snapshot.config)
    lifecycle.memory = list(snapshot.memory)
    agent.record("restored", request.reason or snapshot_id)
    return RestoreResult(**_state(agent), snapshot_id=snapshot_id, memory_items=len(lifecycle.memory))


@effects.post("/agents/{agent_id}/archives")
async def archive_agent_data(
    sandbox: SandboxDep, agent_id: str, request: AgentReason = AgentReason()
) -> ArchiveResult:
    agent = sandbox.agent(agent_id)
    lifecycle = lifecycle_of(sandbox, agent_id)
    agent.record("archived", request.reason)
    archive = AgentArchive(
        archive_id=f"{agent_id}-archive-{len(lifecycle.archives) + 1}",
        version=agent.version,
        workspace=dict(lifecycle.workspace or {}),
        memory=list(lifecycle.memory),
        logs=[entry.model_copy() for entry in agent.history],
        at=now_iso(),
    )
    lifecycle.archives[archive.archive_id] = archive
    return ArchiveResult(
        agent_id=agent_id,
        archive_id=archive.archive_id,
        files=len(archive.workspace),
        memory_items=len(archive.memory),
        log_entries=len(archive.logs),
    )


@effects.delete("/agents/{agent_id}/tokens")
async def revoke_agent_access(sandbox: SandboxDep, agent_id: str) -> CredentialsResult:
    agent = sandbox.agent(agent_id)
    lifecycle = lifecycle_of(sandbox, agent_id)
    revoked = len(lifecycle.tokens)
    lifecycle.revoked_tokens += lifecycle.tokens
    lifecycle.tokens = []
    agent.record("access_revoked", f"{revoked} token(s)")
    return CredentialsResult(agent_id=agent_id, removed=revoked)


@effects.delete("/agents/{agent_id}/secrets")
async def delete_agent_secrets(sandbox: SandboxDep, agent_id: str) -> CredentialsResult:
    agent = sandbox.agent(agent_id)
    lifecycle = lifecycle_of(sandbox, agent_id)
    _archived(lifecycle, agent_id, "delete its secrets")
    deleted = len(lifecycle.secrets)
    lifecycle.deleted_secrets += lifecycle.secrets
    lifecycle.secrets = []
    agent.record("secrets_deleted", f"{deleted} secret(s)")
    return CredentialsResult(agent_id=agent_id, removed=deleted)


@effects.put("/agents/{agent_id}/retention")
async def set_agent_retention(sandbox: SandboxDep, agent_id: str, spec: RetentionBody) -> RetentionResult:
    agent = sandbox.agent(agent_id)
    lifecycle = lifecycle_of(sandbox, agent_id)
    found_or_404(lifecycle.archives, spec.archive_id, f"agent {agent_id} has no archive {spec.archive_id}")
    lifecycle.retention_archive, lifecycle.retention_until = spec.archive_id, spec.until
    agent.record("retention_set", f"{spec.archive_id} until {spec.until}")
    return RetentionResult(agent_id=agent_id, archive_id=spec.archive_id, until=spec.until)


@effects.post("/agents/{agent_id}/notices")
async def notify_agent(sandbox: SandboxDep, agent_id: str, notice: NoticeBody) -> NoticeResult:
    # The recipient may be an agent this platform does not run (another team's): its inbox still exists.
    lifecycle = lifecycle_of(sandbox, agent_id)
    lifecycle.notices.append(AgentNotice(from_agent=notice.from_agent, text=notice.text, at=now_iso()))
    return NoticeResult(agent_id=agent_id, notices=len(lifecycle.notices))


router.include_router(effects)
