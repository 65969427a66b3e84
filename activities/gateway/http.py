"""The gateway over the documented HTTP contract: `/runtimes/{name}/...` (docs/platform-openapi.json), as
the sandbox implements it."""

from __future__ import annotations

from pydantic import BaseModel

from activities.gateway.interface import Gateway
from activities.http import HttpConnection, M
from schemas.gateway import (
    ChainFreeze,
    ChainFreezeBody,
    Cleanup,
    FailureHistory,
    GatewayEffect,
    GatewayFlags,
    GatewayRead,
    GatewayStatus,
    MovedTasks,
    RetryPolicyBody,
    RetryPolicyChoice,
    RetryPolicySet,
    ReviewBody,
    ReviewOpening,
    ReviewTicket,
    SafeRestart,
    SafeRestartBody,
    ServiceLogs,
    SessionEffect,
    SessionRead,
    StateSnapshot,
)
from schemas.systems import EffectReason


class HttpGateway(HttpConnection, Gateway):
    """The gateway over the HTTP contract (`/runtimes/{name}/...`)."""

    async def _get(self, path: str, result: type[M], what: str) -> M:
        return await self._http.read(f"/runtimes/{path}", result, what)

    async def _post(self, path: str, key: str, body: BaseModel, result: type[M], what: str) -> M:
        return await self._http.effect(
            "POST", f"/runtimes/{path}", key=key, body=body, result=result, what=what
        )

    async def _effect(
        self, verb: str, request: GatewayEffect, result: type[M], what: str, body: BaseModel | None = None
    ) -> M:
        """An effect on the gateway itself; its body is the reason unless the route takes more."""
        return await self._post(
            f"{request.gateway}/{verb}",
            request.idempotency_key,
            EffectReason(reason=request.reason) if body is None else body,
            result,
            f"{what} on gateway {request.gateway}",
        )

    # ---- reads ------------------------------------------------------------------------------------------

    async def status(self, request: GatewayRead) -> GatewayStatus:
        what = f"status of gateway {request.gateway}"
        return await self._get(f"{request.gateway}/status", GatewayStatus, what)

    async def health(self, request: GatewayRead) -> GatewayStatus:
        what = f"health of gateway {request.gateway}"
        return await self._get(f"{request.gateway}/health", GatewayStatus, what)

    async def failure_history(self, request: SessionRead) -> FailureHistory:
        path = f"{request.gateway}/sessions/{request.session_id}/failures"
        what = f"failure history of session {request.session_id}"
        return await self._get(path, FailureHistory, what)

    # ---- resource pressure ------------------------------------------------------------------------------

    async def mark_pressure(self, request: GatewayEffect) -> GatewayFlags:
        return await self._effect("pressure", request, GatewayFlags, "mark resource pressure")

    async def block_risky_spawns(self, request: GatewayEffect) -> GatewayFlags:
        return await self._effect("spawns/block", request, GatewayFlags, "block risky spawns")

    async def open_review(self, request: ReviewOpening) -> ReviewTicket:
        body = ReviewBody(kind=request.kind, title=request.title, detail=request.detail)
        what = f"open review on gateway {request.gateway}"
        path = f"{request.gateway}/reviews"
        return await self._post(path, request.idempotency_key, body, ReviewTicket, what)

    # ---- safe restart -----------------------------------------------------------------------------------

    async def clean_scheduled_runs(self, request: GatewayEffect) -> Cleanup:
        return await self._effect("scheduled-runs/clean", request, Cleanup, "clean dead scheduled runs")

    async def remove_junk_files(self, request: GatewayEffect) -> Cleanup:
        return await self._effect("files/clean", request, Cleanup, "remove junk files")

    async def safe_restart(self, request: GatewayEffect) -> SafeRestart:
        body = SafeRestartBody(reason=request.reason, approved_by=request.approved_by)
        return await self._effect("safe-restart", request, SafeRestart, "safe restart", body)

    # ---- lost session -----------------------------------------------------------------------------------

    async def move_tasks_to_review(self, request: SessionEffect) -> MovedTasks:
        body = EffectReason(reason=request.reason)
        what = f"move tasks of session {request.session_id} to review"
        path = f"{request.gateway}/sessions/{request.session_id}/tasks/review"
        return await self._post(path, request.idempotency_key, body, MovedTasks, what)

    async def set_retry_policy(self, request: RetryPolicyChoice) -> RetryPolicySet:
        body = RetryPolicyBody(
            task_ids=request.task_ids,
            mode=request.mode,
            max_attempts=request.max_attempts,
            backoff_s=request.backoff_s,
            reason=request.reason,
        )
        what = f"set retry policy for session {request.session_id}"
        path = f"{request.gateway}/sessions/{request.session_id}/retry-policy"
        return await self._post(path, request.idempotency_key, body, RetryPolicySet, what)

    # ---- retry storm ------------------------------------------------------------------------------------

    async def freeze_chain(self, request: ChainFreeze) -> GatewayFlags:
        body = ChainFreezeBody(reason=request.reason, minutes=request.minutes, until=request.until)
        what = f"freeze chained execution on gateway {request.gateway}"
        path = f"{request.gateway}/chain/freeze"
        return await self._post(path, request.idempotency_key, body, GatewayFlags, what)

    async def unfreeze_chain(self, request: GatewayEffect) -> GatewayFlags:
        what = "lift the chained-execution freeze"
        return await self._effect("chain/unfreeze", request, GatewayFlags, what)

    # ---- zombie gateway ---------------------------------------------------------------------------------

    async def collect_logs(self, request: GatewayEffect) -> ServiceLogs:
        return await self._effect("logs/collect", request, ServiceLogs, "collect service logs")

    async def collect_state(self, request: GatewayEffect) -> StateSnapshot:
        return await self._effect("state/collect", request, StateSnapshot, "collect state")
