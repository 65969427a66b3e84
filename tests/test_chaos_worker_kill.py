"""Chaos on the real stack: the worker process dies with SIGKILL in the middle of a runbook (after the pause,
while the incident waits for approval); a new worker finishes it. Every effect happens once, and the audit
log has no gap and no duplicate."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator

import httpx
import pytest

from schemas.alerts import Alert
from schemas.incidents import IncidentInput, IncidentResult
from schemas.severity import Severity
from stanch.devstack import child_environment
from stanch.policy import Policy
from stanch.settings import Settings
from stanch.temporal_client import connect
from tests.conftest import audit_rows
from tests.stack import agent, applied, brief_state, eventually, temporal_signal

pytestmark = pytest.mark.e2e


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


@pytest.fixture
def workers() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for worker in started:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()


def test_a_killed_worker_is_replaced_and_no_effect_happens_twice(
    chaos: Settings, workers: list[subprocess.Popen[bytes]], policy: Policy
) -> None:
    agent_id = f"chaos-{uuid.uuid4().hex[:6]}"
    httpx.put(f"{chaos.platform_url}/agents/{agent_id}", json={"versions": ["v1", "v2"]}).raise_for_status()
    alert = Alert(
        source="alertmanager",
        name="AgentHallucination",
        fingerprint=agent_id,
        labels={"alertname": "AgentHallucination", "agent": agent_id},
        annotations={"summary": f"{agent_id} is making things up"},
    )
    incident = IncidentInput(
        incident_id=f"incident-chaos-{agent_id}",
        runbook="agent_emergency_stop",
        severity=Severity.P1,
        service="support",
        summary=alert.summary,
        alert=alert,
        target={"agent_id": agent_id},
        policy=policy.incident_policy(),
    )

    async def open_incident() -> None:
        client = await connect(chaos)
        await client.start_workflow(
            "agent_emergency_stop",
            incident,
            id=incident.incident_id,
            task_queue=chaos.task_queue,
            start_signal="alert",
            start_signal_args=[alert],
        )

    workers.append(start_worker(chaos))
    asyncio.run(open_incident())
    eventually(
        lambda: brief_state(chaos, incident.incident_id) == "awaiting_approval", "the approval request"
    )
    assert agent(chaos, agent_id)["state"] == "paused"

    os.killpg(workers[0].pid, signal.SIGKILL)
    workers[0].wait()
    workers.append(start_worker(chaos))
    temporal_signal(chaos, incident.incident_id, "approve", {"approver": "alice", "action": "rollback"})

    async def result() -> IncidentResult:
        client = await connect(chaos)
        handle = client.get_workflow_handle(incident.incident_id, result_type=IncidentResult)
        return await asyncio.wait_for(handle.result(), timeout=90)

    assert asyncio.run(result()).final_state == "rolled_back"
    assert agent(chaos, agent_id)["version"] == "v1"
    assert applied(chaos, f"/agents/{agent_id}/pause") == 1
    assert applied(chaos, f"/agents/{agent_id}/rollback") == 1
    steps = [row["step_key"] for row in audit_rows(chaos, incident.incident_id)]
    assert steps == [
        "pause",
        "tell-customer",
        "tell-oncall",
        "gate1-requested",
        "gate1-decision",
        "rollback",
        "closed",
    ], steps
