"""Effects on a gateway runtime and its sub-agents (the sandbox platform's `/runtimes/{name}` in dev and tests).

The request and result models live here with the activities: only the gateway runbooks use them. Every
effect carries the idempotency key the workflow chose; reads (status, health, failure history) carry none.
"""

from __future__ import annotations

from typing import Any, Literal

import httpx
from pydantic import BaseModel, Field
from temporalio import activity

from activities.errors import raise_for_status

RetryMode = Literal["retry", "retry_with_backoff", "manual_only"]


# ---- what runbooks send ---------------------------------------------------------------------------------


class GatewayRead(BaseModel):
    """Read one gateway's state; no effect, so no idempotency key."""

    gateway: str


class GatewayEffect(BaseModel):
    """One effect on a gateway; `reason` is kept with it on the platform."""

    gateway: str
    idempotency_key: str
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
        self._client = client

    async def _get(self, path: str, what: str) -> Any:
        response = await self._client.get(path)
        raise_for_status(response, what)
        return response.json()

    async def _post(self, path: str, key: str, body: dict[str, Any], what: str) -> Any:
        response = await self._client.post(path, json=body, headers={"Idempotency-Key": key})
        raise_for_status(response, what)
        return response.json()

    async def _effect(self, verb: str, request: GatewayEffect, what: str) -> Any:
        return await self._post(
            f"/runtimes/{request.gateway}/{verb}",
            request.idempotency_key,
            {"reason": request.reason},
            f"{what} on gateway {request.gateway}",
        )

    # ---- reads ------------------------------------------------------------------------------------------

    @activity.defn(name="gateway_status")
    async def status(self, request: GatewayRead) -> GatewayStatus:
        path = f"/runtimes/{request.gateway}/status"
        return GatewayStatus.model_validate(await self._get(path, f"status of gateway {request.gateway}"))

    @activity.defn(name="gateway_health")
    async def health(self, request: GatewayRead) -> GatewayStatus:
        path = f"/runtimes/{request.gateway}/health"
        return GatewayStatus.model_validate(await self._get(path, f"health of gateway {request.gateway}"))

    @activity.defn(name="gateway_failure_history")
    async def failure_history(self, request: SessionRead) -> FailureHistory:
        path = f"/runtimes/{request.gateway}/sessions/{request.session_id}/failures"
        what = f"failure history of session {request.session_id}"
        return FailureHistory.model_validate(await self._get(path, what))

    # ---- resource pressure ------------------------------------------------------------------------------

    @activity.defn(name="gateway_mark_pressure")
    async def mark_pressure(self, request: GatewayEffect) -> GatewayFlags:
        return GatewayFlags.model_validate(await self._effect("pressure", request, "mark resource pressure"))

    @activity.defn(name="gateway_block_risky_spawns")
    async def block_risky_spawns(self, request: GatewayEffect) -> GatewayFlags:
        return GatewayFlags.model_validate(await self._effect("spawns/block", request, "block risky spawns"))

    @activity.defn(name="gateway_open_review")
    async def open_review(self, request: ReviewOpening) -> ReviewTicket:
        body = {"kind": request.kind, "title": request.title, "detail": request.detail}
        payload = await self._post(
            f"/runtimes/{request.gateway}/reviews",
            request.idempotency_key,
            body,
            f"open review on gateway {request.gateway}",
        )
        return ReviewTicket.model_validate(payload)

    # ---- safe restart -----------------------------------------------------------------------------------

    @activity.defn(name="gateway_clean_scheduled_runs")
    async def clean_scheduled_runs(self, request: GatewayEffect) -> Cleanup:
        return Cleanup.model_validate(
            await self._effect("scheduled-runs/clean", request, "clean dead scheduled runs")
        )

    @activity.defn(name="gateway_remove_junk_files")
    async def remove_junk_files(self, request: GatewayEffect) -> Cleanup:
        return Cleanup.model_validate(await self._effect("files/clean", request, "remove junk files"))

    @activity.defn(name="gateway_safe_restart")
    async def safe_restart(self, request: GatewayEffect) -> SafeRestart:
        return SafeRestart.model_validate(await self._effect("safe-restart", request, "safe restart"))

    # ---- lost session -----------------------------------------------------------------------------------

    @activity.defn(name="gateway_move_tasks_to_review")
    async def move_tasks_to_review(self, request: SessionEffect) -> MovedTasks:
        payload = await self._post(
            f"/runtimes/{request.gateway}/sessions/{request.session_id}/tasks/review",
            request.idempotency_key,
            {"reason": request.reason},
            f"move tasks of session {request.session_id} to review",
        )
        return MovedTasks.model_validate(payload)

    @activity.defn(name="gateway_set_retry_policy")
    async def set_retry_policy(self, request: RetryPolicyChoice) -> RetryPolicySet:
        payload = await self._post(
            f"/runtimes/{request.gateway}/sessions/{request.session_id}/retry-policy",
            request.idempotency_key,
            {
                "task_ids": request.task_ids,
                "mode": request.mode,
                "max_attempts": request.max_attempts,
                "backoff_s": request.backoff_s,
                "reason": request.reason,
            },
            f"set retry policy for session {request.session_id}",
        )
        return RetryPolicySet.model_validate(payload)

    # ---- retry storm ------------------------------------------------------------------------------------

    @activity.defn(name="gateway_freeze_chain")
    async def freeze_chain(self, request: ChainFreeze) -> GatewayFlags:
        payload = await self._post(
            f"/runtimes/{request.gateway}/chain/freeze",
            request.idempotency_key,
            {"reason": request.reason, "minutes": request.minutes, "until": request.until},
            f"freeze chained execution on gateway {request.gateway}",
        )
        return GatewayFlags.model_validate(payload)

    @activity.defn(name="gateway_unfreeze_chain")
    async def unfreeze_chain(self, request: GatewayEffect) -> GatewayFlags:
        return GatewayFlags.model_validate(
            await self._effect("chain/unfreeze", request, "lift the chained-execution freeze")
        )

    # ---- zombie gateway ---------------------------------------------------------------------------------

    @activity.defn(name="gateway_collect_logs")
    async def collect_logs(self, request: GatewayEffect) -> ServiceLogs:
        return ServiceLogs.model_validate(await self._effect("logs/collect", request, "collect service logs"))

    @activity.defn(name="gateway_collect_state")
    async def collect_state(self, request: GatewayEffect) -> StateSnapshot:
        return StateSnapshot.model_validate(await self._effect("state/collect", request, "collect state"))
