"""The AI-agent platform: the agents the operator runs, their versions, workspaces, credentials and usage.

The agent runbooks (emergency stop, onboarding, upgrade, termination, the security incident) and the daily
cockpit report act on it only through this interface. Adapters: `http` (the contract, the sandbox's
`/agents/{agent_id}/...`). Every effect is applied once per idempotency key; a read changes nothing.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import ClassVar

from activities.adapters import Adapter
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
from schemas.systems import SystemName


class Agents(Adapter):
    system: ClassVar[SystemName] = "agents"

    # ---- reads: change nothing ----------------------------------------------------------------------

    @abstractmethod
    async def health(self, request: AgentAction) -> HealthResult:
        """Whether the agent answers its probe (false for an agent that is not running)."""

    @abstractmethod
    async def version_diff(self, request: DiffRequest) -> VersionDiff:
        """What changes between the agent's running version and `to_version`, and the config it would run."""

    @abstractmethod
    async def verify_archive(self, request: ArchiveCheck) -> ArchiveResult:
        """Read an archive back from the store: only what can be read back counts as archived."""

    @abstractmethod
    async def dependents(self, request: AgentAction) -> Dependents:
        """The agents that depend on this one."""

    @abstractmethod
    async def fleet_usage(self, request: UsageQuery) -> FleetUsage:
        """Tokens and tasks per agent over the last day (every running agent when none is named)."""

    # ---- stop and roll back -------------------------------------------------------------------------

    @abstractmethod
    async def pause(self, request: AgentAction) -> AgentState:
        """Stop the agent serving (it keeps its version, workspace and memory)."""

    @abstractmethod
    async def resume(self, request: AgentAction) -> AgentState:
        """Put a paused agent back in service."""

    @abstractmethod
    async def rollback(self, request: AgentRollback) -> AgentState:
        """Move the agent to an earlier version: `to_version`, or the one before the current one."""

    @abstractmethod
    async def revoke_tokens(self, request: AgentAction) -> CredentialsResult:
        """Revoke every access token the agent holds; answers how many, never which."""

    @abstractmethod
    async def run_gold_set(self, request: AgentAction) -> GoldSetResult:
        """Run the gold set on the agent's current version and score it against the threshold."""

    # ---- onboarding ---------------------------------------------------------------------------------

    @abstractmethod
    async def create_workspace(self, request: WorkspaceRequest) -> WorkspaceResult:
        """Write a new agent's workspace files; refused for a name a live agent already has."""

    @abstractmethod
    async def inject_config(self, request: ConfigRequest) -> ConfigResult:
        """Deploy a version and its config (a new agent starts paused; a known one moves to the version)."""

    @abstractmethod
    async def debug(self, request: AgentAction) -> DebugResult:
        """Have the platform trace the gold-set failures and ship a patched version."""

    # ---- upgrade ------------------------------------------------------------------------------------

    @abstractmethod
    async def snapshot_state(self, request: AgentAction) -> SnapshotResult:
        """Keep the agent's version, config and memory, to restore if an upgrade regresses."""

    @abstractmethod
    async def restore_snapshot(self, request: RestoreRequest) -> RestoreResult:
        """Put the agent back to a snapshot's version, config and memory."""

    # ---- termination --------------------------------------------------------------------------------

    @abstractmethod
    async def archive(self, request: AgentAction) -> ArchiveResult:
        """Archive the agent's workspace, memory and logs."""

    @abstractmethod
    async def terminate(self, request: AgentAction) -> AgentState:
        """Retire the agent for good."""

    @abstractmethod
    async def delete_secrets(self, request: AgentAction) -> CredentialsResult:
        """Delete the agent's secrets; refused while it has no archive."""

    @abstractmethod
    async def set_retention(self, request: RetentionRequest) -> RetentionResult:
        """Keep an archive until a date."""

    @abstractmethod
    async def notify_dependent(self, request: NoticeRequest) -> NoticeResult:
        """Deliver a notice to a dependent agent's inbox (it may run on another team's platform)."""

    # ---- security -----------------------------------------------------------------------------------

    @abstractmethod
    async def collect_evidence(self, request: EvidenceRequest) -> EvidenceBundle:
        """Gather the agent's history, its security events and the calls made about it, keep them in the
        evidence locker, and name the likely cause and the impact."""
