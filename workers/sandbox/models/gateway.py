"""The sandbox's own state of the gateway runtimes, and the scenario models that set it up.

A runtime has memory against its cgroup high watermark, scheduled runs, junk files on disk, the safe restart,
risky spawns, the review queue, sessions and their tasks, the chained-execution freeze and the service log.
What the contract's routes take and answer are `schemas/gateway.py`'s models."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from schemas.gateway import GatewayFlags, GatewayStatus, RetryMode
from workers.sandbox.common import now_iso

RunStatus = Literal["alive", "dead"]


TaskStatus = Literal["running", "queued", "done", "review"]


class RuntimeTask(BaseModel):
    task_id: str
    state: TaskStatus = "running"


class RuntimeSession(BaseModel):
    session_id: str
    alive: bool = True
    tasks: list[RuntimeTask] = []
    # Failures of this session's tasks the platform remembers (last 7 days): what a retry policy rests on.
    past_failures: int = 0


class RetrySetting(BaseModel):
    mode: RetryMode
    max_attempts: int = Field(ge=0)
    backoff_s: int = Field(ge=0)
    reason: str = ""


class ReviewItem(BaseModel):
    id: int
    kind: str
    title: str
    detail: str = ""
    at: str = ""


class RuntimeEvent(BaseModel):
    at: str
    event: str
    detail: str = ""


class GatewayRuntime(BaseModel):
    name: str
    memory_mb: float = 620.0
    high_watermark_mb: float = 1536.0
    healthy: bool = True
    zombie: bool = False
    restarts: int = 0
    resource_pressure: bool = False
    spawns_blocked: bool = False
    chain_frozen: bool = False
    chain_frozen_until: str | None = None
    scheduled_runs: dict[str, RunStatus] = {}
    files: list[str] = []
    sessions: dict[str, RuntimeSession] = {}
    retry_settings: dict[str, RetrySetting] = {}
    reviews: list[ReviewItem] = []
    events: list[RuntimeEvent] = []
    log_lines: list[str] = []
    # Internal, set by a scenario: what a restart leaves of the memory, and how many health checks after a
    # restart still answer "starting" (a large number: the gateway never comes back).
    restart_memory_ratio: float = Field(0.4, exclude=True)
    unhealthy_checks_after_restart: int = Field(1, exclude=True)
    pending_unhealthy_checks: int = Field(0, exclude=True)

    def record(self, event: str, detail: str = "") -> None:
        self.events.append(RuntimeEvent(at=now_iso(), event=event, detail=detail))
        self.log_lines.append(f"{now_iso()} {self.name}[{event}]: {detail}".rstrip(": "))


class GatewayRuntimeSpec(BaseModel):
    memory_mb: float = 620.0
    high_watermark_mb: float = Field(1536.0, gt=0)
    healthy: bool = True
    zombie: bool = False
    scheduled_runs: dict[str, RunStatus] = {}
    files: list[str] = []
    sessions: list[RuntimeSession] = []
    log_lines: list[str] = []
    restart_memory_ratio: float = Field(0.4, ge=0, le=1)
    unhealthy_checks_after_restart: int = Field(1, ge=0)


def status_of(runtime: GatewayRuntime, *, healthy: bool | None = None) -> GatewayStatus:
    return GatewayStatus(
        name=runtime.name,
        memory_mb=runtime.memory_mb,
        high_watermark_mb=runtime.high_watermark_mb,
        memory_ratio=round(runtime.memory_mb / runtime.high_watermark_mb, 4),
        healthy=runtime.healthy if healthy is None else healthy,
        zombie=runtime.zombie,
        restarts=runtime.restarts,
        chain_frozen=runtime.chain_frozen,
        spawns_blocked=runtime.spawns_blocked,
    )


def flags_of(runtime: GatewayRuntime) -> GatewayFlags:
    return GatewayFlags(
        name=runtime.name,
        resource_pressure=runtime.resource_pressure,
        spawns_blocked=runtime.spawns_blocked,
        chain_frozen=runtime.chain_frozen,
        chain_frozen_until=runtime.chain_frozen_until,
    )


def seed_gateway_runtimes() -> dict[str, GatewayRuntime]:
    # `stanch fire` scenarios act on this gateway: memory at 85 % of its watermark, two dead scheduled runs,
    # leftovers on disk and a dead session with work in flight.
    demo = new_runtime(
        "openclaw-gateway",
        GatewayRuntimeSpec(
            memory_mb=1310.0,
            scheduled_runs={"nightly-digest": "alive", "cron-7f2": "dead", "cron-9a1": "dead"},
            files=["sessions.json", "s-41.jsonl.deleted", "s-42.jsonl.corrupt", "s-43.jsonl"],
            sessions=[
                RuntimeSession(
                    session_id="sess-demo",
                    alive=False,
                    tasks=[RuntimeTask(task_id="task-101"), RuntimeTask(task_id="task-102", state="queued")],
                    past_failures=1,
                )
            ],
        ),
    )
    return {demo.name: demo}


def new_runtime(name: str, spec: GatewayRuntimeSpec) -> GatewayRuntime:
    runtime = GatewayRuntime(
        name=name,
        memory_mb=spec.memory_mb,
        high_watermark_mb=spec.high_watermark_mb,
        healthy=spec.healthy,
        zombie=spec.zombie,
        scheduled_runs=dict(spec.scheduled_runs),
        files=list(spec.files),
        sessions={session.session_id: session.model_copy(deep=True) for session in spec.sessions},
        log_lines=list(spec.log_lines),
        restart_memory_ratio=spec.restart_memory_ratio,
        unhealthy_checks_after_restart=spec.unhealthy_checks_after_restart,
    )
    runtime.record("created")
    return runtime
