"""Keeping the shared time-skipping server's clock free between tests.

The time-skipping test server holds its clock still while any workflow task or activity task is
outstanding, and releases that hold only when the task completes. A workflow terminated while its
activity is running, or while a workflow task waits for a poller, keeps its hold for ever (measured:
terminate, then `env.sleep(60)` blocks until the RPC times out). One such leak makes every later
timer test in the session hang, so tests wait for their workflows to settle before teardown
terminates them, and teardown checks the clock still skips.
"""

from __future__ import annotations

import asyncio
import time
import warnings
from datetime import timedelta
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.api.testservice.v1 import UnlockTimeSkippingRequest
from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

OUTSTANDING_WORKFLOW_TASK = (
    EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED,
    EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED,
)
CLOSED_ACTIVITY_ATTRIBUTES = (
    "activity_task_completed_event_attributes",
    "activity_task_failed_event_attributes",
    "activity_task_timed_out_event_attributes",
    "activity_task_canceled_event_attributes",
)


async def busy(handle: WorkflowHandle[Any, Any]) -> list[str]:
    """What the workflow itself is still doing: activities in flight or a pending workflow task.

    Read from one history fetch, so the answer is one consistent snapshot. Open children are not
    counted: a parent waiting on its child is parked; the child is its own workflow (see `children`)."""
    events = (await handle.fetch_history()).events
    scheduled = {
        event.event_id: event.activity_task_scheduled_event_attributes.activity_type.name
        for event in events
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    }
    for event in events:
        kind = event.WhichOneof("attributes")
        if kind in CLOSED_ACTIVITY_ATTRIBUTES:
            scheduled.pop(getattr(event, kind).scheduled_event_id, None)
    doing = [f"activity {name}" for name in scheduled.values()]
    if events and events[-1].event_type in OUTSTANDING_WORKFLOW_TASK:
        doing.append("workflow task")
    return doing


async def settled(handle: WorkflowHandle[Any, Any], within: float = 10.0) -> list[str]:
    """Wait (bounded) until the workflow only waits: on a timer, a signal, or nothing. Returns what is
    still going on if it never settles, so a caller may report it."""
    deadline = time.monotonic() + within
    while True:
        doing = await busy(handle)
        if not doing or time.monotonic() > deadline:
            return doing
        await asyncio.sleep(0.05)


async def children(client: Client, workflow_id: str) -> list[str]:
    try:
        description = await client.get_workflow_handle(workflow_id).describe()
    except RPCError:
        return []
    return [child.workflow_id for child in description.raw_description.pending_children]


async def settle_and_terminate(client: Client, workflow_ids: list[str]) -> None:
    """Terminate what a test left running, children first, each once nothing of it is in flight."""
    pending = list(dict.fromkeys(workflow_ids))
    ordered: list[str] = []
    while pending:
        workflow_id = pending.pop()
        if workflow_id in ordered:
            continue
        ordered.append(workflow_id)
        pending.extend(await children(client, workflow_id))
    for workflow_id in reversed(ordered):
        handle = client.get_workflow_handle(workflow_id)
        try:
            await settled(handle, within=5.0)
            await handle.terminate("test finished")
        except RPCError:
            pass  # already closed, or never started


async def free_clock(env: WorkflowEnvironment) -> int:
    """Release holds leaked by terminated workflows; return how many there were.

    With no hold, a one-second `sleep` is skipped at once; each leaked hold makes it last one real
    second instead, so the wall time tells whether something still holds the clock.
    """
    released = 0
    for _ in range(10):
        started = time.monotonic()
        await env.sleep(timedelta(seconds=1))
        if time.monotonic() - started < 0.5:
            break
        await env.client.test_service.unlock_time_skipping(UnlockTimeSkippingRequest())
        released += 1
    if released:
        warnings.warn(f"a test leaked {released} hold(s) on the time-skipping clock", stacklevel=2)
    return released
