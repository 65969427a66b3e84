"""The gateway/runtime system: one gateway process and the sub-agent sessions it runs.

The gateway runbooks (safe restart, resource pressure, lost session, retry storm, zombie gateway) act on it
only through this interface. Adapters: `http` (the contract, the sandbox's `/runtimes/{name}`) and
`command` (the operator's own scripts, e.g. examples/gateway/safe-restart).
"""

from __future__ import annotations

from abc import abstractmethod
from typing import ClassVar

from activities.adapters import Adapter
from schemas.gateway import (
    ChainFreeze,
    Cleanup,
    FailureHistory,
    GatewayEffect,
    GatewayFlags,
    GatewayRead,
    GatewayStatus,
    MovedTasks,
    RetryPolicyChoice,
    RetryPolicySet,
    ReviewOpening,
    ReviewTicket,
    SafeRestart,
    ServiceLogs,
    SessionEffect,
    SessionRead,
    StateSnapshot,
)
from schemas.systems import SystemName


class Gateway(Adapter):
    system: ClassVar[SystemName] = "gateway"

    # ---- reads: change nothing ----------------------------------------------------------------------

    @abstractmethod
    async def status(self, request: GatewayRead) -> GatewayStatus:
        """Memory against the high watermark, health, restarts and flags, as the gateway reports them now."""

    @abstractmethod
    async def health(self, request: GatewayRead) -> GatewayStatus:
        """The health check a restart is confirmed by; `healthy` false while it is still starting."""

    @abstractmethod
    async def failure_history(self, request: SessionRead) -> FailureHistory:
        """How often the session's tasks failed before."""

    # ---- resource pressure --------------------------------------------------------------------------

    @abstractmethod
    async def mark_pressure(self, request: GatewayEffect) -> GatewayFlags:
        """Mark the gateway as under resource pressure (its scheduler stops adding load)."""

    @abstractmethod
    async def block_risky_spawns(self, request: GatewayEffect) -> GatewayFlags:
        """Refuse new heavy sub-agent spawns until the pressure is gone."""

    @abstractmethod
    async def open_review(self, request: ReviewOpening) -> ReviewTicket:
        """Open a review item for a person to look at."""

    # ---- safe restart -------------------------------------------------------------------------------

    @abstractmethod
    async def clean_scheduled_runs(self, request: GatewayEffect) -> Cleanup:
        """Remove dead scheduled runs, so the restart does not reload them."""

    @abstractmethod
    async def remove_junk_files(self, request: GatewayEffect) -> Cleanup:
        """Remove `.deleted` and `.corrupt` files from the gateway's data."""

    @abstractmethod
    async def safe_restart(self, request: GatewayEffect) -> SafeRestart:
        """Restart through the gateway's safe path only (never the service manager directly), once per key."""

    # ---- lost session -------------------------------------------------------------------------------

    @abstractmethod
    async def move_tasks_to_review(self, request: SessionEffect) -> MovedTasks:
        """Move a lost session's pending tasks to the review queue."""

    @abstractmethod
    async def set_retry_policy(self, request: RetryPolicyChoice) -> RetryPolicySet:
        """Set how the lost session's tasks are retried."""

    # ---- retry storm --------------------------------------------------------------------------------

    @abstractmethod
    async def freeze_chain(self, request: ChainFreeze) -> GatewayFlags:
        """Stop chained execution (tasks spawning tasks) until `until`."""

    @abstractmethod
    async def unfreeze_chain(self, request: GatewayEffect) -> GatewayFlags:
        """Lift the chained-execution freeze."""

    # ---- zombie gateway -----------------------------------------------------------------------------

    @abstractmethod
    async def collect_logs(self, request: GatewayEffect) -> ServiceLogs:
        """Keep the service's recent logs as evidence before anything restarts."""

    @abstractmethod
    async def collect_state(self, request: GatewayEffect) -> StateSnapshot:
        """Keep a snapshot of the gateway's state as evidence."""
