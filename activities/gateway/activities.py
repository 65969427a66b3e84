"""The gateway runbooks' activities: each calls the gateway adapter the policy names (`[systems.gateway]`).

The activity type names are those recorded histories hold; new ones follow `<system>_<verb>`.
"""

from __future__ import annotations

from temporalio import activity

from activities.gateway.interface import Gateway
from activities.heartbeat import heartbeating
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


class GatewayActivities:
    """Built once in the worker around the gateway's adapter."""

    def __init__(self, gateway: Gateway) -> None:
        self._gateway = gateway

    @activity.defn(name="gateway_status")
    @heartbeating
    async def status(self, request: GatewayRead) -> GatewayStatus:
        return await self._gateway.status(request)

    @activity.defn(name="gateway_health")
    @heartbeating
    async def health(self, request: GatewayRead) -> GatewayStatus:
        return await self._gateway.health(request)

    @activity.defn(name="gateway_failure_history")
    @heartbeating
    async def failure_history(self, request: SessionRead) -> FailureHistory:
        return await self._gateway.failure_history(request)

    @activity.defn(name="gateway_mark_pressure")
    @heartbeating
    async def mark_pressure(self, request: GatewayEffect) -> GatewayFlags:
        return await self._gateway.mark_pressure(request)

    @activity.defn(name="gateway_block_risky_spawns")
    @heartbeating
    async def block_risky_spawns(self, request: GatewayEffect) -> GatewayFlags:
        return await self._gateway.block_risky_spawns(request)

    @activity.defn(name="gateway_open_review")
    @heartbeating
    async def open_review(self, request: ReviewOpening) -> ReviewTicket:
        return await self._gateway.open_review(request)

    @activity.defn(name="gateway_clean_scheduled_runs")
    @heartbeating
    async def clean_scheduled_runs(self, request: GatewayEffect) -> Cleanup:
        return await self._gateway.clean_scheduled_runs(request)

    @activity.defn(name="gateway_remove_junk_files")
    @heartbeating
    async def remove_junk_files(self, request: GatewayEffect) -> Cleanup:
        return await self._gateway.remove_junk_files(request)

    @activity.defn(name="gateway_safe_restart")
    @heartbeating
    async def safe_restart(self, request: GatewayEffect) -> SafeRestart:
        return await self._gateway.safe_restart(request)

    @activity.defn(name="gateway_move_tasks_to_review")
    @heartbeating
    async def move_tasks_to_review(self, request: SessionEffect) -> MovedTasks:
        return await self._gateway.move_tasks_to_review(request)

    @activity.defn(name="gateway_set_retry_policy")
    @heartbeating
    async def set_retry_policy(self, request: RetryPolicyChoice) -> RetryPolicySet:
        return await self._gateway.set_retry_policy(request)

    @activity.defn(name="gateway_freeze_chain")
    @heartbeating
    async def freeze_chain(self, request: ChainFreeze) -> GatewayFlags:
        return await self._gateway.freeze_chain(request)

    @activity.defn(name="gateway_unfreeze_chain")
    @heartbeating
    async def unfreeze_chain(self, request: GatewayEffect) -> GatewayFlags:
        return await self._gateway.unfreeze_chain(request)

    @activity.defn(name="gateway_collect_logs")
    @heartbeating
    async def collect_logs(self, request: GatewayEffect) -> ServiceLogs:
        return await self._gateway.collect_logs(request)

    @activity.defn(name="gateway_collect_state")
    @heartbeating
    async def collect_state(self, request: GatewayEffect) -> StateSnapshot:
        return await self._gateway.collect_state(request)

    def all(self) -> list[object]:
        """Every activity of this class, for the worker's list."""
        return [
            self.status,
            self.health,
            self.failure_history,
            self.mark_pressure,
            self.block_risky_spawns,
            self.open_review,
            self.clean_scheduled_runs,
            self.remove_junk_files,
            self.safe_restart,
            self.move_tasks_to_review,
            self.set_retry_policy,
            self.freeze_chain,
            self.unfreeze_chain,
            self.collect_logs,
            self.collect_state,
        ]
