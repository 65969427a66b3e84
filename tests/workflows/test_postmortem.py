"""The post-mortem a resolved P0/P1 incident opens, on the time-skipping server with real effects: the
learning by update (refused naming the field) and by signal (refusals audited), the `stanch learning`
CLI, the report at the sandbox with the learning and the incident's timeline in it, the brief's link,
the 24 h reminder, the 48 h stories and page without a learning, and no post-mortem below P1."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError
from temporalio.testing import ActivityEnvironment

from activities.reports import PostmortemActivities
from schemas.approvals import ApprovalAnswer, Resolution
from schemas.briefs import Brief, Timeline
from schemas.incidents import IncidentResult
from schemas.learning import Learning, LearningAnswer, OpenPostmortem, PostmortemOpened, PostmortemResult
from schemas.severity import Severity
from tests.helpers import (
    Incidents,
    Running,
    audit_rows,
    chat_messages,
    cli,
    get,
    new_service,
    put,
    until_state,
)
from workflows.steps.postmortem import needs_postmortem


def steps(stanch: Running, workflow_id: str) -> list[str]:
    return [row["step_key"] for row in audit_rows(stanch.settings, workflow_id)]


async def resolved_triage(
    incidents: Incidents, severity: Severity = Severity.P1, fingerprint: str | None = None
) -> WorkflowHandle[Any, IncidentResult]:
    """A triage incident (a runbook with no draft of its own) that a person resolved."""
    handle, _ = await incidents.agent_hallucination_triage(
        service="support-bot",
        summary="support-bot promised a 90% discount",
        severity=severity,
        fingerprint=fingerprint,
    )
    await until_state(handle, "awaiting_triage")
    await handle.signal("resolve", Resolution(by="bob", note="prompt reverted by hand"))
    assert (await handle.result()).final_state == "resolved"
    return handle


async def postmortem_of(stanch: Running, incident: WorkflowHandle[Any, Any]) -> WorkflowHandle[Any, Any]:
    """The post-mortem the incident's brief links (queried after the incident closed)."""
    brief = await incident.query("brief", result_type=Brief)
    assert brief.postmortem is not None
    assert brief.postmortem.workflow_id == f"postmortem-{incident.id}"
    assert brief.postmortem.report == f"/postmortems?incident_id={incident.id}"
    handle = stanch.client.get_workflow_handle(brief.postmortem.workflow_id, result_type=PostmortemResult)
    await until_state(handle, "awaiting_learning")
    return handle


GOOD = Learning(
    by="carol",
    root_cause="1.1.0 dropped the index on carts",
    impact="checkout answered 500 to most users for 20 minutes",
    prevention=["Canary the checkout deploys"],
    alert_changes=["Page on checkout 5xx above 2%"],
)


async def test_p1_war_room_resolved_opens_a_postmortem_whose_update_learning_is_stored_with_the_timeline(
    stanch: Running, incidents: Incidents
) -> None:
    sandbox = stanch.settings.platform_url
    service = new_service(sandbox, ["1.0.0", "1.1.0"])
    put(sandbox, f"/external/{service}", {"dependencies": {"payments-api": "down"}})
    room = await incidents.open(
        "war_room",
        alertname="ProductionDown",
        annotations={"summary": f"{service} answers 500 to most users"},
        severity=Severity.P1,
        service=service,
        target={"service": service},
    )
    await until_state(room, "awaiting_approval")
    await room.signal("approve", ApprovalAnswer(approver="alice", action="rollback", comment="bad deploy"))
    result = await room.result()
    assert result.final_state == "resolved" and result.resolved_by == "qa-gate"
    handle = await postmortem_of(stanch, room)

    # A learning that cannot be taken is refused by the validator, naming the field.
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update("learning", GOOD.model_copy(update={"root_cause": " "}))
    assert "root_cause: empty" in str(refused.value.cause)
    with pytest.raises(WorkflowUpdateFailedError) as unknown:
        await handle.execute_update(
            "learning", {**GOOD.model_dump(exclude={"prevention"}), "prevension": ["typo"]}
        )
    assert "prevension: unknown field" in str(unknown.value.cause)
    assert "prevention: at least one step" in str(unknown.value.cause)

    answer = await handle.execute_update("learning", GOOD, result_type=LearningAnswer)
    assert answer.by == "carol" and answer.report_id
    assert answer.stories == ["Canary the checkout deploys", "Alerting: Page on checkout 5xx above 2%"]
    with pytest.raises(WorkflowUpdateFailedError) as again:
        await handle.execute_update("learning", GOOD.model_copy(update={"by": "dave"}))
    assert "already given by carol" in str(again.value.cause)
    learned: PostmortemResult = await handle.result()
    assert (learned.final_state, learned.learned_by, learned.of_incident) == ("learned", "carol", room.id)

    [report] = get(sandbox, "/postmortems", incident_id=room.id)
    assert report["postmortem_id"] == answer.report_id
    assert report["root_cause"] == GOOD.root_cause and report["impact"] == GOOD.impact
    assert report["prevention"] == answer.stories
    assert any("alice approved rollback" in line for line in report["timeline"])
    markdown = report["markdown"]
    assert "# Post-incident report: P1" in markdown and "**Learning:** by carol" in markdown
    assert "## Alert changes" in markdown and "Canary the checkout deploys" in markdown
    # What the room itself found stays beside the learning.
    assert "## What the runbook saw" in markdown and "payments\\-api" in markdown
    stories = get(sandbox, "/backlog/stories", incident_id=room.id)
    assert [story["title"] for story in stories] == answer.stories

    # The room handed the learning over: its own trail ends at its resolution.
    assert steps(stanch, room.id)[-3:] == ["verify-rollback", "resolved", "closed"]
    assert steps(stanch, handle.id) == ["opened", "ask", "report", "story-1", "story-2", "closed"]
    opened = audit_rows(stanch.settings, handle.id)[0]
    assert opened["actor"] == room.id
    brief = await handle.query("brief", result_type=Brief)
    assert brief.postmortem is not None and brief.postmortem.report == answer.report_id
    # The timeline query starts with the incident's own record.
    timeline = await handle.query("timeline", result_type=Timeline)
    assert timeline.entries[0].kind == "alert" and "ProductionDown" in timeline.entries[0].text
    assert any("learning from carol (update)" in entry.text for entry in timeline.entries)
    [ask] = chat_messages(sandbox, handle.id)
    assert ask["channel"] == "on-call" and f"stanch learning {room.id}" in ask["text"]


async def test_learning_by_signal_is_taken_after_a_refused_one_is_audited_naming_the_field(
    stanch: Running, incidents: Incidents
) -> None:
    sandbox = stanch.settings.platform_url
    triage = await resolved_triage(incidents)
    handle = await postmortem_of(stanch, triage)

    await handle.signal("learning", GOOD.model_copy(update={"prevention": []}))
    await handle.signal("learning", GOOD.model_copy(update={"by": "alice"}))
    learned: PostmortemResult = await handle.result()

    assert learned.final_state == "learned" and learned.learned_by == "alice"
    rows = audit_rows(stanch.settings, handle.id)
    refusal = next(row for row in rows if row["step_key"] == "learning-refused-1")
    assert refusal["outcome"] == "refused" and refusal["actor"] == "carol"
    assert "prevention: at least one step" in refusal["reason"]
    [report] = get(sandbox, "/postmortems", incident_id=triage.id)
    assert report["root_cause"] == GOOD.root_cause
    # Without a draft of its own, the runbook's account is what its timeline says.
    assert "resolved by bob (prompt reverted by hand)" in report["remediation"]
    assert report["prevention"] == ["Canary the checkout deploys", "Alerting: Page on checkout 5xx above 2%"]
    assert any("marked resolved by bob" in line for line in report["timeline"])


async def test_stanch_learning_cli_finds_the_postmortem_from_the_incident_and_prints_the_refusal(
    stanch: Running, incidents: Incidents, cli_env: dict[str, str]
) -> None:
    triage = await resolved_triage(incidents)
    handle = await postmortem_of(stanch, triage)
    base = ["learning", triage.id, "--by", "bob", "--root-cause", "a prompt without a price guard"]

    refused = await cli([*base, "--impact", "one customer"], cli_env)
    assert refused.exit_code == 1 and "prevention: at least one step" in refused.output

    taken = await cli(
        [*base, "--impact", "one customer", "--prevention", "Guard prices", "--automation", "Pause on price"],
        cli_env,
    )
    assert taken.exit_code == 0, taken.output
    assert f"{handle.id}: learning by bob taken; report pm-" in taken.output
    assert (
        "story filed: Guard prices" in taken.output
        and "story filed: Automation: Pause on price" in taken.output
    )
    assert (await handle.result()).learned_by == "bob"


async def test_no_learning_reminds_at_24h_then_files_the_draft_stories_and_pages_the_ladder_at_48h(
    stanch: Running, incidents: Incidents
) -> None:
    sandbox = stanch.settings.platform_url
    service = new_service(sandbox, ["4.0.0", "4.1.0"])
    room = await incidents.open(
        "war_room",
        alertname="ProductionDown",
        annotations={"summary": f"{service} answers 500 to most users"},
        severity=Severity.P0,
        service=service,
        target={"service": service},
    )
    await until_state(room, "awaiting_approval")
    await room.signal("resolve", Resolution(by="carol", note="restarted the pods by hand"))
    assert (await room.result()).final_state == "resolved"
    handle = await postmortem_of(stanch, room)

    def overdue() -> list[dict[str, Any]]:
        return [m for m in chat_messages(sandbox, handle.id) if "overdue" in m["title"]]

    # Nobody sends a learning: nothing until 24 h, one reminder then, the report and stories at 48 h.
    await stanch.env.sleep(timedelta(hours=23))
    assert not overdue()
    await stanch.env.sleep(timedelta(hours=2))
    await until_state(handle, "learning_overdue")
    [reminder] = overdue()
    assert reminder["channel"] == "on-call" and "at 48 hours the report is stored" in reminder["text"]
    await stanch.env.sleep(timedelta(hours=22))
    assert not get(sandbox, "/backlog/stories", incident_id=room.id)
    await stanch.env.sleep(timedelta(hours=2))
    result: PostmortemResult = await handle.result()

    assert result.final_state == "closed_without_learning" and result.learned_by is None
    keys = steps(stanch, handle.id)
    assert keys == [
        "opened",
        "ask",
        "reminder",
        "report",
        "story-1",
        "story-2",
        "story-3",
        "no-learning",
        "closed",
    ]
    messages = {m["title"]: m for m in chat_messages(sandbox, handle.id)}
    page = messages[f"No post-incident learning for {service}"]
    assert page["channel"] == "team-lead" and page["severity"] == "P0"
    assert "root cause still unknown" in page["text"] and "3 preventive stories" in page["text"]
    # The war room's own draft is what goes out: its prevention list becomes the stories.
    stories = [s["title"] for s in get(sandbox, "/backlog/stories", incident_id=room.id)]
    assert len(stories) == 3 and any("feature flags" in title for title in stories)
    [report] = get(sandbox, "/postmortems", incident_id=room.id)
    assert "carol" in report["remediation"] and "restarted the pods" in report["remediation"]
    assert "none was sent within 48 hours" in report["markdown"]
    # Too late: the report is written.
    with pytest.raises((WorkflowUpdateFailedError, RPCError)):
        await handle.execute_update("learning", GOOD)


async def test_a_p2_resolved_incident_opens_no_postmortem(stanch: Running, incidents: Incidents) -> None:
    triage = await resolved_triage(incidents, severity=Severity.P2)
    brief = await triage.query("brief", result_type=Brief)
    assert brief.postmortem is None
    with pytest.raises(RPCError):
        await stanch.client.get_workflow_handle(f"postmortem-{triage.id}").describe()


def test_only_resolved_p0_p1_incidents_of_their_own_need_a_postmortem() -> None:
    def needs(**changes: Any) -> bool:
        case: dict[str, Any] = {
            "runbook": "agent_emergency_stop",
            "severity": Severity.P1,
            "final_state": "resolved",
            "workflow_id": "incident-a",
            "parent_id": None,
        }
        return needs_postmortem(**{**case, **changes})

    assert needs() and needs(severity=Severity.P0)
    assert not needs(severity=Severity.P2) and not needs(final_state="rolled_back")
    assert not needs(runbook="postmortem") and not needs(runbook="hotfix_cycle")
    # A handoff child is part of its parent's incident; a runbook a triage handed over is its own.
    assert not needs(workflow_id="incident-a-handoff-1", parent_id="incident-a")
    assert needs(workflow_id="incident-agent-x", parent_id="incident-triage-x")
    assert needs_postmortem(
        runbook="war_room",
        severity=Severity.P2,
        final_state="resolved",
        workflow_id="incident-w",
        parent_id=None,
        severities=frozenset(Severity),
    )


async def test_a_reopened_key_whose_first_postmortem_still_waits_gets_its_own_and_the_cli_follows_the_link(
    stanch: Running, incidents: Incidents, cli_env: dict[str, str]
) -> None:
    fingerprint = uuid.uuid4().hex[:16]
    first = await resolved_triage(incidents, fingerprint=fingerprint)
    first_postmortem = await postmortem_of(stanch, first)
    second = await resolved_triage(incidents, fingerprint=fingerprint)  # same key, a new run
    assert second.id == first.id

    brief = await second.query("brief", result_type=Brief)
    assert brief.postmortem is not None
    run = (await second.describe()).run_id
    assert brief.postmortem.workflow_id == f"postmortem-{second.id}-{run[:8]}"
    args = [
        "--by",
        "bob",
        "--root-cause",
        "again",
        "--impact",
        "one customer",
        "--prevention",
        "Guard prices",
    ]
    taken = await cli(["learning", second.id, *args], cli_env)
    assert taken.exit_code == 0, taken.output
    assert f"{brief.postmortem.workflow_id}: learning by bob taken" in taken.output
    # The first incident's post-mortem still waits for its own learning.
    assert (await first_postmortem.query("brief", result_type=Brief)).state == "awaiting_learning"


async def test_a_retried_open_finds_the_postmortem_its_first_attempt_started(
    stanch: Running, incidents: Incidents
) -> None:
    triage = await resolved_triage(incidents)
    handle = await postmortem_of(stanch, triage)
    first_run = (await handle.describe()).run_id
    history = await triage.fetch_history()
    [scheduled] = [
        event.activity_task_scheduled_event_attributes
        for event in history.events
        if event.activity_task_scheduled_event_attributes.activity_type.name == "postmortem_open"
    ]
    [payload] = scheduled.input.payloads
    request = pydantic_data_converter.payload_converter.from_payload(payload, OpenPostmortem)

    activities = PostmortemActivities(stanch.client, stanch.task_queue)
    again = await ActivityEnvironment().run(activities.open, request)

    assert again == PostmortemOpened(workflow_id=handle.id, run_id=first_run, replayed=True)
