"""The gateway/runtime system's requests and results: what the gateway runbooks send and read, the
adapters of `activities/gateway/` speak, and the sandbox's `/runtimes/{name}` routes answer.

Every effect carries the idempotency key the workflow chose; reads (status, health, failure history) carry
none. The `*Body` models are the HTTP contract's request bodies (docs/platform-openapi.json): the http
adapter sends them and the sandbox reads them; the results travel as they are.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from schemas.actions import SET_BY_ACT
from schemas.systems import EffectReason

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
    # Who approved it when a human did (a restart past the guardrail's limit): the gateway's own limiter
    # lets an approved action through instead of refusing a decision a person already made.
    approved_by: str = ""


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


# ---- what the http contract carries (the path names the gateway and the session) ----------------------


class SafeRestartBody(EffectReason):
    """`POST /runtimes/{name}/safe-restart`: a restart needs a documented reason."""

    # A gateway with a restart limit of its own lets an approved restart through instead of refusing a
    # decision a person already made (the command adapter passes the same in the script's environment).
    approved_by: str = ""


class ReviewBody(BaseModel):
    """`POST /runtimes/{name}/reviews`."""

    kind: str = Field(description="resource_pressure, retry_storm … what the reviewer is looking at")
    title: str
    detail: str = ""


class RetryPolicyBody(EffectReason):
    """`POST /runtimes/{name}/sessions/{session_id}/retry-policy`: how these tasks are retried from now on."""

    task_ids: list[str] = []
    mode: RetryMode
    max_attempts: int = Field(ge=0)
    backoff_s: int = Field(ge=0)


class ChainFreezeBody(EffectReason):
    """`POST /runtimes/{name}/chain/freeze`."""

    minutes: int = Field(30, ge=1)
    until: str | None = Field(None, description="when the freeze is due to be lifted, ISO 8601")


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
