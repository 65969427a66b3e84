"""The auditors' commands over histories: export, timeline, and verify --history.

Timelines are read from histories recorded from real runs (tests/histories/); export and verify run a
real incident on the time-skipping server with real activities and the session's Postgres.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

from psycopg_pool import AsyncConnectionPool
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHistory
from typer.testing import CliRunner

from activities.audit import AuditActivities
from schemas.approvals import ApprovalAnswer
from schemas.audit import AuditEvent
from stanch.audit_store import read_rows
from stanch.history_timeline import (
    AUDIT_ROWS_ACTIVITY,
    audit_rows_requested,
    build_timeline,
    first_value,
    render,
)
from stanch.ops.cli import app
from stanch.ops.history_audit import audited_run, cross_check
from stanch.ops.replay import load_history, replay
from stanch.policy import Policy
from stanch.settings import Settings
from tests.helpers import EMERGENCY_STOP_APPROVED_STEPS, Incidents, Running, cli, new_agent, until_state

STOP = Path(__file__).parent.parent / "histories" / "agent_emergency_stop"
APPROVED = STOP / "test_pauses_at_once_then_rolls_back_on_approval.json"
ESCALATED = STOP / "test_no_answer_for_30_minutes_escalates_and_keeps_agent_paused.json"
REFUSED = STOP / "test_decide_update_refuses_unknown_approver_and_unrecommended_action.json"
# The same path with the rows written in batches (`audit_write_rows`, AUDIT_BATCH_PATCH): 7 rows, 5 activities.
BATCHED = STOP / "test_an_emergency_stops_audit_rows_land_in_batches_with_fewer_write_activities.json"
APPROVED_STEPS = EMERGENCY_STOP_APPROVED_STEPS


# ---- timeline ---------------------------------------------------------------------------------------


def test_timeline_of_an_approved_incident_names_approver_comment_and_outcome() -> None:
    timeline = build_timeline(load_history(APPROVED))

    [alert] = timeline.kinds("alert")
    assert alert.text.startswith("AgentHallucination firing") and alert.actor == "alertmanager"
    [approval] = timeline.kinds("approval")
    assert (approval.actor, approval.refused) == ("alice", False) and "v3 is bad" in approval.text
    steps = [entry.details.get("step") for entry in timeline.kinds("action")]
    assert steps == ["pause", "tell-customer", "tell-oncall", "rollback"]
    assert (timeline.outcome, timeline.final_state) == ("completed", "rolled_back")

    text, markdown = render(timeline, "text"), render(timeline, "markdown")
    data = json.loads(render(timeline, "json"))
    for rendered in (text, markdown, json.dumps(data)):
        assert "alice" in rendered and "v3 is bad" in rendered and "rolled_back" in rendered
    assert "| approval | alice |" in markdown
    assert data["final_state"] == "rolled_back"
    assert any(e["kind"] == "approval" and e["actor"] == "alice" for e in data["entries"])


def test_timeline_of_an_unanswered_incident_shows_the_escalation_timers_and_safe_default() -> None:
    timeline = build_timeline(load_history(ESCALATED))

    [escalation] = timeline.kinds("escalation")
    assert escalation.details["step"] == "gate1-escalate-1" and escalation.details["in.recipient"] == "carol"
    assert [entry.text for entry in timeline.kinds("timer")] == [
        "fired: escalate to team-lead if no decision",
        "fired: take the safe default if no decision",
    ]
    [decision] = timeline.kinds("decision")
    assert "safe default" in decision.text
    assert not timeline.kinds("approval") and not timeline.kinds("rejection")
    assert timeline.final_state == "escalated"
    for fmt in ("text", "markdown", "json"):
        rendered = render(timeline, fmt)
        assert "gate1-escalate-1" in rendered and "escalated" in rendered


def test_timeline_of_a_batched_incident_tells_the_same_story_as_one_write_per_row() -> None:
    single, batched = build_timeline(load_history(APPROVED)), build_timeline(load_history(BATCHED))

    for timeline in (single, batched):
        steps = [entry.details.get("step") for entry in timeline.kinds("action")]
        assert steps == ["pause", "tell-customer", "tell-oncall", "rollback"]  # no audit write among them
        [decision] = timeline.kinds("decision")  # read from the gate's row inside a batch, too
        assert decision.actor == "alice" and "rollback approved" in decision.text
        assert (timeline.outcome, timeline.final_state) == ("completed", "rolled_back")


def test_timeline_marks_the_refused_signal_and_keeps_the_accepted_update() -> None:
    timeline = build_timeline(load_history(REFUSED))

    answers = [(e.actor, e.details["via"], e.refused) for e in timeline.kinds("approval")]
    assert answers == [("mallory", "signal", True), ("carol", "update", False)]
    assert "may not decide" in timeline.kinds("approval")[0].details["refused"]
    assert "approval REFUSED" in render(timeline, "text")


# ---- export, replay and verify --history on a live run ------------------------------------------------


async def approved_incident(stanch: Running, policy: Policy) -> str:
    handle = await Incidents(stanch.client, stanch.task_queue, policy).agent_emergency_stop(
        new_agent(stanch.settings.platform_url)
    )
    await until_state(handle, "awaiting_approval")
    await handle.signal("approve", ApprovalAnswer(approver="alice", action="rollback", comment="bad deploy"))
    assert (await handle.result()).final_state == "rolled_back"
    return handle.id


async def test_export_writes_a_history_that_loads_replays_and_tells_the_story(
    stanch: Running, policy: Policy, cli_env: dict[str, str], tmp_path: Path
) -> None:
    workflow_id = await approved_incident(stanch, policy)
    exported = tmp_path / "incident.json"

    result = await cli(["audit", "export", workflow_id, "-o", str(exported)], cli_env)
    assert result.exit_code == 0, result.output

    history = load_history(exported)
    original = await stanch.client.get_workflow_handle(workflow_id).fetch_history()
    assert [e.event_type for e in history.events] == [e.event_type for e in original.events]
    [outcome] = await replay([(str(exported), history)])
    assert outcome.ok, outcome.line()

    replayed = await cli(["audit", "replay", str(exported)], cli_env)
    assert replayed.exit_code == 0 and "OK" in replayed.output
    # By workflow id too, straight from Temporal.
    told = await cli(["audit", "timeline", workflow_id, "--format", "markdown"], cli_env)
    assert told.exit_code == 0, told.output
    assert "| approval | alice |" in told.output and "bad deploy" in told.output


async def test_verify_history_passes_on_a_real_run_and_fails_on_a_row_without_its_event(
    stanch: Running, policy: Policy, cli_env: dict[str, str]
) -> None:
    workflow_id = await approved_incident(stanch, policy)
    agreed = await cli(["audit", "verify", "--history", workflow_id], cli_env)
    assert agreed.exit_code == 0, agreed.output
    assert "agree" in agreed.output and "intact" in agreed.output

    # Rows cannot be deleted (append-only), but one can be added: a row the workflow never wrote, as a
    # forger with the app's credentials could. The history has no event for it.
    history = await stanch.client.get_workflow_handle(workflow_id).fetch_history()
    audited_id, run_id = audited_run(history)
    async with AsyncConnectionPool(stanch.settings.database_url, min_size=1, max_size=1) as pool:
        await AuditActivities(pool).write_audit(
            AuditEvent(
                workflow_id=audited_id,
                run_id=run_id,
                step_key="forged-approval",
                actor="mallory",
                action="rollback",
                outcome="approved",
                occurred_at=datetime.now(UTC),
            )
        )
    # Its rows were written in batches: every row counted, in fewer activities than rows.
    counted = re.search(r"(\d+) audit write\(s\) in (\d+) activit", agreed.output)
    assert counted is not None, agreed.output
    assert int(counted[1]) == len(APPROVED_STEPS) and int(counted[2]) < len(APPROVED_STEPS)

    forged = await cli(["audit", "verify", "--history", workflow_id], cli_env)
    assert forged.exit_code == 1, forged.output
    assert (
        "DISAGREE" in forged.output
        and "'forged-approval') has no audit write in the history" in forged.output
    )


def test_verify_history_reports_writes_with_no_row(postgres_settings: Settings) -> None:
    """A recorded history whose rows live in another database (the recording session's, long gone):
    every audit write in it must be reported as missing from this one."""
    history = load_history(APPROVED)
    audited_id, _ = audited_run(history)
    rows = read_rows(postgres_settings.database_url, audited_id)
    assert rows == []

    check = cross_check(history, rows)
    missing = [p for p in check.problems if "has no row in the audit log" in p]
    assert len(missing) == check.audit_writes == check.audit_activities == 7
    assert any("'rollback'" in p for p in missing)


def test_verify_history_counts_every_row_of_a_batched_history() -> None:
    """The rows of `audit_write_rows` batches are audit writes like `write_audit`'s: each must have its row
    (none here: the recording's database is gone), each effect's step is found among them."""
    history = load_history(BATCHED)
    audited_id, run_id = audited_run(history)
    assert audited_id.startswith("incident-") and run_id

    check = cross_check(history, [])
    missing = [p for p in check.problems if "has no row in the audit log" in p]
    assert (check.audit_writes, check.audit_activities, check.effects) == (7, 5, 4)
    assert len(missing) == 7 and all(any(f"{step!r}" in p for p in missing) for step in APPROVED_STEPS)
    assert not any("never audited" in p for p in check.problems)


def test_an_effect_whose_audit_write_is_absent_is_reported() -> None:
    """The rule on effects, on a doctored copy of a recorded history without the rollback's audit write
    (a real run cannot produce one: `act` always audits)."""
    history = load_history(APPROVED)
    kept = []
    for event in history.events:
        attrs = event.activity_task_scheduled_event_attributes
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED and attrs.activity_type.name == (
            "write_audit"
        ):
            request = first_value(attrs.input)
            if request["step_key"] == "rollback":
                continue
        kept.append(event)
    problems = cross_check(WorkflowHistory(history.workflow_id, kept), []).problems
    assert any("effect rollback_agent step 'rollback'" in p and "never audited" in p for p in problems)
    assert not any("never audited" in p for p in cross_check(history, []).problems)


def test_an_effect_whose_row_is_absent_from_its_batch_is_reported() -> None:
    """The same rule on a doctored copy of the batched history: the rollback's row taken out of its batch."""
    history = load_history(BATCHED)
    doctored = WorkflowHistory.from_json(history.workflow_id, history.to_json_dict())
    for event in doctored.events:
        attrs = event.activity_task_scheduled_event_attributes
        if event.event_type != EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            continue
        rows = audit_rows_requested(attrs.activity_type.name, first_value(attrs.input))
        if attrs.activity_type.name == AUDIT_ROWS_ACTIVITY and any(r["step_key"] == "rollback" for r in rows):
            kept = [row for row in rows if row["step_key"] != "rollback"]
            payload = attrs.input.payloads[0]
            payload.data = json.dumps({"rows": kept}).encode()
    problems = cross_check(doctored, []).problems
    assert any("effect rollback_agent step 'rollback'" in p and "never audited" in p for p in problems)
    assert cross_check(doctored, []).audit_writes == 6


def test_timeline_refuses_an_unknown_format() -> None:
    result = CliRunner().invoke(app, ["audit", "timeline", str(APPROVED), "--format", "pdf"])
    assert result.exit_code == 2
