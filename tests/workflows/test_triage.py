"""Triage incidents on the time-skipping server, with real effects: pages reach the sandbox chat, rows land
in Postgres, and a hand-over starts the real runbook, which pauses the agent at the sandbox platform."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from temporalio.client import WorkflowExecutionStatus, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.service import RPCError

from schemas.approvals import Acknowledgement, EscalationRequest, Resolution
from schemas.briefs import Brief, Timeline
from schemas.incidents import EscalationLevel, IncidentResult
from schemas.severity import Severity
from schemas.triage import RunbookStarted, RunRunbook, TriageInput
from tests.clock import settled
from tests.helpers import (
    Incidents,
    Running,
    agent,
    applied,
    audit_rows,
    chat_messages,
    cli,
    new_agent,
    until_state,
)

LADDER = [
    EscalationLevel(name="team-lead", notify=["carol"], after=timedelta(minutes=30)),
    EscalationLevel(name="director", notify=["dana"], after=timedelta(minutes=30)),
]


async def open_triage(
    incidents: Incidents, *, ladder: list[EscalationLevel] | None = None, **changes: Any
) -> tuple[WorkflowHandle[Any, IncidentResult], TriageInput]:
    """What the intake opens for `AgentHallucination` without its `agent` label, on the shipped policy."""
    incident_policy = incidents.policy.incident_policy()
    if ladder is not None:
        incident_policy = incident_policy.model_copy(update={"escalation": ladder})
    return await incidents.agent_hallucination_triage(
        service="support-bot",
        summary="support-bot promised a 90% discount",
        incident_policy=incident_policy,
        **changes,
    )


def steps(stanch: Running, workflow_id: str) -> list[str]:
    return [row["step_key"] for row in audit_rows(stanch.settings, workflow_id)]


async def test_pages_oncall_at_once_with_what_the_alert_says_the_route_and_what_is_missing(
    stanch: Running, incidents: Incidents
) -> None:
    handle, _ = await open_triage(incidents)
    brief = await until_state(handle, "awaiting_triage")

    [page] = chat_messages(stanch.settings.platform_url, handle.id)
    assert page["channel"] == "on-call" and page["severity"] == "P1"
    assert "AgentHallucination" in page["title"]
    assert "support-bot promised a 90% discount" in page["text"]
    assert "agent-hallucination" in page["text"] and "labels.agent" in page["text"]
    assert f"stanch triage {handle.id} --runbook agent_emergency_stop --target agent_id=..." in page["text"]
    assert "labels.agent" in brief.summary and "agent-hallucination" in brief.summary
    assert "--target agent_id=" in brief.recommendation and brief.risk_if_no_action
    assert steps(stanch, handle.id) == ["page", "triaged"]
    triaged = audit_rows(stanch.settings, handle.id)[1]
    assert (triaged["actor"], triaged["outcome"]) == ("alertmanager", "needs a human")
    assert "labels.agent" in triaged["reason"]
    description = await handle.describe()
    assert description.search_attributes["StanchRunbook"] == ["triage"]
    assert description.search_attributes["StanchState"] == ["awaiting_triage"]

    await handle.signal("resolve", Resolution(by="bob", note="test alert, ignore"))
    result = await handle.result()
    assert result.final_state == "resolved" and result.resolved_by == "bob"
    assert steps(stanch, handle.id) == ["page", "triaged", "closed"]


async def test_unrouted_alert_pages_on_call_with_no_route_and_recommends_a_route(
    stanch: Running, incidents: Incidents
) -> None:
    handle, _ = await open_triage(
        incidents, route=None, suggested_runbook=None, problems=[], severity=Severity.P3
    )
    brief = await until_state(handle, "awaiting_triage")
    [page] = chat_messages(stanch.settings.platform_url, handle.id)
    assert page["severity"] == "P3" and "No route matched it" in page["text"]
    assert "Add a route for AgentHallucination" in brief.recommendation
    await handle.signal("resolve", Resolution(by="bob"))
    assert (await handle.result()).final_state == "resolved"


@pytest.mark.slow  # nobody answers: the whole ladder to its safe default, dozens of pages (3-14 s)
async def test_unanswered_it_escalates_along_the_ladder_and_stays_open_unattended(
    stanch: Running, incidents: Incidents
) -> None:
    handle, _ = await open_triage(incidents, ladder=LADDER)
    await until_state(handle, "awaiting_triage")

    # The server skips every timer of the ladder (90 min), short of the first repeat page (120 min).
    await stanch.env.sleep(timedelta(minutes=105))
    brief = await until_state(handle, "unattended")

    pages = chat_messages(stanch.settings.platform_url, handle.id)
    assert [(p["channel"], p["recipient"]) for p in pages] == [
        ("on-call", None),
        ("team-lead", "carol"),
        ("director", "dana"),
        ("on-call", None),
    ]
    assert all("AgentHallucination" in p["title"] for p in pages)
    assert "Nobody along the escalation ladder" in pages[-1]["text"]
    assert steps(stanch, handle.id) == ["page", "triaged", "escalate-1", "escalate-2", "unattended"]
    assert "nobody answered" in (brief.awaiting or "")
    # Never closed silently: days later it is still open and still says it needs a human.
    await stanch.env.sleep(timedelta(days=3))
    assert (await handle.describe()).status == WorkflowExecutionStatus.RUNNING
    assert (await handle.query("brief", result_type=Brief)).state == "unattended"

    await handle.signal("resolve", Resolution(by="carol", note="rule fixed"))
    assert (await handle.result()).final_state == "resolved"


async def test_unattended_it_pages_the_last_level_again_every_30_minutes_until_someone_takes_it(
    stanch: Running, incidents: Incidents
) -> None:
    handle, _ = await open_triage(incidents, ladder=LADDER)
    await until_state(handle, "awaiting_triage")
    await stanch.env.sleep(timedelta(minutes=105))  # unattended from 90 min
    await until_state(handle, "unattended")

    await stanch.env.sleep(timedelta(minutes=61))  # repeats at 120 and 150 min
    await until_state(handle, "unattended")
    pages = chat_messages(stanch.settings.platform_url, handle.id)
    repeats = pages[4:]
    assert [(p["channel"], p["recipient"]) for p in repeats] == [("director", "dana")] * 2
    assert all(p["title"] == "Still unattended: AgentHallucination" for p in repeats)
    assert steps(stanch, handle.id)[-2:] == ["unattended-repeat-1", "unattended-repeat-2"]

    # An acknowledgement holds the repeats too, for its 30 minutes only.
    await handle.signal("acknowledge", Acknowledgement(by="carol"))
    await stanch.env.sleep(timedelta(minutes=25))
    assert len(chat_messages(stanch.settings.platform_url, handle.id)) == 6
    await handle.signal("resolve", Resolution(by="carol", note="rule fixed"))
    assert (await handle.result()).final_state == "resolved"
    assert steps(stanch, handle.id) == [
        "page",
        "triaged",
        "escalate-1",
        "escalate-2",
        "unattended",
        "unattended-repeat-1",
        "unattended-repeat-2",
        "closed",
    ]


async def test_acknowledge_holds_the_clock_for_its_hold_until_escalate(
    stanch: Running, incidents: Incidents
) -> None:
    handle, _ = await open_triage(incidents, ladder=LADDER)
    await until_state(handle, "awaiting_triage")
    await handle.signal("acknowledge", Acknowledgement(by="alice"))
    # Within the policy's 30-minute hold (test_an_acknowledgement_that_runs_out_... shows its end).
    await stanch.env.sleep(timedelta(minutes=25))

    assert (await handle.query("brief", result_type=Brief)).state == "awaiting_triage"
    assert [p["channel"] for p in chat_messages(stanch.settings.platform_url, handle.id)] == ["on-call"]

    await handle.signal("escalate", EscalationRequest(by="alice", reason="need a lead"))
    await until_state(handle, "escalated")
    assert [p["channel"] for p in chat_messages(stanch.settings.platform_url, handle.id)] == [
        "on-call",
        "team-lead",
    ]
    timeline = await handle.query("timeline", result_type=Timeline)
    assert any(e.kind == "decision" and "acknowledged by alice" in e.text for e in timeline.entries)

    await handle.signal("resolve", Resolution(by="alice"))
    assert (await handle.result()).final_state == "resolved"
    assert steps(stanch, handle.id) == ["page", "triaged", "escalate-1", "closed"]


async def test_an_acknowledgement_that_runs_out_resumes_the_ladder_with_a_page_saying_so(
    stanch: Running, incidents: Incidents
) -> None:
    handle, _ = await open_triage(incidents, ladder=LADDER)
    await until_state(handle, "awaiting_triage")
    await handle.signal("acknowledge", Acknowledgement(by="alice"))
    await stanch.env.sleep(timedelta(minutes=35))

    await until_state(handle, "escalated")
    pages = chat_messages(stanch.settings.platform_url, handle.id)
    assert [(p["channel"], p["recipient"]) for p in pages] == [("on-call", None), ("team-lead", "carol")]
    assert "The acknowledgement by alice ran out after 30 minutes." in pages[1]["text"]

    await handle.signal("resolve", Resolution(by="carol"))
    assert (await handle.result()).final_state == "resolved"
    assert steps(stanch, handle.id) == ["page", "triaged", "escalate-1", "closed"]


async def test_run_runbook_refuses_a_target_that_cannot_work_naming_the_field(
    stanch: Running, incidents: Incidents
) -> None:
    handle, _ = await open_triage(incidents)
    await until_state(handle, "awaiting_triage")

    refusals = {}
    for name, request in {
        "missing": RunRunbook(by="alice", runbook="agent_emergency_stop", target={"customer": "acme"}),
        "unsafe": RunRunbook(by="alice", runbook="agent_emergency_stop", target={"agent_id": "bot/../x"}),
        "unknown": RunRunbook(by="alice", runbook="make_coffee", target={"agent_id": "bot"}),
    }.items():
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update("run_runbook", request, result_type=RunbookStarted)
        refusals[name] = str(getattr(refused.value.cause, "message", refused.value.cause))
    assert refusals["missing"] == "target.agent_id: Field required"
    assert refusals["unsafe"].startswith("target.agent_id: String should match pattern")
    assert refusals["unknown"].startswith("runbook: unknown runbook 'make_coffee'")

    # Nothing started and nothing changed: the triage still waits for a human.
    assert (await handle.query("brief", result_type=Brief)).state == "awaiting_triage"
    assert (await handle.describe()).raw_description.pending_children == []
    await handle.signal("resolve", Resolution(by="alice"))
    assert (await handle.result()).final_state == "resolved"
    with pytest.raises((WorkflowUpdateFailedError, RPCError)):  # closed: the server refuses the update
        await handle.execute_update(
            "run_runbook",
            RunRunbook(by="alice", runbook="agent_emergency_stop", target={"agent_id": "bot"}),
            result_type=RunbookStarted,
        )


async def handed_over_child(stanch: Running, triage: TriageInput, agent_id: str) -> WorkflowHandle[Any, Any]:
    """Check the hand-over's observable result and return the runbook's incident, awaiting approval."""
    expected_id = triage.runbook_incident_ids["agent_emergency_stop"]
    handle = stanch.client.get_workflow_handle(triage.incident_id, result_type=IncidentResult)
    result = await handle.result()
    assert result.final_state == "handed_over"
    rows = audit_rows(stanch.settings, triage.incident_id)
    assert [row["step_key"] for row in rows] == ["page", "triaged", "handed-over", "closed"]
    memo = await (await handle.describe()).memo()
    assert memo == {"handed_over_to": expected_id, "handed_over_runbook": "agent_emergency_stop"}
    assert (rows[2]["actor"], rows[2]["outcome"]) == ("alice", "started")
    timeline = await handle.query("timeline", result_type=Timeline)
    assert any(
        f"alice handed it to agent_emergency_stop as {expected_id}" in e.text for e in timeline.entries
    )

    child = stanch.client.get_workflow_handle(expected_id, result_type=IncidentResult)
    brief = await until_state(child, "awaiting_approval")
    assert brief.runbook == "agent_emergency_stop" and brief.severity == "P1"
    assert agent(stanch.settings.platform_url, agent_id)["state"] == "paused"
    assert applied(stanch.settings.platform_url, f"/agents/{agent_id}/pause") == 1
    child_timeline = await child.query("timeline", result_type=Timeline)
    assert any(e.kind == "alert" and "AgentHallucination firing" in e.text for e in child_timeline.entries)
    # ABANDON: the runbook outlives the triage incident that started it.
    assert (await child.describe()).status == WorkflowExecutionStatus.RUNNING
    return child


async def finish_child(child: WorkflowHandle[Any, Any]) -> None:
    """Leave nothing parked on a timer once this test's worker is gone (tests/clock.py).

    Terminated, not approved: on the time-skipping server, an abandoned child that completes after its
    parent closed leaves a hold on the clock (measured: the next 1 s sleep takes 1 s of wall time), while
    a terminated one does not. The approval path itself is tested in test_agent_emergency_stop.py."""
    await settled(child)
    await child.terminate("test finished")


async def test_hand_over_starts_the_runbook_as_its_route_incident_which_pauses_the_agent(
    stanch: Running, incidents: Incidents
) -> None:
    agent_id = new_agent(stanch.settings.platform_url)
    handle, triage = await open_triage(incidents)
    await until_state(handle, "awaiting_triage")

    started = await handle.execute_update(
        "run_runbook",
        RunRunbook(by="alice", runbook="agent_emergency_stop", target={"agent_id": agent_id}),
        result_type=RunbookStarted,
    )

    assert started == RunbookStarted(
        workflow_id=f"incident-agent-hallucination-{triage.alert.fingerprint}", runbook="agent_emergency_stop"
    )
    child = await handed_over_child(stanch, triage, agent_id)
    await finish_child(child)


async def test_stanch_triage_cli_refuses_with_the_reason_then_hands_over(
    stanch: Running, incidents: Incidents, cli_env: dict[str, str]
) -> None:
    agent_id = new_agent(stanch.settings.platform_url)
    handle, triage = await open_triage(incidents)
    await until_state(handle, "awaiting_triage")
    short_id = triage.incident_id.removeprefix("incident-")

    refused = await cli(
        [
            "triage",
            short_id,
            "--runbook",
            "agent_emergency_stop",
            "--target",
            "customer=acme",
            "--by",
            "alice",
        ],
        cli_env,
    )
    assert refused.exit_code == 1
    assert "refused: target.agent_id: Field required" in refused.output

    target = ["--target", f"agent_id={agent_id}", "--target", "customer=acme"]
    done = await cli(
        ["triage", short_id, "--runbook", "agent_emergency_stop", *target, "--by", "alice"], cli_env
    )
    assert done.exit_code == 0, done.output
    expected_id = triage.runbook_incident_ids["agent_emergency_stop"]
    assert f"handed to agent_emergency_stop as {expected_id} (by alice)" in done.output
    child = await handed_over_child(stanch, triage, agent_id)
    customer = [
        m for m in chat_messages(stanch.settings.platform_url, expected_id) if m["channel"] == "customer"
    ]
    assert [m["recipient"] for m in customer] == ["acme"]
    await finish_child(child)


async def test_hand_over_to_an_incident_already_open_joins_it(stanch: Running, incidents: Incidents) -> None:
    agent_id = new_agent(stanch.settings.platform_url)
    _, first = await open_triage(incidents)
    # A second cause for the same alert (another triage key) handed to the same runbook incident.
    again, second = await open_triage(
        incidents, fingerprint=first.alert.fingerprint, workflow_id=first.incident_id + "-again"
    )
    assert second == first.model_copy(update={"incident_id": first.incident_id + "-again"})
    for triage in (first, second):
        await until_state(stanch.client.get_workflow_handle(triage.incident_id), "awaiting_triage")

    request = RunRunbook(by="alice", runbook="agent_emergency_stop", target={"agent_id": agent_id})
    handle = stanch.client.get_workflow_handle(first.incident_id)
    await handle.execute_update("run_runbook", request, result_type=RunbookStarted)
    child = await handed_over_child(stanch, first, agent_id)
    joined = await again.execute_update("run_runbook", request, result_type=RunbookStarted)

    assert joined.workflow_id == child.id
    assert (await again.result()).final_state == "handed_over"
    assert audit_rows(stanch.settings, second.incident_id)[2]["outcome"] == "joined"
    await settled(child)
    repeats = await child.query("timeline", result_type=Timeline)
    assert any(e.kind == "alert" and "repeat of AgentHallucination (#2)" in e.text for e in repeats.entries)
    assert applied(stanch.settings.platform_url, f"/agents/{agent_id}/pause") == 1
    await finish_child(child)
