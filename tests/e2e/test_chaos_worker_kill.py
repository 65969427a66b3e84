"""Chaos on the real stack: the worker process dies with SIGKILL in the middle of a runbook and a new worker
finishes it. Every effect happens once, and the audit log has no gap and no duplicate.

Two moments: while the incident is parked waiting for approval (after the pause), and while the pause call
itself is in flight (the platform holds it, having failed it or having applied it). The second is the
harder one: Temporal cannot see the attempt die with its worker. The effect heartbeats every second while
its call is in flight (`activities.heartbeat`), so the attempt times out on its heartbeat timeout
(5 s, `EFFECT_HEARTBEAT_TIMEOUT`) rather than its start-to-close timeout (30 s, `EFFECT_TIMEOUT`), and
the new worker retries it within seconds, with the same Idempotency-Key as the dead one's.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType, TimeoutType
from temporalio.api.history.v1 import ActivityTaskScheduledEventAttributes

from schemas.incidents import IncidentResult
from stanch.ops.devstack import child_environment
from stanch.policy import Policy
from stanch.settings import Settings
from stanch.temporal_client import connect
from tests.helpers import EMERGENCY_STOP_APPROVED_STEPS, audit_rows, http_client
from tests.stack import (
    agent,
    applied,
    attempts_that_ended,
    brief_state,
    eventually,
    history,
    open_emergency_stop,
    temporal_signal,
    terminate_running,
)
from workflows.steps.policies import EFFECT_HEARTBEAT_TIMEOUT, EFFECT_TIMEOUT

pytestmark = pytest.mark.e2e

APPROVED = EMERGENCY_STOP_APPROVED_STEPS

# How the platform holds the pause call the worker dies in, and the calls it then records (status, replayed).
HELD_PAUSES: dict[str, tuple[dict[str, Any], list[tuple[int, bool]]]] = {
    # It fails the held call: nothing happened, so the new worker's retry applies the pause.
    "failed": ({"status": 503}, [(503, False), (200, False)]),
    # It applied the pause and held only the answer: the retry, with the same key, is answered as a replay.
    "applied": ({"apply_first": True}, [(200, False), (200, True)]),
}


@pytest.fixture
def chaos(stack: Settings) -> Settings:
    """The shared stack, but a task queue of this test's own, so killing its worker harms nobody else."""
    return stack.model_copy(update={"task_queue": f"chaos-{uuid.uuid4().hex[:8]}"})


def start_worker(settings: Settings) -> subprocess.Popen[bytes]:
    worker = subprocess.Popen(
        [sys.executable, "-m", "stanch", "worker"],
        env=child_environment(settings),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    assert worker.stdout is not None
    for line in worker.stdout:  # bounded by the worker exiting if it cannot start
        if b"worker started" in line:
            return worker
    raise AssertionError(f"worker did not start (exit code {worker.wait()})")


def kill(worker: subprocess.Popen[bytes]) -> None:
    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait()


@pytest.fixture
def workers() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for worker in started:
        if worker.poll() is None:
            kill(worker)


@pytest.fixture
def incidents(chaos: Settings) -> Iterator[list[str]]:
    """The incidents a test opens; one a failed test left running is terminated, not left to the stack."""
    opened: list[str] = []
    yield opened
    terminate_running(chaos, opened)


@pytest.fixture
def faults(chaos: Settings) -> Iterator[str]:
    """The sandbox's fault list; whatever a test left in it is cleared at the end."""
    url = f"{chaos.platform_url}/faults"
    yield url
    http_client.delete(url).raise_for_status()


def new_agent(settings: Settings) -> str:
    agent_id = f"chaos-{uuid.uuid4().hex[:6]}"
    http_client.put(
        f"{settings.platform_url}/agents/{agent_id}", json={"versions": ["v1", "v2"]}
    ).raise_for_status()
    return agent_id


def scheduled_activities(
    settings: Settings, workflow_id: str, activity: str
) -> list[ActivityTaskScheduledEventAttributes]:
    """How the workflow scheduled each `activity`: its timeouts and retry policy, as the server holds them."""
    return [
        event.activity_task_scheduled_event_attributes
        for event in history(settings, workflow_id)
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        and event.activity_task_scheduled_event_attributes.activity_type.name == activity
    ]


def wait_for_approval_request(settings: Settings, workflow_id: str, timeout: float = 30.0) -> None:
    eventually(
        lambda: brief_state(settings, workflow_id) == "awaiting_approval",
        f"the approval request of {workflow_id}",
        timeout=timeout,
    )


def approve_and_finish(settings: Settings, workflow_id: str) -> IncidentResult:
    temporal_signal(settings, workflow_id, "approve", {"approver": "alice", "action": "rollback"})

    async def result() -> IncidentResult:
        client = await connect(settings)
        handle = client.get_workflow_handle(workflow_id, result_type=IncidentResult)
        return await asyncio.wait_for(handle.result(), timeout=90)

    return asyncio.run(result())


def test_a_killed_worker_is_replaced_and_no_effect_happens_twice(
    chaos: Settings, workers: list[subprocess.Popen[bytes]], incidents: list[str], policy: Policy
) -> None:
    workers.append(start_worker(chaos))
    agent_id = new_agent(chaos)
    workflow_id = open_emergency_stop(chaos, policy, agent_id, incidents)
    wait_for_approval_request(chaos, workflow_id)
    assert agent(chaos, agent_id)["state"] == "paused"

    kill(workers[0])
    workers.append(start_worker(chaos))

    assert approve_and_finish(chaos, workflow_id).final_state == "rolled_back"
    assert agent(chaos, agent_id)["version"] == "v1"
    assert applied(chaos, f"/agents/{agent_id}/pause") == 1
    assert applied(chaos, f"/agents/{agent_id}/rollback") == 1
    steps = [row["step_key"] for row in audit_rows(chaos, workflow_id)]
    assert steps == APPROVED, steps


def test_a_worker_killed_during_the_pause_call_is_replaced_and_the_pause_applies_once(
    chaos: Settings,
    workers: list[subprocess.Popen[bytes]],
    incidents: list[str],
    faults: str,
    policy: Policy,
) -> None:
    workers.append(start_worker(chaos))
    held: dict[str, tuple[str, str]] = {}
    for how, (fault, _) in HELD_PAUSES.items():
        agent_id = new_agent(chaos)
        hold = {"path_prefix": f"/agents/{agent_id}/pause", "hang_seconds": 5, **fault}
        http_client.post(faults, json=hold).raise_for_status()
        held[how] = agent_id, open_emergency_stop(chaos, policy, agent_id, incidents)

    # A fault leaves the list the moment a request takes it: both pause calls are at the platform, held.
    holding = {f"/agents/{agent_id}/pause" for agent_id, _ in held.values()}
    eventually(
        lambda: not holding & {fault["path_prefix"] for fault in http_client.get(faults).json()},
        "both pause calls to reach the platform",
    )
    killed_at = datetime.now(UTC)
    kill(workers[0])
    workers.append(start_worker(chaos))

    for how, (agent_id, workflow_id) in held.items():
        # The heartbeats stop with the worker: the retry comes after the heartbeat timeout, well inside 30 s.
        wait_for_approval_request(chaos, workflow_id, timeout=25)
        assert agent(chaos, agent_id)["state"] == "paused"
        assert approve_and_finish(chaos, workflow_id).final_state == "rolled_back"

        pause = f"/agents/{agent_id}/pause"
        calls = http_client.get(f"{chaos.platform_url}/calls", params={"path_prefix": pause}).json()
        assert [(call["status_code"], call["replayed"]) for call in calls] == HELD_PAUSES[how][1], how
        # The retried pause reached the platform seconds after the SIGKILL, not a start-to-close later.
        retried_after = datetime.fromisoformat(calls[-1]["at"]) - killed_at
        assert retried_after < EFFECT_TIMEOUT / 2, (how, retried_after)
        assert applied(chaos, pause) == 1
        assert applied(chaos, f"/agents/{agent_id}/rollback") == 1
        steps = [row["step_key"] for row in audit_rows(chaos, workflow_id)]
        assert steps == APPROVED, (how, steps)
        # The history says who finished the pause and why: the second attempt, on the new worker, after the
        # first timed out for want of heartbeats — not after its start-to-close timeout.
        [started] = attempts_that_ended(chaos, workflow_id, "pause_agent")
        assert started.attempt == 2
        assert started.identity.startswith(f"{workers[1].pid}@")
        timeout = started.last_failure.timeout_failure_info.timeout_type
        assert timeout == TimeoutType.TIMEOUT_TYPE_HEARTBEAT, started.last_failure
        [scheduled] = scheduled_activities(chaos, workflow_id, "pause_agent")
        assert scheduled.heartbeat_timeout.ToTimedelta() == EFFECT_HEARTBEAT_TIMEOUT
