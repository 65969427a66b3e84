"""The agent emergency stop runbook on the time-skipping server, with real effects:
the sandbox platform over HTTP and the audit log in Postgres."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError

from schemas.approvals import ApprovalAnswer, Decision
from schemas.briefs import Brief, Timeline
from tests.clock import settled
from tests.helpers import (
    Incidents,
    Running,
    agent,
    applied,
    audit_rows,
    chat_messages,
    new_agent,
    repeat_pages,
    until_state,
)
from workflows.steps.incident import ESCALATION_LEVEL

EXPECTED_OPENING = ["pause", "tell-customer", "tell-oncall", "gate1-requested"]


async def test_pauses_at_once_then_rolls_back_on_approval(stanch: Running, incidents: Incidents) -> None:
    sandbox = stanch.settings.platform_url
    agent_id = new_agent(sandbox)
    handle = await incidents.agent_emergency_stop(agent_id)

    brief = await until_state(handle, "awaiting_approval")
    assert agent(sandbox, agent_id)["state"] == "paused"
    assert "Roll agent" in brief.recommendation and "v2" in brief.recommendation
    assert any("Pause agent" in action for action in brief.automatic_actions)

    await handle.signal("approve", ApprovalAnswer(approver="alice", action="rollback", comment="v3 is bad"))
    result = await handle.result()

    assert result.final_state == "rolled_back"
    assert result.approval is not None and result.approval.decided_by == "alice"
    state = agent(sandbox, agent_id)
    assert state["version"] == "v2"
    assert applied(sandbox, f"/agents/{agent_id}/pause") == 1
    assert applied(sandbox, f"/agents/{agent_id}/rollback") == 1
    steps = [row["step_key"] for row in audit_rows(stanch.settings, handle.id)]
    assert steps == [*EXPECTED_OPENING, "gate1-decision", "rollback", "closed"]
    decision = next(
        row for row in audit_rows(stanch.settings, handle.id) if row["step_key"] == "gate1-decision"
    )
    assert (decision["actor"], decision["outcome"], decision["reason"]) == ("alice", "approved", "v3 is bad")
    assert [m["channel"] for m in chat_messages(sandbox, handle.id)] == ["customer", "on-call"]


async def test_rejection_keeps_agent_paused_on_its_version(stanch: Running, incidents: Incidents) -> None:
    sandbox = stanch.settings.platform_url
    agent_id = new_agent(sandbox)
    handle = await incidents.agent_emergency_stop(agent_id)
    await until_state(handle, "awaiting_approval")

    await handle.signal(
        "reject", ApprovalAnswer(approver="bob", action="rollback", comment="investigate first")
    )
    result = await handle.result()

    assert result.final_state == "contained"
    assert result.approval is not None and not result.approval.approved
    state = agent(sandbox, agent_id)
    assert (state["state"], state["version"]) == ("paused", "v3")
    assert applied(sandbox, f"/agents/{agent_id}/rollback") == 0
    rows = audit_rows(stanch.settings, handle.id)
    assert [row["step_key"] for row in rows] == [*EXPECTED_OPENING, "gate1-decision", "closed"]
    assert rows[-2]["outcome"] == "rejected"


@pytest.mark.slow  # nobody answers: the whole ladder to its safe default, dozens of pages (3-14 s)
async def test_no_answer_for_30_minutes_escalates_and_keeps_agent_paused(
    stanch: Running, incidents: Incidents
) -> None:
    sandbox = stanch.settings.platform_url
    agent_id = new_agent(sandbox)
    handle = await incidents.agent_emergency_stop(agent_id)
    await until_state(handle, "awaiting_approval")

    # Skip the first 30 minutes only: the escalation notification goes out and the incident says so.
    await stanch.env.sleep(timedelta(minutes=30, seconds=5))
    brief = await until_state(handle, "escalated")
    assert brief.awaiting is not None and "team-lead" in brief.awaiting
    escalations = [m for m in chat_messages(sandbox, handle.id) if m["channel"] == "team-lead"]
    assert len(escalations) == 1 and escalations[0]["recipient"] == "lead"
    # The list of incidents reads how far up the ladder it stands from one search attribute (issue 14).
    assert (await handle.describe()).typed_search_attributes.get(ESCALATION_LEVEL) == 1

    # Nobody answers the team lead either: unattended, paged, then the safe default for good at 24 h
    # (tests/workflows/test_escalation_ladder.py follows the ladder step by step).
    result = await handle.result()
    assert result.final_state == "closed_unattended"
    # Past the last level (the answer window, then team-lead): level 2, as the ladder counts it.
    assert (await handle.describe()).typed_search_attributes.get(ESCALATION_LEVEL) == 2
    assert result.approval is not None and result.approval.timed_out and not result.approval.approved
    state = agent(sandbox, agent_id)
    assert (state["state"], state["version"]) == ("paused", "v3")
    steps = [row["step_key"] for row in audit_rows(stanch.settings, handle.id)]
    assert steps == [
        *EXPECTED_OPENING,
        "gate1-escalate-1",
        *repeat_pages(),
        "gate1-safe-default",
        "gate1-give-up",
        "closed",
    ]


async def test_decide_update_refuses_unknown_approver_and_unrecommended_action(
    stanch: Running, incidents: Incidents
) -> None:
    sandbox = stanch.settings.platform_url
    agent_id = new_agent(sandbox)
    handle = await incidents.agent_emergency_stop(agent_id)
    await until_state(handle, "awaiting_approval")

    assert "may not decide" in await refusal(
        handle, Decision(approver="mallory", action="rollback", approved=True)
    )
    assert "was not recommended" in await refusal(
        handle, Decision(approver="alice", action="delete-agent", approved=True)
    )
    # A refused signal changes nothing but is kept in the timeline and the audit log.
    await handle.signal("approve", ApprovalAnswer(approver="mallory", action="rollback"))
    await until_refused(handle)
    assert (await handle.query("brief", result_type=Brief)).state == "awaiting_approval"

    outcome = await handle.execute_update(
        "decide", Decision(approver="carol", action="rollback", approved=True), result_type=dict
    )
    assert outcome["accepted"] and outcome["approver"] == "carol"
    result = await handle.result()
    assert result.final_state == "rolled_back"
    rows = audit_rows(stanch.settings, handle.id)
    refused = [row for row in rows if row["outcome"] == "refused"]
    assert [(row["actor"], row["step_key"]) for row in refused] == [("mallory", "refused-1")]
    history = await handle.fetch_history()
    accepted_updates = [
        e for e in history.events if e.HasField("workflow_execution_update_accepted_event_attributes")
    ]
    assert len(accepted_updates) == 1  # validators keep refused updates out of history


async def until_refused(handle: WorkflowHandle[Any, Any]) -> None:
    for _ in range(200):
        timeline = await handle.query("timeline", result_type=Timeline)
        if any(entry.kind == "refused" for entry in timeline.entries):
            await settled(handle)
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the refused signal never reached the timeline")


async def refusal(handle: WorkflowHandle[Any, Any], decision: Decision) -> str:
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update("decide", decision)
    return str(refused.value.cause)


async def test_a_refused_attempt_is_noted_and_audited_by_the_incident_and_changes_nothing_else(
    stanch: Running, incidents: Incidents
) -> None:
    # What the console sends when erin (owner) posts an approval her roles do not allow (issue 14).
    from schemas.approvals import RefusedAttempt

    sandbox = stanch.settings.platform_url
    agent_id = new_agent(sandbox)
    handle = await incidents.agent_emergency_stop(agent_id)
    await until_state(handle, "awaiting_approval")
    attempt = RefusedAttempt(
        by="erin", action="approve rollback", reason="needs oncall or lead", via="console"
    )
    await handle.signal("refused_attempt", attempt)
    await handle.signal("refused_attempt", attempt)  # each attempt is its own row

    timeline = await handle.query("timeline", result_type=Timeline)
    refused = [entry for entry in timeline.entries if entry.kind == "refused"]
    assert [(e.actor, e.text) for e in refused] == [
        ("erin", "approve rollback by erin via console refused: needs oncall or lead")
    ] * 2
    # Nothing was decided: the question is still open, and alice's approval still rolls back.
    assert (await handle.query("brief", result_type=Brief)).state == "awaiting_approval"
    await handle.signal("approve", ApprovalAnswer(approver="alice", action="rollback"))
    assert (await handle.result()).final_state == "rolled_back"
    from stanch.audit_store import read_rows

    rows = [row for row in read_rows(stanch.settings.database_url, handle.id) if row.actor == "erin"]
    assert [(r.step_key, r.action, r.outcome, r.details) for r in rows] == [
        ("attempt-refused-1", "approve rollback", "refused", {"via": "console"}),
        ("attempt-refused-2", "approve rollback", "refused", {"via": "console"}),
    ]
