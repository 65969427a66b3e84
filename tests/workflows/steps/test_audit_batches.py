"""An incident's audit queue writes its rows in batches (issue 15): every row queued while a write is in
flight goes out in the next `audit_write_rows`, so an emergency stop's seven rows take fewer activities —
and fewer history events — than one `write_audit` per row did.

On the time-skipping server with the real worker, the real sandbox and the session's Postgres; counted from
the incident's history, checked against the rows that landed."""

from __future__ import annotations

from collections import deque
from datetime import UTC, datetime

from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent

from schemas.audit import AuditEvent
from stanch.audit_store import read_rows, verify_chains
from stanch.history_timeline import (
    AUDIT_ACTIVITY,
    AUDIT_ROWS_ACTIVITY,
    audit_rows_requested,
    first_value,
)
from stanch.ops.history_audit import cross_check
from tests.helpers import (
    EMERGENCY_STOP_APPROVED_STEPS,
    Incidents,
    Running,
    applied,
    audit_rows,
    emergency_stop_rolled_back,
    patch_markers,
)
from workflows.steps.incident import next_audit_batch
from workflows.steps.patches import CHANGES_TO_2026_12_PATCH
from workflows.steps.policies import AUDIT_BATCH_MAX_ROWS

APPROVED = EMERGENCY_STOP_APPROVED_STEPS
# What the same incident's history held with one `write_audit` per row (the recorded
# agent_emergency_stop/test_pauses_at_once_then_rolls_back_on_approval.json): 7 audit activities.
ONE_WRITE_PER_ROW = len(APPROVED)


def scheduled(events: list[HistoryEvent]) -> dict[int, HistoryEvent]:
    return {e.event_id: e for e in events if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED}


async def test_an_emergency_stops_audit_rows_land_in_batches_with_fewer_write_activities(
    stanch: Running, incidents: Incidents
) -> None:
    sandbox = stanch.settings.platform_url
    handle, agent_id = await emergency_stop_rolled_back(incidents, sandbox)

    # Every row once, in step order, on one intact chain; each effect once.
    assert [row["step_key"] for row in audit_rows(stanch.settings, handle.id)] == APPROVED
    chains = verify_chains(stanch.settings.database_url, handle.id)
    assert (chains.chains, chains.rows, chains.broken) == (1, len(APPROVED), [])
    assert applied(sandbox, f"/agents/{agent_id}/pause") == 1
    assert applied(sandbox, f"/agents/{agent_id}/rollback") == 1

    history = (await handle.fetch_history()).events
    activities = scheduled(list(history))
    names = [e.activity_task_scheduled_event_attributes.activity_type.name for e in activities.values()]
    assert AUDIT_ACTIVITY not in names  # a new run writes no row on its own
    batches = [
        e
        for e in activities.values()
        if e.activity_task_scheduled_event_attributes.activity_type.name == AUDIT_ROWS_ACTIVITY
    ]
    # The rows the batches carried, in the order they were scheduled: each row once, in step order.
    carried = [
        [
            str(row["step_key"])
            for row in audit_rows_requested(
                AUDIT_ROWS_ACTIVITY, first_value(e.activity_task_scheduled_event_attributes.input)
            )
        ]
        for e in batches
    ]
    assert [step for batch in carried for step in batch] == APPROVED
    assert len(batches) < ONE_WRITE_PER_ROW, carried
    assert any(len(batch) > 1 for batch in carried), carried
    # Each batch completed, before the run did.
    completed = {
        e.activity_task_completed_event_attributes.scheduled_event_id: e.event_id
        for e in history
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED
    }
    [closed] = [
        e.event_id for e in history if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED
    ]
    assert all(e.event_id in completed and completed[e.event_id] < closed for e in batches)
    # The batches are in force under the one marker a new run records (workflows/steps/patches.py).
    assert patch_markers(history) == [CHANGES_TO_2026_12_PATCH]

    # `stanch audit verify --history` counts the rows the batches wrote, and finds each in Postgres.
    check = cross_check(await handle.fetch_history(), read_rows(stanch.settings.database_url, handle.id))
    assert check.problems == []
    assert (check.audit_writes, check.audit_activities, check.rows) == (
        len(APPROVED),
        len(batches),
        len(APPROVED),
    )
    assert check.effects == len(names) - len(batches)


def test_the_next_batch_takes_the_queued_rows_from_the_head_up_to_the_cap() -> None:
    queue = deque(
        AuditEvent(
            workflow_id="incident-x",
            run_id="run-1",
            step_key=f"step-{index}",
            actor="stanch",
            action="do",
            outcome="done",
            occurred_at=datetime(2026, 12, 4, tzinfo=UTC),
        )
        for index in range(AUDIT_BATCH_MAX_ROWS * 2 + 5)
    )
    steps = [event.step_key for event in queue]

    assert [e.step_key for e in next_audit_batch(queue, batched=True)] == steps[:AUDIT_BATCH_MAX_ROWS]
    assert [e.step_key for e in next_audit_batch(queue, batched=True, most=3)] == steps[:3]
    assert [e.step_key for e in next_audit_batch(deque(list(queue)[:4]), batched=True)] == steps[:4]
    assert [e.step_key for e in next_audit_batch(queue, batched=False)] == steps[:1]  # before the batches
    assert len(queue) == len(steps)  # only the drainer pops, once the batch is written
