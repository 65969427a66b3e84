"""Escalation that never ends in silence (issue 11), through the agent emergency stop on the time-skipping
server, with the shipped policy's ladder: the team lead (the lead role: carol and dave, each on cockpit and
instant for this P1) 30 minutes after the question, then `unattended` with the agent paused and the lead
paged every 30 minutes, then `closed_unattended` 24 hours after the question. Real effects: the sandbox
platform and chat, the audit log in Postgres."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from temporalio.client import WorkflowHandle

from schemas.approvals import ApprovalAnswer
from schemas.briefs import Timeline
from tests.helpers import (
    Incidents,
    Running,
    agent,
    applied,
    audit_rows,
    chat_messages,
    cli,
    level_timers,
    new_agent,
    until_state,
)
from tests.helpers import (
    pages as who_got,
)

OPENING = ["pause", "tell-customer", "tell-oncall", "gate1-requested"]
# Asked at 0; the team lead at 30 min; unattended from 60 min, the lead paged again at 90, 120 ... 1410 min.
REPEATS = 45


def steps(stanch: Running, handle: WorkflowHandle[Any, Any]) -> list[str]:
    return [row["step_key"] for row in audit_rows(stanch.settings, handle.id)]


def pages(stanch: Running, handle: WorkflowHandle[Any, Any]) -> list[dict[str, Any]]:
    """What the incident sent after its opening messages to the customer and on-call."""
    messages = chat_messages(stanch.settings.platform_url, handle.id)
    assert [m["channel"] for m in messages[:2]] == ["customer", "on-call"]
    return messages[2:]


async def test_unanswered_the_ladder_pages_the_team_lead_then_stays_unattended_paging_again(
    stanch: Running, incidents: Incidents
) -> None:
    sandbox = stanch.settings.platform_url
    agent_id = new_agent(sandbox)
    handle = await incidents.agent_emergency_stop(agent_id)
    await until_state(handle, "awaiting_approval")

    await stanch.env.sleep(timedelta(minutes=31))
    await until_state(handle, "escalated")
    assert [(m["channel"], m["recipient"]) for m in pages(stanch, handle)] == [("team-lead", "lead")]
    # Who got it on which kind: each of the lead's people, on cockpit and on instant (P1).
    assert who_got(sandbox, handle.id, "Escalation:") == [
        ("team-lead", "carol", "cockpit"),
        ("team-lead", "dave", "cockpit"),
        ("team-lead", "carol", "instant"),
        ("team-lead", "dave", "instant"),
    ]

    await stanch.env.sleep(timedelta(minutes=30))
    brief = await until_state(handle, "unattended")
    assert brief.awaiting is not None and f"keep agent {agent_id} paused" in brief.awaiting
    assert len(pages(stanch, handle)) == 1  # the last level was just paged; the repeats come every 30 min

    await stanch.env.sleep(timedelta(minutes=60))  # 2 h 01 after the question: repeats at 1 h 30 and 2 h
    await until_state(handle, "unattended")
    sent = pages(stanch, handle)
    assert [(m["channel"], m["recipient"]) for m in sent] == [("team-lead", "lead")] * 3
    assert all(m["title"].startswith("Still unattended:") for m in sent[1:])
    assert all(f"keep agent {agent_id} paused" in m["text"] for m in sent[1:])
    assert steps(stanch, handle) == [*OPENING, "gate1-escalate-1", "gate1-repeat-1", "gate1-repeat-2"]
    # The safe default is in force all along: paused on its version, nothing rolled back.
    state = agent(sandbox, agent_id)
    assert (state["state"], state["version"]) == ("paused", "v3")
    assert applied(sandbox, f"/agents/{agent_id}/rollback") == 0

    # Still open: a decision now ends the run (the rest of this ladder is the next test's).
    await handle.signal("reject", ApprovalAnswer(approver="bob", action="rollback", comment="leave it"))
    result = await handle.result()
    assert result.final_state == "contained"
    assert result.approval is not None and not result.approval.timed_out
    assert steps(stanch, handle)[-2:] == ["gate1-decision", "closed"]


@pytest.mark.slow  # nobody answers: the whole ladder to its safe default, dozens of pages (3-14 s)
async def test_unanswered_for_24_hours_it_closes_unattended_with_a_final_page_naming_the_safe_state(
    stanch: Running, incidents: Incidents
) -> None:
    sandbox = stanch.settings.platform_url
    agent_id = new_agent(sandbox)
    handle = await incidents.agent_emergency_stop(agent_id)
    await until_state(handle, "awaiting_approval")

    result = await handle.result()  # nobody ever answers: the server skips every timer

    assert result.final_state == "closed_unattended"
    assert result.approval is not None and result.approval.timed_out and not result.approval.approved
    assert result.approval.comment == f"keep agent {agent_id} paused"
    state = agent(sandbox, agent_id)
    assert (state["state"], state["version"]) == ("paused", "v3")
    assert applied(sandbox, f"/agents/{agent_id}/pause") == 1
    assert applied(sandbox, f"/agents/{agent_id}/rollback") == 0

    # Every page went to the last level, the lead, once each: the escalation, 45 repeats, the final page.
    sent = pages(stanch, handle)
    assert [(m["channel"], m["recipient"]) for m in sent] == [("team-lead", "lead")] * (REPEATS + 2)
    assert len({m["title"] + m["text"] for m in sent[1:-1]}) == 1
    final = sent[-1]
    assert final["title"].startswith("Closed unattended:")
    assert f"Still in its safe state: keep agent {agent_id} paused" in final["text"]
    assert "24 hours" in final["text"]

    rows = audit_rows(stanch.settings, handle.id)
    repeats = [f"gate1-repeat-{n}" for n in range(1, REPEATS + 1)]
    assert [row["step_key"] for row in rows] == [
        *OPENING,
        "gate1-escalate-1",
        *repeats,
        "gate1-safe-default",
        "gate1-give-up",
        "closed",
    ]
    assert rows[-1]["outcome"] == "closed_unattended"
    assert all(row["outcome"] == "done" for row in rows if row["step_key"].startswith("gate1-repeat-"))

    # The clock: 30 min to the team lead, 30 min to unattended, then every 30 min until 24 h after asking.
    history = await handle.fetch_history()
    timers = level_timers(history)
    # The last wait is what is left of the 24 h counted from the question, which the pages ate into.
    assert timers[:-1] == [timedelta(minutes=30)] * (2 + REPEATS)
    assert timedelta(minutes=29) < timers[-1] <= timedelta(minutes=30)


async def test_a_late_approval_while_unattended_is_carried_out_like_a_timely_one(
    stanch: Running, incidents: Incidents
) -> None:
    sandbox = stanch.settings.platform_url
    agent_id = new_agent(sandbox)
    handle = await incidents.agent_emergency_stop(agent_id)
    await until_state(handle, "awaiting_approval")

    await stanch.env.sleep(timedelta(hours=2, minutes=1))
    await until_state(handle, "unattended")
    assert agent(sandbox, agent_id)["state"] == "paused"

    await handle.signal("approve", ApprovalAnswer(approver="alice", action="rollback", comment="late, sorry"))
    result = await handle.result()

    assert result.final_state == "rolled_back"
    assert result.approval is not None and result.approval.approved and result.approval.escalated
    assert result.approval.decided_by == "alice" and not result.approval.timed_out
    state = agent(sandbox, agent_id)
    assert state["version"] == "v2"
    assert applied(sandbox, f"/agents/{agent_id}/rollback") == 1
    rows = audit_rows(stanch.settings, handle.id)
    assert [row["step_key"] for row in rows] == [
        *OPENING,
        "gate1-escalate-1",
        "gate1-repeat-1",
        "gate1-repeat-2",
        "gate1-decision",
        "rollback",
        "closed",
    ]
    decision = next(row for row in rows if row["step_key"] == "gate1-decision")
    assert (decision["actor"], decision["outcome"], decision["reason"]) == (
        "alice",
        "approved",
        "late, sorry",
    )
    rollback = next(row for row in rows if row["step_key"] == "rollback")
    assert (rollback["actor"], rollback["outcome"]) == ("alice", "done")
    assert [(m["channel"], m["recipient"]) for m in pages(stanch, handle)] == [("team-lead", "lead")] * 3


async def test_an_acknowledgement_runs_out_after_30_minutes_and_the_ladder_resumes_with_a_page_saying_so(
    stanch: Running, incidents: Incidents, cli_env: dict[str, str]
) -> None:
    sandbox = stanch.settings.platform_url
    agent_id = new_agent(sandbox)
    handle = await incidents.agent_emergency_stop(agent_id)
    await until_state(handle, "awaiting_approval")
    acknowledged = await cli(["acknowledge", handle.id, "--as", "alice"], cli_env)
    assert acknowledged.exit_code == 0, acknowledged.output
    assert f"{handle.id}: acknowledged by alice" in acknowledged.output
    timeline = await handle.query("timeline", result_type=Timeline)
    assert any(e.kind == "decision" and e.text == "acknowledged by alice" for e in timeline.entries)

    # Held: past the first level's 30 minutes nobody is paged...
    await stanch.env.sleep(timedelta(minutes=25))
    assert (await until_state(handle, "awaiting_approval")).state == "awaiting_approval"
    assert pages(stanch, handle) == []
    assert steps(stanch, handle) == OPENING

    # ... until the hold runs out: the team lead is paged, told that alice's acknowledgement ran out.
    await stanch.env.sleep(timedelta(minutes=10))
    brief = await until_state(handle, "escalated")
    assert brief.awaiting is not None and "team-lead" in brief.awaiting
    sent = pages(stanch, handle)
    assert [(m["channel"], m["recipient"]) for m in sent] == [("team-lead", "lead")]
    assert "The acknowledgement by alice ran out after 30 minutes." in sent[0]["text"]
    assert steps(stanch, handle) == [*OPENING, "gate1-escalate-1"]
    assert agent(sandbox, agent_id)["state"] == "paused"

    await handle.signal("approve", ApprovalAnswer(approver="carol", action="rollback"))
    result = await handle.result()
    assert result.final_state == "rolled_back" and result.approval is not None
    assert result.approval.decided_by == "carol" and result.approval.escalated
    assert agent(sandbox, agent_id)["version"] == "v2"
    assert steps(stanch, handle) == [*OPENING, "gate1-escalate-1", "gate1-decision", "rollback", "closed"]
