"""Effects on a gateway runtime and its sub-agents (the sandbox platform's `/runtimes/{name}` in dev and tests).

The request and result models live here with the activities: only the gateway runbooks use them. Every
effect carries the idempotency key the workflow chose; reads (status, health, failure history) carry none.
"""

from __future__ import annotations

from typing import Any, Literal

import httpx
from pydantic import BaseModel, Field
from temporalio import activity

from activities.heartbeat import heartbeating
from activities.http import M, PlatformHttp
from schemas.actions import SET_BY_ACT

RetryMode = Literal["retry", "retry_with_backoff", "manual_only"]


# ---- what runbooks send ---------------------------------------------------------------------------------


class GatewayRead(BaseModel):
    """Read one gateway's state; no effect, so no idempotency key."""

    gateway: str


class GatewayEffect(BaseModel):
    """One effect on a gateway; `reason` is kept with it on the platform."""

    gateway: str
    idempotency_key: str = Field("", description=SET_BY_ACT)
    reason: str = ""


class ReviewOpening(GatewayEffect):
    kind: str = Field(description="resource_pressure, retry_storm … what the reviewer is looking at")
    title: str
    detail: str = ""


class ChainFreeze(GatewayEffect):
    minutes: int = Field(ge=1)
    until: str = Field(description="when the freeze is due to be lifted, ISO 8601")


class SessionRead(BaseModel):
    gateway: str
    session_id: str


class SessionEffect(GatewayEffect):
    session_id: str


class RetryPolicyChoice(SessionEffect):
    task_ids: list[str]
    mode: RetryMode
    max_attempts: int = Field(ge=0)
    backoff_s: int = Field(ge=0)


# ---- what the platform answers ----------------------------------------------------------------------------


class GatewayStatus(BaseModel):
    name: str
    memory_mb: float
    high_watermark_mb: float
    memory_ratio: float = Field(description="memory over the cgroup high watermark, 0..1+")
    healthy: bool
    zombie: bool = False
    restarts: int = 0
    chain_frozen: bool = False
    spawns_blocked: bool = False


class GatewayFlags(BaseModel):
    name: str
    resource_pressure: bool
    spawns_blocked: bool
    chain_frozen: bool
    chain_frozen_until: str | None = None
    replayed: bool = False


class ReviewTicket(BaseModel):
    id: int
    kind: str
    title: str
    replayed: bool = False


class Cleanup(BaseModel):
    name: str
    removed: int
    removed_items: list[str]
    remaining: int
    replayed: bool = False


class SafeRestart(BaseModel):
    name: str
    memory_before_mb: float
    memory_mb: float
    restarts: int
    reason: str
    replayed: bool = False


class MovedTasks(BaseModel):
    name: str
    session_id: str
    task_ids: list[str]
    replayed: bool = False


class FailureHistory(BaseModel):
    name: str
    session_id: str
    past_failures: int


class RetryPolicySet(BaseModel):
    session_id: str
    task_ids: list[str]
    mode: RetryMode
    max_attempts: int
    backoff_s: int
    replayed: bool = False


class ServiceLogs(BaseModel):
    name: str
    lines: list[str]
    replayed: bool = False


class StateSnapshot(GatewayStatus):
    sessions: int
    live_sessions: int
    scheduled_runs: int
    pending_reviews: int
    replayed: bool = False


class GatewayActivities:
    """Built once in the worker with the platform's HTTP client."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self._http = PlatformHttp(client)

    async def _get(self, path: str, result: type[M], what: str) -> M:
        return await self._http.read(f"/runtimes/{path}", result, what)

    async def _post(self, path: str, key: str, body: dict[str, Any], result: type[M], what: str) -> M:
        return await self._http.effect(
            "POST", f"/runtimes/{path}", key=key, body=body, result=result, what=what
        )

    async def _effect(self, verb: str, request: GatewayEffect, result: type[M], what: str) -> M:
        return await self._post(
            f"{request.gateway}/{verb}",
            request.idempotency_key,
            {"reason": request.reason},
            result,
            f"{what} on gateway {request.gateway}",
        )

    # ---- reads ------------------------------------------------------------------------------------------

    @activity.defn(name="gateway_status")
    @heartbeating
    async def status(self, request: GatewayRead) -> GatewayStatus:
        what = f"status of gateway {request.gateway}"
        return await self._get(f"{request.gateway}/status", GatewayStatus, what)

    @activity.defn(name="gateway_health")
    @heartbeating
    async def health(self, request: GatewayRead) -> GatewayStatus:
        what = f"health of gateway {request.gateway}"
        return await self._get(f"{request.gateway}/health", GatewayStatus, what)

    @activity.defn(name="gateway_failure_history")
    @heartbeating
    async def failure_history(self, request: SessionRead) -> FailureHistory:
        path = f"{request.gateway}/sessions/{request.session_id}/failures"
        what = f"failure history of session {request.session_id}"
        return await self._get(path, FailureHistory, what)

    # ---- resource pressure ------------------------------------------------------------------------------

    @activity.defn(name="gateway_mark_pressure")
    @heartbeating
    async def mark_pressure(self, request: GatewayEffect) -> GatewayFlags:
        return await self._effect("pressure", request, GatewayFlags, "mark resource pressure")

    @activity.defn(name="gateway_block_risky_spawns")
    @heartbeating
    async def block_risky_spawns(self, request: GatewayEffect) -> GatewayFlags:
        return await self._effect("spawns/block", request, GatewayFlags, "block risky spawns")

    @activity.defn(name="gateway_open_review")
    @heartbeating
    async def open_review(self, request: ReviewOpening) -> ReviewTicket:
        body = {"kind": request.kind, "title": request.title, "detail": request.detail}
        what = f"open review on gateway {request.gateway}"
        path = f"{request.gateway}/reviews"
        return await self._post(path, request.idempotency_key, body, ReviewTicket, what)

    # ---- safe restart -----------------------------------------------------------------------------------

    @activity.defn(name="gateway_clean_scheduled_runs")
    @heartbeating
    async def clean_scheduled_runs(self, request: GatewayEffect) -> Cleanup:
        return await self._effect("scheduled-runs/clean", request, Cleanup, "clean dead scheduled runs")

    @activity.defn(name="gateway_remove_junk_files")
    @heartbeating
    async def remove_junk_files(self, request: GatewayEffect) -> Cleanup:
        return await self._effect("files/clean", request, Cleanup, "remove junk files")

    @activity.defn(name="gateway_safe_restart")
    @heartbeating
    async def safe_restart(self, request: GatewayEffect) -> SafeRestart:
        return await self._effect("safe-restart", request, SafeRestart, "safe restart")

    # ---- lost session -----------------------------------------------------------------------------------

    @activity.defn(name="gateway_move_tasks_to_review")
    @heartbeating
    async def move_tasks_to_review(self, request: SessionEffect) -> MovedTasks:
        body = {"reason": request.reason}
        what = f"move tasks of session {request.session_id} to review"
        path = f"{request.gateway}/sessions/{request.session_id}/tasks/review"
        return await self._post(path, request.idempotency_key, body, MovedTasks, what)

    @activity.defn(name="gateway_set_retry_policy")
    @heartbeating
    async def set_retry_policy(self, request: RetryPolicyChoice) -> RetryPolicySet:
        body = {
            "task_ids": request.task_ids,
            "mode": request.mode,
            "max_attempts": request.max_attempts,
            "backoff_s": request.backoff_s,
            "reason": request.reason,
        }
        what = f"set retry policy for session {request.session_id}"
        path = f"{request.gateway}/sessions/{request.session_id}/retry-policy"
        return await self._post(path, request.idempotency_key, body, RetryPolicySet, what)

    # ---- retry storm ------------------------------------------------------------------------------------

    @activity.defn(name="gateway_freeze_chain")
    @heartbeating
    async def freeze_chain(self, request: ChainFreeze) -> GatewayFlags:
        body = {"reason": request.reason, "minutes": request.minutes, "until": request.until}
        what = f"freeze chained execution on gateway {request.gateway}"
        path = f"{request.gateway}/chain/freeze"
        return await self._post(path, request.idempotency_key, body, GatewayFlags, what)

    @activity.defn(name="gateway_unfreeze_chain")
    @heartbeating
    async def unfreeze_chain(self, request: GatewayEffect) -> GatewayFlags:
        what = "lift the chained-execution freeze"
        return await self._effect("chain/unfreeze", request, GatewayFlags, what)

    # ---- zombie gateway ---------------------------------------------------------------------------------

    @activity.defn(name="gateway_collect_logs")
    @heartbeating
    async def collect_logs(self, request: GatewayEffect) -> ServiceLogs:
        return await self._effect("logs/collect", request, ServiceLogs, "collect service logs")

    @activity.defn(name="gateway_collect_state")
    @heartbeating
    async def collect_state(self, request: GatewayEffect) -> StateSnapshot:
        return await self._effect("state/collect", request, StateSnapshot, "collect state")
