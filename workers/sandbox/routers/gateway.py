"""The gateway/runtime system (`/runtimes/{name}`): the contract's gateway routes.

One runtime per gateway a runbook looks after: memory against its cgroup high watermark, scheduled runs,
junk files on disk, the safe restart path and the health check it is confirmed by, risky spawns, the review
queue, sessions and their tasks, the chained-execution freeze and the service log. Bodies and answers are
`schemas/gateway.py`'s models, the ones the http adapter (`activities/gateway/http.py`) sends and reads."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException

from schemas.gateway import (
    ChainFreezeBody,
    Cleanup,
    FailureHistory,
    GatewayFlags,
    GatewayStatus,
    MovedTasks,
    RetryPolicyBody,
    RetryPolicySet,
    ReviewBody,
    ReviewTicket,
    SafeRestart,
    SafeRestartBody,
    ServiceLogs,
    StateSnapshot,
)
from schemas.systems import EffectReason
from workers.sandbox.common import found_or_404, now_iso
from workers.sandbox.dependencies import SandboxDep, require_idempotency_key
from workers.sandbox.models.gateway import (
    GatewayRuntime,
    RetrySetting,
    ReviewItem,
    RuntimeSession,
    flags_of,
    status_of,
)
from workers.sandbox.state import Sandbox

# Reads: not effects a runbook performs, so no key is needed.
router = APIRouter()
# Everything on this router changes the stand-in's state, so it must be safe to retry.
effects = APIRouter(dependencies=[Depends(require_idempotency_key)])


JUNK_SUFFIXES = (".deleted", ".corrupt")


def runtime_of(sandbox: Sandbox, name: str) -> GatewayRuntime:
    return found_or_404(sandbox.gateway_runtimes, name, f"unknown gateway {name}")


def _set_flags(sandbox: Sandbox, name: str, event: str, detail: str, **flags: Any) -> GatewayFlags:
    """Set the runtime's flags (in the order given), record `event` in its history, answer its flags."""
    runtime = runtime_of(sandbox, name)
    for flag, value in flags.items():
        setattr(runtime, flag, value)
    runtime.record(event, detail)
    return flags_of(runtime)


def _session(runtime: GatewayRuntime, session_id: str) -> RuntimeSession:
    return found_or_404(runtime.sessions, session_id, f"gateway {runtime.name} has no session {session_id}")


@router.get("/runtimes/{name}/status")
async def runtime_status(sandbox: SandboxDep, name: str) -> GatewayStatus:
    """Memory against the high watermark, health, restarts and flags, as the gateway reports them now."""
    return status_of(runtime_of(sandbox, name))


@router.get("/runtimes/{name}/health")
async def runtime_health(sandbox: SandboxDep, name: str) -> GatewayStatus:
    """The health check a restart is confirmed by; `healthy` is false while the gateway is still starting."""
    # Right after a restart the health check answers "starting" a configured number of times.
    runtime = runtime_of(sandbox, name)
    if runtime.pending_unhealthy_checks > 0:
        runtime.pending_unhealthy_checks -= 1
        if runtime.pending_unhealthy_checks == 0:
            runtime.healthy = True
            runtime.record("healthy", "health check passed after restart")
        return status_of(runtime, healthy=False)
    return status_of(runtime)


@router.get("/runtimes/{name}/sessions/{session_id}/failures")
async def runtime_session_failures(sandbox: SandboxDep, name: str, session_id: str) -> FailureHistory:
    """How often the session's tasks failed before (what a retry policy rests on)."""
    session = _session(runtime_of(sandbox, name), session_id)
    return FailureHistory(name=name, session_id=session_id, past_failures=session.past_failures)


@effects.post("/runtimes/{name}/pressure")
async def mark_runtime_pressure(
    sandbox: SandboxDep, name: str, request: EffectReason = EffectReason()
) -> GatewayFlags:
    """Mark the gateway as under resource pressure: its scheduler stops adding load."""
    return _set_flags(sandbox, name, "resource_pressure", request.reason, resource_pressure=True)


@effects.post("/runtimes/{name}/spawns/block")
async def block_runtime_spawns(
    sandbox: SandboxDep, name: str, request: EffectReason = EffectReason()
) -> GatewayFlags:
    """Refuse new heavy sub-agent spawns until the pressure is gone."""
    return _set_flags(sandbox, name, "risky_spawns_blocked", request.reason, spawns_blocked=True)


@effects.post("/runtimes/{name}/reviews", status_code=201)
async def open_runtime_review(sandbox: SandboxDep, name: str, request: ReviewBody) -> ReviewTicket:
    """Open a review item for a person to look at; answered 201 with its ticket."""
    runtime = runtime_of(sandbox, name)
    item = ReviewItem(id=len(runtime.reviews) + 1, at=now_iso(), **request.model_dump())
    runtime.reviews.append(item)
    runtime.record("review_opened", f"{request.kind}: {request.title}")
    return ReviewTicket(id=item.id, kind=item.kind, title=item.title)


@effects.post("/runtimes/{name}/scheduled-runs/clean")
async def clean_runtime_scheduled_runs(
    sandbox: SandboxDep, name: str, request: EffectReason = EffectReason()
) -> Cleanup:
    """Remove the dead scheduled runs, so a restart does not reload them."""
    runtime = runtime_of(sandbox, name)
    dead = sorted(run for run, status in runtime.scheduled_runs.items() if status == "dead")
    for run in dead:
        del runtime.scheduled_runs[run]
    runtime.record("scheduled_runs_cleaned", f"removed {len(dead)}")
    return Cleanup(name=name, removed=len(dead), removed_items=dead, remaining=len(runtime.scheduled_runs))


@effects.post("/runtimes/{name}/files/clean")
async def clean_runtime_files(
    sandbox: SandboxDep, name: str, request: EffectReason = EffectReason()
) -> Cleanup:
    """Remove `.deleted` and `.corrupt` files from the gateway's data."""
    runtime = runtime_of(sandbox, name)
    junk = [path for path in runtime.files if path.endswith(JUNK_SUFFIXES)]
    runtime.files = [path for path in runtime.files if path not in junk]
    runtime.record("junk_files_removed", f"removed {len(junk)}")
    return Cleanup(name=name, removed=len(junk), removed_items=junk, remaining=len(runtime.files))


@effects.post("/runtimes/{name}/safe-restart")
async def safe_restart_runtime(
    sandbox: SandboxDep, name: str, request: SafeRestartBody = SafeRestartBody()
) -> SafeRestart:
    """Restart through the gateway's safe path only (never the service manager directly); 422 without a
    reason."""
    # The only restart this stand-in offers: the wrapper that checks, announces and restarts the service.
    # It keeps no restart limit of its own (Stanch's guardrail is the limit), so `approved_by` changes
    # nothing here.
    runtime = runtime_of(sandbox, name)
    if not request.reason.strip():
        raise HTTPException(422, "a safe restart needs a documented reason")
    before = runtime.memory_mb
    runtime.memory_mb = round(before * runtime.restart_memory_ratio, 1)
    runtime.restarts += 1
    runtime.zombie = False
    runtime.pending_unhealthy_checks = runtime.unhealthy_checks_after_restart
    runtime.healthy = runtime.pending_unhealthy_checks == 0
    runtime.record("safe_restart", request.reason)
    return SafeRestart(
        name=name,
        memory_before_mb=before,
        memory_mb=runtime.memory_mb,
        restarts=runtime.restarts,
        reason=request.reason,
    )


@effects.post("/runtimes/{name}/sessions/{session_id}/tasks/review")
async def move_runtime_tasks_to_review(
    sandbox: SandboxDep, name: str, session_id: str, request: EffectReason = EffectReason()
) -> MovedTasks:
    """Move a lost session's running and queued tasks to the review queue."""
    runtime = runtime_of(sandbox, name)
    session = _session(runtime, session_id)
    moved = [task.task_id for task in session.tasks if task.state in ("running", "queued")]
    for task in session.tasks:
        if task.task_id in moved:
            task.state = "review"
    runtime.record("tasks_to_review", f"{session_id}: {', '.join(moved) or 'none'}")
    return MovedTasks(name=name, session_id=session_id, task_ids=moved)


@effects.post("/runtimes/{name}/sessions/{session_id}/retry-policy")
async def set_runtime_retry_policy(
    sandbox: SandboxDep, name: str, session_id: str, request: RetryPolicyBody
) -> RetryPolicySet:
    """Set how the lost session's tasks are retried from now on."""
    runtime = runtime_of(sandbox, name)
    _session(runtime, session_id)
    setting = RetrySetting(**request.model_dump(exclude={"task_ids"}))
    for task_id in request.task_ids:
        runtime.retry_settings[task_id] = setting
    runtime.record("retry_policy", f"{session_id}: {setting.mode} x{setting.max_attempts}")
    return RetryPolicySet(
        session_id=session_id,
        task_ids=request.task_ids,
        mode=setting.mode,
        max_attempts=setting.max_attempts,
        backoff_s=setting.backoff_s,
    )


@effects.post("/runtimes/{name}/chain/freeze")
async def freeze_runtime_chain(sandbox: SandboxDep, name: str, request: ChainFreezeBody) -> GatewayFlags:
    """Stop chained execution (tasks spawning tasks) until `until`."""
    detail = f"{request.minutes} min: {request.reason}"
    return _set_flags(
        sandbox, name, "chain_frozen", detail, chain_frozen=True, chain_frozen_until=request.until
    )


@effects.post("/runtimes/{name}/chain/unfreeze")
async def unfreeze_runtime_chain(
    sandbox: SandboxDep, name: str, request: EffectReason = EffectReason()
) -> GatewayFlags:
    """Lift the chained-execution freeze."""
    return _set_flags(
        sandbox, name, "chain_unfrozen", request.reason, chain_frozen=False, chain_frozen_until=None
    )


@effects.post("/runtimes/{name}/logs/collect")
async def collect_runtime_logs(
    sandbox: SandboxDep, name: str, request: EffectReason = EffectReason()
) -> ServiceLogs:
    """Keep the service's recent log lines as evidence before anything restarts."""
    # A POST with a key: the bundle handed to a human must be the same one the audit log points at.
    runtime = runtime_of(sandbox, name)
    lines = runtime.log_lines[-200:]
    runtime.record("logs_collected", f"{len(lines)} lines")
    return ServiceLogs(name=name, lines=lines)


@effects.post("/runtimes/{name}/state/collect")
async def collect_runtime_state(
    sandbox: SandboxDep, name: str, request: EffectReason = EffectReason()
) -> StateSnapshot:
    """Keep a snapshot of the gateway's state as evidence."""
    runtime = runtime_of(sandbox, name)
    runtime.record("state_collected", request.reason)
    return StateSnapshot(
        **status_of(runtime).model_dump(),
        sessions=len(runtime.sessions),
        live_sessions=sum(1 for session in runtime.sessions.values() if session.alive),
        scheduled_runs=len(runtime.scheduled_runs),
        pending_reviews=len(runtime.reviews),
    )


router.include_router(effects)
