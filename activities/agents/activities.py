"""The agent platform's activities: each calls the adapter the policy names (`[systems.agents]`).

The activity type names are those recorded histories hold (`pause_agent`, `agents_…`, `security_…`,
`report_fleet_usage`); new ones follow `<system>_<verb>`. Two effects have two names each, one per runbook
that recorded it — token revocation (`agents_revoke_tokens`, `security_revoke_tokens`) and the gold set
(`agents_run_gold_set`, `security_run_gold_set`): both names stay registered, as the same call to the
same adapter method.
"""

from __future__ import annotations

from typing import Any

from temporalio import activity

from activities.agents.interface import Agents
from activities.heartbeat import heartbeating
from schemas.agents import (
    AgentAction,
    AgentRollback,
    AgentState,
    ArchiveCheck,
    ArchiveResult,
    ConfigRequest,
    ConfigResult,
    CredentialsResult,
    DebugResult,
    Dependents,
    DiffRequest,
    EvidenceBundle,
    EvidenceRequest,
    FleetUsage,
    GoldSetResult,
    HealthResult,
    NoticeRequest,
    NoticeResult,
    RestoreRequest,
    RestoreResult,
    RetentionRequest,
    RetentionResult,
    SnapshotResult,
    UsageQuery,
    VersionDiff,
    WorkspaceRequest,
    WorkspaceResult,
)


class AgentActivities:
    """Built once in the worker around the agent platform's adapter."""

    def __init__(self, agents: Agents) -> None:
        self._agents = agents

    # ---- stop and roll back (the emergency stop, the security incident, termination) ------------------

    @activity.defn(name="pause_agent")
    @heartbeating
    async def pause_agent(self, request: AgentAction) -> AgentState:
        return await self._agents.pause(request)

    @activity.defn(name="rollback_agent")
    @heartbeating
    async def rollback_agent(self, request: AgentRollback) -> AgentState:
        return await self._agents.rollback(request)

    # ---- onboarding -----------------------------------------------------------------------------------

    @activity.defn(name="agents_create_workspace")
    @heartbeating
    async def create_workspace(self, request: WorkspaceRequest) -> WorkspaceResult:
        return await self._agents.create_workspace(request)

    @activity.defn(name="agents_inject_config")
    @heartbeating
    async def inject_config(self, request: ConfigRequest) -> ConfigResult:
        return await self._agents.inject_config(request)

    @activity.defn(name="agents_health_check")
    @heartbeating
    async def health_check(self, request: AgentAction) -> HealthResult:
        return await self._agents.health(request)

    @activity.defn(name="agents_run_gold_set")
    @heartbeating
    async def run_gold_set(self, request: AgentAction) -> GoldSetResult:
        return await self._agents.run_gold_set(request)

    @activity.defn(name="agents_debug")
    @heartbeating
    async def debug(self, request: AgentAction) -> DebugResult:
        return await self._agents.debug(request)

    @activity.defn(name="agents_activate")
    @heartbeating
    async def activate(self, request: AgentAction) -> AgentState:
        return await self._agents.resume(request)

    # ---- upgrade --------------------------------------------------------------------------------------

    @activity.defn(name="agents_version_diff")
    @heartbeating
    async def version_diff(self, request: DiffRequest) -> VersionDiff:
        return await self._agents.version_diff(request)

    @activity.defn(name="agents_snapshot_state")
    @heartbeating
    async def snapshot_state(self, request: AgentAction) -> SnapshotResult:
        return await self._agents.snapshot_state(request)

    @activity.defn(name="agents_restore_snapshot")
    @heartbeating
    async def restore_snapshot(self, request: RestoreRequest) -> RestoreResult:
        return await self._agents.restore_snapshot(request)

    # ---- termination ----------------------------------------------------------------------------------

    @activity.defn(name="agents_archive")
    @heartbeating
    async def archive(self, request: AgentAction) -> ArchiveResult:
        return await self._agents.archive(request)

    @activity.defn(name="agents_verify_archive")
    @heartbeating
    async def verify_archive(self, request: ArchiveCheck) -> ArchiveResult:
        return await self._agents.verify_archive(request)

    @activity.defn(name="agents_terminate")
    @heartbeating
    async def terminate(self, request: AgentAction) -> AgentState:
        return await self._agents.terminate(request)

    @activity.defn(name="agents_revoke_tokens")
    @heartbeating
    async def revoke_tokens(self, request: AgentAction) -> CredentialsResult:
        return await self._agents.revoke_tokens(request)

    @activity.defn(name="agents_delete_secrets")
    @heartbeating
    async def delete_secrets(self, request: AgentAction) -> CredentialsResult:
        return await self._agents.delete_secrets(request)

    @activity.defn(name="agents_set_retention")
    @heartbeating
    async def set_retention(self, request: RetentionRequest) -> RetentionResult:
        return await self._agents.set_retention(request)

    @activity.defn(name="agents_dependents")
    @heartbeating
    async def dependents(self, request: AgentAction) -> Dependents:
        return await self._agents.dependents(request)

    @activity.defn(name="agents_notify_dependent")
    @heartbeating
    async def notify_dependent(self, request: NoticeRequest) -> NoticeResult:
        return await self._agents.notify_dependent(request)

    # ---- the security incident ------------------------------------------------------------------------

    @activity.defn(name="security_revoke_tokens")
    @heartbeating
    async def security_revoke_tokens(self, request: AgentAction) -> CredentialsResult:
        return await self._agents.revoke_tokens(request)

    @activity.defn(name="security_collect_evidence")
    @heartbeating
    async def collect_evidence(self, request: EvidenceRequest) -> EvidenceBundle:
        return await self._agents.collect_evidence(request)

    @activity.defn(name="security_run_gold_set")
    @heartbeating
    async def security_run_gold_set(self, request: AgentAction) -> GoldSetResult:
        return await self._agents.run_gold_set(request)

    # ---- the daily cockpit report ---------------------------------------------------------------------

    @activity.defn(name="report_fleet_usage")
    @heartbeating
    async def fleet_usage(self, request: UsageQuery) -> FleetUsage:
        return await self._agents.fleet_usage(request)

    def all(self) -> list[Any]:
        """Every activity of this class, for the worker's list."""
        return [
            self.pause_agent,
            self.rollback_agent,
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
            self.security_revoke_tokens,
            self.collect_evidence,
            self.security_run_gold_set,
            self.fleet_usage,
        ]
