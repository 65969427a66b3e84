"""A run started now records one marker for every change shipped before it (workflows/steps/patches.py),
and a run recorded before goes on with a marker per change, as it was recorded, after an upgrade.

On the time-skipping server with the real worker, the real sandbox and the session's Postgres; read from
the incidents' histories. Runs recorded before the umbrella keep replaying in tests/test_replay.py (every
history recorded until 2026-12-04 has a marker per change).
"""

from __future__ import annotations

import ast
import uuid
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import ResetStickyTaskQueueRequest
from temporalio.testing import WorkflowEnvironment

from schemas.approvals import ApprovalAnswer
from stanch.ops.replay import replay
from stanch.settings import REPO_ROOT, Settings
from tests.helpers import (
    EMERGENCY_STOP_APPROVED_STEPS,
    Incidents,
    Running,
    applied,
    audit_rows,
    emergency_stop_rolled_back,
    fault,
    new_agent,
    pages,
    patch_markers,
    until_state,
    upserts_of,
)
from workers.worker import activity_implementations, build_worker
from workflows.steps import patches
from workflows.steps.patches import CHANGES_TO_2026_12_PATCH, SHIPPED_TO_2026_12
from workflows.steps.policies import (
    AUDIT_BATCH_PATCH,
    AUDIT_QUEUE_PATCH,
    RESOLVE_STANDS_DOWN_PATCH,
    SHARED_LADDER_PATCH,
    STANCH_AWAITING_PATCH,
)

# The markers an emergency stop recorded up to its approval before the umbrella, in order (the recorded
# agent_emergency_stop/test_an_emergency_stops_audit_rows_land_in_batches_with_fewer_write_activities.json).
MARKERS_UP_TO_THE_GATE = [
    SHARED_LADDER_PATCH,
    RESOLVE_STANDS_DOWN_PATCH,
    AUDIT_QUEUE_PATCH,
    AUDIT_BATCH_PATCH,
    STANCH_AWAITING_PATCH,
]
ROLLBACK_FAILURE_PATCH = "rollback-failure-tells-oncall"


async def test_a_new_emergency_stop_records_one_marker_for_every_change_it_takes(
    stanch: Running, incidents: Incidents
) -> None:
    sandbox = stanch.settings.platform_url
    handle, agent_id = await emergency_stop_rolled_back(incidents, sandbox)

    history = await handle.fetch_history()
    assert patch_markers(history.events) == [CHANGES_TO_2026_12_PATCH]
    assert upserts_of(history.events, "TemporalChangeVersion") == 1
    # Every change the five markers stood for is in force: the shared ladder's response-target timer,
    # the audit queue's batches, StanchAwaiting.
    assert any("response target" in e.user_metadata.summary.data.decode() for e in history.events)
    scheduled = [
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in history.events
        if e.HasField("activity_task_scheduled_event_attributes")
    ]
    assert "audit_write_rows" in scheduled and "write_audit" not in scheduled
    assert upserts_of(history.events, "StanchAwaiting") > 0
    assert [
        row["step_key"] for row in audit_rows(stanch.settings, handle.id)
    ] == EMERGENCY_STOP_APPROVED_STEPS
    assert applied(sandbox, f"/agents/{agent_id}/pause") == 1
    assert applied(sandbox, f"/agents/{agent_id}/rollback") == 1

    [outcome] = await replay([(handle.id, history)])
    assert outcome.ok, outcome.line()


async def test_a_run_started_before_the_umbrella_keeps_a_marker_per_change_after_the_upgrade(
    dev_env: WorkflowEnvironment, settings: Settings, policy: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # On a dev server: the time-skipping one cannot move a task off a stopped worker's sticky queue.
    # The worker before the umbrella: every change decided by its own marker (no id is in the set).
    monkeypatch.setattr(patches, "SHIPPED_TO_2026_12", frozenset())
    task_queue = f"test-{uuid.uuid4().hex[:8]}"
    client = dev_env.client
    worker_settings = settings.model_copy(update={"task_queue": task_queue})
    incidents = Incidents(client, task_queue, policy)
    sandbox = settings.platform_url
    agent_id = new_agent(sandbox)
    async with activity_implementations(worker_settings, client) as activities:
        async with build_worker(client, task_queue, activities):
            handle = await incidents.agent_emergency_stop(agent_id)
            await until_state(handle, "awaiting_approval")
        assert patch_markers((await handle.fetch_history()).events) == MARKERS_UP_TO_THE_GATE

        # Upgraded while the incident waits at its gate: a new worker, nothing cached, replays it, then
        # takes the approval; the rollback fails, which asks for a change the run has not met yet.
        monkeypatch.setattr(patches, "SHIPPED_TO_2026_12", SHIPPED_TO_2026_12)
        fault(sandbox, f"/agents/{agent_id}/rollback", status=409)
        # The old worker is gone with its sticky queue: the next task goes to the task queue itself.
        await client.workflow_service.reset_sticky_task_queue(
            ResetStickyTaskQueueRequest(
                namespace=client.namespace, execution=WorkflowExecution(workflow_id=handle.id)
            )
        )
        async with build_worker(client, task_queue, activities):
            await handle.signal("approve", ApprovalAnswer(approver="alice", action="rollback", comment="v3"))
            result = await handle.result()

    assert result.final_state == "action_failed"
    history = await handle.fetch_history()
    # The old run never takes the umbrella: the change it met after the upgrade got its own marker.
    assert patch_markers(history.events) == [*MARKERS_UP_TO_THE_GATE, ROLLBACK_FAILURE_PATCH]
    assert upserts_of(history.events, "TemporalChangeVersion") == len(MARKERS_UP_TO_THE_GATE) + 1
    assert pages(sandbox, handle.id, "failed")  # what that change does: on-call hears of the failure
    assert applied(sandbox, f"/agents/{agent_id}/rollback") == 0
    [outcome] = await replay([(handle.id, history)])
    assert outcome.ok, outcome.line()


def test_every_change_asks_through_patches_and_every_id_in_the_set_is_one_the_runbooks_name() -> None:
    # A `workflow.patched` of its own would not know the umbrella: a new run would take the old branch's
    # marker again. And every id the runbooks name for a change shipped before the umbrella is in the set.
    named: set[str] = set()
    for path in sorted((REPO_ROOT / "workflows").rglob("*.py")):
        if path == Path(patches.__file__):
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr == "patched":
                pytest.fail(f"{path.relative_to(REPO_ROOT)}:{node.lineno} calls workflow.patched itself")
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) in {"patched", "FailurePage"}:
                given = [*node.args[:1], *(k.value for k in node.keywords if k.arg == "patch")]
                named.update(str(arg.value) for arg in given if isinstance(arg, ast.Constant))
            if (
                isinstance(node, ast.Assign)
                and isinstance(node.targets[0], ast.Name)
                and node.targets[0].id.endswith("_PATCH")
                and isinstance(node.value, ast.Constant)
            ):
                named.add(node.value.value)
    # Equal on the day the umbrella came in; a change shipped since has an id of its own, outside the set.
    assert SHIPPED_TO_2026_12 <= named
