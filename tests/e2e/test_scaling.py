"""Workers scale horizontally: two `stanch worker` processes on one task queue share the incidents' tasks,
as two replicas in docker-compose.yml do. Each names itself (STANCH_WORKER_IDENTITY); Temporal records who
ran every activity (`ActivityTaskStarted.identity`), which is what this test reads."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from temporalio.api.enums.v1 import EventType, TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

from stanch.ops.devstack import child_environment
from stanch.policy import Policy
from stanch.settings import Settings
from stanch.temporal_client import connect
from stanch.tls import default_tls_context
from tests.helpers import Incidents

pytestmark = pytest.mark.e2e

WORKERS = ("worker-a", "worker-b")
INCIDENTS = 20


@pytest.fixture
def two_workers(stack: Settings, tmp_path: Path) -> Iterator[Settings]:
    """Two worker processes on a fresh task queue of the shared dev stack, each with its own identity."""
    settings = stack.model_copy(update={"task_queue": f"scale-{uuid.uuid4().hex[:8]}"})
    processes = []
    for identity in WORKERS:
        env = child_environment(settings)
        env["STANCH_WORKER_IDENTITY"] = identity
        log = (tmp_path / f"{identity}.log").open("wb")
        processes.append(
            subprocess.Popen(
                [sys.executable, "-m", "stanch", "worker"], env=env, stdout=log, stderr=subprocess.STDOUT
            )
        )
    try:
        yield settings
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            # Judge the results, not the exit code: the SDK can abort at interpreter exit (DESIGN.md).
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


async def pollers(client: Client, settings: Settings) -> set[str]:
    response = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace=settings.namespace,
            task_queue=TaskQueue(name=settings.task_queue),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
        )
    )
    return {poller.identity for poller in response.pollers}


async def open_incident(client: Client, settings: Settings, policy: Policy, agent_id: str) -> str:
    incidents = Incidents(client, settings.task_queue, policy)
    handle = await incidents.agent_emergency_stop(agent_id, workflow_id="incident-scale-{fingerprint}")
    return handle.id


async def test_two_worker_processes_share_the_incidents(two_workers: Settings, policy: Policy) -> None:
    settings = two_workers
    client = await connect(settings)
    for _ in range(600):  # both polling before the first incident, or one could take everything
        if await pollers(client, settings) >= set(WORKERS):
            break
        await asyncio.sleep(0.1)
    assert await pollers(client, settings) >= set(WORKERS), "both workers should poll the task queue"

    async with httpx.AsyncClient(
        base_url=settings.platform_url, trust_env=False, verify=default_tls_context()
    ) as http:
        agents = [f"agent-{uuid.uuid4().hex[:8]}" for _ in range(INCIDENTS)]
        for agent_id in agents:
            (await http.put(f"/agents/{agent_id}", json={"versions": ["v1", "v2"]})).raise_for_status()
        workflow_ids = await asyncio.gather(
            *(open_incident(client, settings, policy, agent_id) for agent_id in agents)
        )
        try:
            # Every incident's first effect happened, on whichever worker took it.
            for _ in range(600):
                states = [(await http.get(f"/agents/{agent_id}")).json()["state"] for agent_id in agents]
                if all(state == "paused" for state in states):
                    break
                await asyncio.sleep(0.1)
            assert states == ["paused"] * INCIDENTS

            ran_by: Counter[str] = Counter()
            for workflow_id in workflow_ids:
                history = await client.get_workflow_handle(workflow_id).fetch_history()
                for event in history.events:
                    if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
                        ran_by[event.activity_task_started_event_attributes.identity] += 1
        finally:
            for workflow_id in workflow_ids:
                await client.get_workflow_handle(workflow_id).terminate("test over")

    # Only our two workers ran activities, and each ran some: the queue was shared, not failed over.
    assert set(ran_by) == set(WORKERS), ran_by
    assert all(count > 0 for count in ran_by.values()), ran_by
    assert sum(ran_by.values()) >= INCIDENTS  # at least the pause of each incident
