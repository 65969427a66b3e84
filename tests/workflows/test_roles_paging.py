"""Roles are people (issue 11 part 1), on the time-skipping server with the shipped policy: who got each page
on which channel kind, read from the sandbox chat, and who may decide the owner's questions.

Shipped roles: oncall alice + bob, lead carol + dave (the escalation level `team-lead`), owner erin + dave;
everyone's instant and cockpit channels are the sandbox chat."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import psycopg

from schemas.approvals import ApprovalAnswer
from schemas.severity import Severity
from stanch.settings import Settings
from tests.helpers import Incidents, Running, audit_rows, new_agent, pages, until_state

BOTH_KINDS = ["cockpit", "instant"]  # P1, seed 004: cockpit + instant


def details(settings: Settings, workflow_id: str, step: str) -> dict[str, Any]:
    with psycopg.connect(settings.database_url) as conn:
        row = conn.execute(
            "SELECT details FROM audit_log WHERE workflow_id = %s AND step_key = %s", (workflow_id, step)
        ).fetchone()
    assert row is not None, f"no audit row {step}"
    return dict(row[0])


def each(audience: str, people: list[str], kinds: list[str]) -> list[tuple[str, str, str | None]]:
    """The pages a role's people get, in the order the notify activity sends them: kind by kind."""
    return [(audience, person, kind) for kind in kinds for person in people]


async def test_emergency_stop_pages_on_call_people_then_the_lead_people_on_cockpit_and_instant(
    stanch: Running, incidents: Incidents
) -> None:
    sandbox = stanch.settings.platform_url
    agent_id = new_agent(sandbox)
    handle = await incidents.agent_emergency_stop(agent_id)  # P1
    await until_state(handle, "awaiting_approval")

    assert pages(sandbox, handle.id, "Assistant paused") == [("customer", "", None)]
    assert pages(sandbox, handle.id, f"Agent {agent_id} paused") == each(
        "on-call", ["alice", "bob"], BOTH_KINDS
    )
    # The audit row of the page says who got it on which kind, and that no group had to stand in.
    told = details(stanch.settings, handle.id, "tell-oncall")
    assert "'person': 'alice', 'kind': 'cockpit'" in told["deliveries"]
    assert "'person': 'bob', 'kind': 'instant'" in told["deliveries"]
    assert told["fallback"] == ""

    # Nobody decides: 30 minutes on, the team-lead level pages the lead role, carol and dave.
    await stanch.env.sleep(timedelta(minutes=31))
    await until_state(handle, "escalated")
    assert pages(sandbox, handle.id, "Escalation:") == each("team-lead", ["carol", "dave"], BOTH_KINDS)

    # dave, paged as a lead, decides; nobody else was paged in the meantime.
    await handle.signal("approve", ApprovalAnswer(approver="dave", action="rollback", comment="roll back"))
    result = await handle.result()
    assert result.final_state == "rolled_back" and result.approval is not None
    assert result.approval.decided_by == "dave"
    assert len(pages(sandbox, handle.id)) == 1 + 4 + 4


async def test_onboarding_asks_the_owner_role_on_the_cockpit_and_refuses_the_lead(
    stanch: Running, incidents: Incidents
) -> None:
    sandbox = stanch.settings.platform_url
    agent_id = f"agent-roles-{new_agent(sandbox)}"
    handle = await incidents.open(
        "agent_onboarding",
        labels={"agent": agent_id},
        annotations={"summary": "a billing assistant"},
        target={"agent_id": agent_id, "role": "billing-assistant"},
        severity=Severity.P3,
        service="agents",
    )
    brief = await until_state(handle, "awaiting_approval")
    assert brief.awaiting is not None and "by owner" in brief.awaiting

    # carol is a lead, not an owner: refused, audited. erin (the seeds' CEO) approves each draft.
    await handle.signal("approve", ApprovalAnswer(approver="carol", action="approve-scope"))
    for action in ["approve-scope", "approve-job-description", "approve-capabilities"]:
        await handle.signal("approve", ApprovalAnswer(approver="erin", action=action))
        if action != "approve-capabilities":
            await until_state(handle, "awaiting_approval")
    result = await handle.result()

    rows = audit_rows(stanch.settings, handle.id)
    [refused] = [row for row in rows if row["step_key"] == "refused-1"]
    assert (refused["actor"], refused["outcome"]) == ("carol", "refused")
    assert "needs owner" in refused["reason"]
    # P3: the owner's people, erin and dave, hear of the deploy on the cockpit only.
    assert pages(sandbox, handle.id, f"Agent {agent_id} deployed") == each(
        "owner", ["erin", "dave"], ["cockpit"]
    )
    assert result.final_state == "operational"
