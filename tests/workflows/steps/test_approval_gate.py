"""The approval gate's rules, each through a real workflow on the time-skipping server."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError

from schemas.approvals import (
    Acknowledgement,
    ApprovalAnswer,
    Decision,
    DecisionOutcome,
    EscalationRequest,
    Resolution,
)
from schemas.incidents import EscalationLevel, IncidentPolicy
from schemas.severity import Severity
from tests.helpers import (
    Incidents,
    Running,
    audit_rows,
    chat_messages,
    level_timers,
    repeat_pages,
    until_state,
)
from tests.probes.gate_probe import ProbeResult

ROLES = {"oncall": ["alice", "bob"], "lead": ["carol"], "director": ["dana"]}
CHAIN = [
    EscalationLevel(name="team-lead", notify=["carol"], after=timedelta(minutes=30)),
    EscalationLevel(name="director", notify=["dana"], after=timedelta(minutes=30)),
    EscalationLevel(name="cto", notify=["erin"], after=timedelta(minutes=15)),
]


async def open_probe(
    incidents: Incidents,
    *,
    severity: Severity = Severity.P2,
    destructive: bool = False,
    requested_by: str = "stanch",
    escalation: list[EscalationLevel] | None = None,
    linger: bool = False,
) -> WorkflowHandle[Any, ProbeResult]:
    handle = await incidents.open(
        "gate_probe",
        source="generic",
        alertname="QueueBacklog",
        labels={},
        annotations={"summary": "queue backlog"},
        severity=severity,
        service="queue",
        workflow_id="incident-gate-{fingerprint}",
        signal_alert=False,
        target={
            "destructive": "yes" if destructive else "no",
            "requested_by": requested_by,
            "linger": "yes" if linger else "no",
        },
        incident_policy=IncidentPolicy(
            roles=ROLES, escalation=escalation if escalation is not None else CHAIN[:1]
        ),
        result_type=ProbeResult,
    )
    await until_state(handle, "awaiting_approval")
    return handle


async def decide(handle: WorkflowHandle[Any, Any], approver: str, approved: bool = True) -> DecisionOutcome:
    decision = Decision(approver=approver, action="purge", approved=approved)
    return await handle.execute_update("decide", decision, result_type=DecisionOutcome)


async def refused(handle: WorkflowHandle[Any, Any], approver: str, action: str = "purge") -> str:
    with pytest.raises(WorkflowUpdateFailedError) as error:
        await handle.execute_update("decide", Decision(approver=approver, action=action, approved=True))
    return str(error.value.cause)


async def test_destructive_action_on_p0_needs_two_distinct_approvers(incidents: Incidents) -> None:
    handle = await open_probe(incidents, severity=Severity.P0, destructive=True)

    first = await decide(handle, "alice")
    assert "1 more approver" in first.detail
    assert "already approved" in await refused(handle, "alice")
    second = await decide(handle, "carol")
    assert "approved" in second.detail

    result = await handle.result()
    assert result.outcome.approved and result.outcome.decided_by == "alice, carol"


async def test_destructive_action_below_p0_needs_one_approver(incidents: Incidents) -> None:
    handle = await open_probe(incidents, severity=Severity.P1, destructive=True)
    await decide(handle, "bob")
    assert (await handle.result()).outcome.decided_by == "bob"


async def test_requester_may_not_approve_own_destructive_action(incidents: Incidents) -> None:
    handle = await open_probe(incidents, destructive=True, requested_by="alice")
    assert "may not approve it" in await refused(handle, "alice")
    # Rejecting one's own request is always allowed: it is the safe direction.
    await decide(handle, "alice", approved=False)
    result = await handle.result()
    assert not result.outcome.approved and result.final_state == "left_alone"


async def test_golden_rule_and_roles(stanch: Running, incidents: Incidents) -> None:
    handle = await open_probe(incidents)
    assert "was not recommended" in await refused(handle, "alice", action="drop-database")
    assert "may not decide" in await refused(handle, "mallory")
    await handle.signal("approve", ApprovalAnswer(approver="mallory", action="purge"))
    await handle.signal("approve", ApprovalAnswer(approver="bob", action="drop-database"))
    await decide(handle, "bob")
    result = await handle.result()
    assert result.outcome.decided_by == "bob"
    rows = audit_rows(stanch.settings, handle.id)
    # Each refusal is audited by its own signal handler, concurrently: numbered in arrival order,
    # written in whichever order the two writes finish.
    refusals = sorted((row["step_key"], row["actor"]) for row in rows if row["outcome"] == "refused")
    assert refusals == [("refused-1", "mallory"), ("refused-2", "bob")]
    assert "was not recommended" in next(row["reason"] for row in rows if row["step_key"] == "refused-2")


async def test_answer_to_a_closed_gate_is_refused(stanch: Running, incidents: Incidents) -> None:
    handle = await open_probe(incidents, linger=True)
    await decide(handle, "alice", approved=False)
    await until_state(handle, "decided")
    assert "no approval is pending" in await refused(handle, "bob")
    await handle.signal("approve", ApprovalAnswer(approver="bob", action="purge"))
    await handle.signal("resolve", Resolution(by="alice", note="queue drained by itself"))
    result = await handle.result()
    assert not result.outcome.approved and result.outcome.decided_by == "alice"
    rows = audit_rows(stanch.settings, handle.id)
    assert [(r["actor"], r["outcome"]) for r in rows if r["step_key"] == "refused-1"] == [("bob", "refused")]
    assert rows[-1]["step_key"] == "closed" and rows[-1]["actor"] == "alice"


@pytest.mark.slow  # nobody answers: the whole ladder to its safe default, dozens of pages (3-14 s)
async def test_escalation_walks_every_level_then_pages_the_last_until_it_takes_the_safe_default(
    stanch: Running, incidents: Incidents
) -> None:
    handle = await open_probe(incidents, escalation=CHAIN)
    result = await handle.result()  # nobody answers: the server skips every timer

    assert result.outcome.timed_out and not result.outcome.approved
    assert result.outcome.comment == "leave the queue as it is"
    assert result.final_state == "left_alone"
    # Unattended from 1 h 45: the last level again every 30 minutes (2 h 15 ... 23 h 45), then the
    # safe default and a final page 24 h after the question.
    steps = [row["step_key"] for row in audit_rows(stanch.settings, handle.id)]
    assert steps == [
        "gate1-requested",
        "gate1-escalate-1",
        "gate1-escalate-2",
        "gate1-escalate-3",
        *repeat_pages(44),
        "gate1-safe-default",
        "gate1-give-up",
        "closed",
    ]
    mine = chat_messages(stanch.settings.platform_url, handle.id)
    assert [(m["channel"], m["recipient"]) for m in mine] == [
        ("team-lead", "carol"),
        ("director", "dana"),
        *[("cto", "erin")] * (1 + 44 + 1),
    ]
    # The waits are the policy's: 30 min before the first level, then each level's own interval.
    history = await handle.fetch_history()
    timers = level_timers(history)
    assert timers[:4] == [
        timedelta(minutes=30),
        timedelta(minutes=30),
        timedelta(minutes=30),
        timedelta(minutes=15),
    ]
    assert timers[4:-1] == [timedelta(minutes=30)] * 44
    # What is left of the 24 h, counted from the question (the pages took a little real time).
    assert timedelta(minutes=14) < timers[-1] <= timedelta(minutes=15)


async def test_acknowledge_stops_the_clock_and_escalate_jumps_a_level(
    stanch: Running, incidents: Incidents
) -> None:
    handle = await open_probe(incidents, escalation=CHAIN)
    await handle.signal("acknowledge", Acknowledgement(by="alice"))
    # Past the first level's 30 minutes, within the policy's 30-minute hold from the acknowledgement.
    await stanch.env.sleep(timedelta(minutes=25))
    assert (await until_state(handle, "awaiting_approval")).state == "awaiting_approval"
    assert [r["step_key"] for r in audit_rows(stanch.settings, handle.id)] == ["gate1-requested"]

    await handle.signal("escalate", EscalationRequest(by="alice", reason="need a lead's call"))
    brief = await until_state(handle, "escalated")
    assert brief.awaiting is not None and "team-lead" in brief.awaiting
    await decide(handle, "carol")
    result = await handle.result()
    assert result.outcome.approved and result.outcome.escalated
    steps = [row["step_key"] for row in audit_rows(stanch.settings, handle.id)]
    assert steps == ["gate1-requested", "gate1-escalate-1", "gate1-decision", "closed"]
