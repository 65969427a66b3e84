"""Escalation to a human on the time-skipping server, with the real handoff desk (sandbox) and audit log."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from temporalio.client import WorkflowHandle

from schemas.approvals import ApprovalAnswer, Decision
from schemas.handoff import Handoff, HandoffInput, HandoffOption, HandoffResult, Trigger
from schemas.severity import Severity
from stanch.settings import Settings
from tests.clock import settled
from tests.helpers import (
    SHIPPED_LADDER_REPEATS,
    Incidents,
    Running,
    applied,
    audit_rows,
    fault,
    http_client,
    repeat_pages,
    until_state,
)
from tests.helpers_keys import demo_signed

OPENING = ["handoff-document", "notify-human", "gate1-requested"]
OPTIONS = [
    HandoffOption(name="refund-customer", description="refund the 40 EUR the customer disputes"),
    HandoffOption(name="human-takeover", description="a person answers the customer"),
    HandoffOption(name="delete-conversation", description="erase the thread", destructive=True),
]


def a_handoff(priority: Severity = Severity.P1, **changes: Any) -> Handoff:
    fields: dict[str, Any] = {
        "trigger": Trigger.over_threshold,
        "subject": "billing-bot-h",
        "context": "A refund above the agent's 20 EUR ceiling was requested.",
        "tried": ["agent checked the invoice", "agent asked the customer for the order number"],
        "options": OPTIONS,
        "recommendation": "refund-customer",
        "priority": priority,
        "requested_by": "billing-bot-h",
        **changes,
    }
    return Handoff(**fields)


async def start(
    incidents: Incidents, handoff: Handoff | None, labels: dict[str, str] | None = None
) -> WorkflowHandle[Any, HandoffResult]:
    return await incidents.open(
        "escalation_to_human",
        alertname="AgentNeedsHuman",
        labels=labels or {},
        annotations={"summary": "billing-bot-h needs a human", "description": "refund over the ceiling"},
        severity=Severity.P2,
        service="agents",
        workflow_id="incident-test-handoff-{fingerprint}",
        signal_alert=False,
        target={"agent_id": "billing-bot-h", **(labels or {})},
        input_type=HandoffInput,
        result_type=HandoffResult,
        handoff=handoff,
    )


def desk(sandbox_url: str, handoff_id: str) -> dict[str, Any]:
    return http_client.get(f"{sandbox_url}/handoffs/{handoff_id}").json()


def delivery_groups(settings: Settings, workflow_id: str, step: str) -> set[str]:
    """The channel kinds a step reached the owner's people on, from the audit row's details (the receipt's
    deliveries: one per person and kind)."""
    with psycopg.connect(settings.database_url) as conn:
        row = conn.execute(
            "SELECT details FROM audit_log WHERE workflow_id = %s AND step_key = %s", (workflow_id, step)
        ).fetchone()
    assert row is not None, f"no audit row {step}"
    deliveries = row[0]["deliveries"]
    return {kind for kind in ("cockpit", "instant") if f"'kind': '{kind}'" in deliveries}


async def test_approved_recommendation_is_carried_out_and_logged(
    stanch: Running, incidents: Incidents
) -> None:
    sandbox = stanch.settings.platform_url
    handle = await start(incidents, a_handoff(Severity.P1))
    brief = await until_state(handle, "awaiting_approval")
    assert brief.severity == "P1" and brief.recommendation.startswith("refund-customer")
    stored = desk(sandbox, handle.id)
    assert stored["status"] == "open" and "agent checked the invoice" in stored["markdown"]

    await handle.signal("approve", ApprovalAnswer(approver="erin", action="refund-customer", comment="ok"))
    result = await handle.result()

    assert (result.final_state, result.chosen_option, result.decided_by) == (
        "decided",
        "refund-customer",
        "erin",
    )
    assert result.carried_out
    stored = desk(sandbox, handle.id)
    assert (stored["status"], stored["executed_option"], stored["decided_by"]) == (
        "executed",
        "refund-customer",
        "erin",
    )
    assert applied(sandbox, f"/handoffs/{handle.id}/execute") == 1
    rows = audit_rows(stanch.settings, handle.id)
    assert [row["step_key"] for row in rows] == [*OPENING, "gate1-decision", "carry-out", "closed"]
    carry = next(row for row in rows if row["step_key"] == "carry-out")
    assert (carry["actor"], carry["outcome"]) == ("erin", "done")
    # P1: the cockpit and the instant channel both heard it.
    assert delivery_groups(stanch.settings, handle.id, "notify-human") == {"cockpit", "instant"}


async def test_rejection_naming_another_option_carries_that_one_out(
    stanch: Running, incidents: Incidents
) -> None:
    sandbox = stanch.settings.platform_url
    handle = await start(incidents, a_handoff(Severity.P2))
    await until_state(handle, "awaiting_approval")

    await handle.signal(
        "reject",
        ApprovalAnswer(approver="dave", action="refund-customer", comment="no refund: human-takeover please"),
    )
    result = await handle.result()

    assert (result.final_state, result.chosen_option, result.decided_by) == (
        "decided",
        "human-takeover",
        "dave",
    )
    stored = desk(sandbox, handle.id)
    assert (stored["executed_option"], stored["decided_by"]) == ("human-takeover", "dave")
    rows = audit_rows(stanch.settings, handle.id)
    assert [row["step_key"] for row in rows] == [*OPENING, "gate1-decision", "carry-out", "closed"]
    assert rows[3]["outcome"] == "rejected" and rows[4]["actor"] == "dave"
    # P2: cockpit only.
    assert delivery_groups(stanch.settings, handle.id, "notify-human") == {"cockpit"}


async def test_rejection_naming_no_option_carries_out_nothing(stanch: Running, incidents: Incidents) -> None:
    sandbox = stanch.settings.platform_url
    handle = await start(incidents, a_handoff(Severity.P3))
    await until_state(handle, "awaiting_approval")

    outcome = await handle.execute_update(
        "decide",
        Decision(approver="dave", action="refund-customer", approved=False, comment="wait"),
        result_type=dict,
    )
    assert outcome["accepted"]
    result = await handle.result()

    assert (result.final_state, result.chosen_option, result.carried_out) == ("declined", None, False)
    assert desk(sandbox, handle.id)["status"] == "open"
    assert applied(sandbox, f"/handoffs/{handle.id}/execute") == 0
    steps = [row["step_key"] for row in audit_rows(stanch.settings, handle.id)]
    assert steps == [*OPENING, "gate1-decision", "closed"]


async def test_destructive_alternative_needs_a_second_approver(stanch: Running, incidents: Incidents) -> None:
    sandbox = stanch.settings.platform_url
    handle = await start(incidents, a_handoff(Severity.P2))
    await until_state(handle, "awaiting_approval")

    await handle.signal(
        "reject", ApprovalAnswer(approver="erin", action="refund-customer", comment="delete-conversation")
    )
    # The rejecter proposed the destructive option and may not approve it herself.
    await until_gate(handle, 2)
    await handle.signal(
        "approve", await demo_signed(handle, ApprovalAnswer(approver="erin", action="delete-conversation"))
    )
    await handle.signal(
        "approve", await demo_signed(handle, ApprovalAnswer(approver="dave", action="delete-conversation"))
    )
    result = await handle.result()

    assert (result.final_state, result.chosen_option, result.decided_by) == (
        "decided",
        "delete-conversation",
        "dave",
    )
    assert desk(sandbox, handle.id)["executed_option"] == "delete-conversation"
    steps = [row["step_key"] for row in audit_rows(stanch.settings, handle.id)]
    assert steps == [
        *OPENING,
        "gate1-decision",
        "gate2-requested",
        "refused-1",
        "gate2-decision",
        "carry-out",
        "closed",
    ]


@pytest.mark.slow  # nobody answers: the whole ladder to its safe default, dozens of pages (3-14 s)
async def test_nobody_answers_escalates_and_carries_out_nothing(
    stanch: Running, incidents: Incidents
) -> None:
    sandbox = stanch.settings.platform_url
    handle = await start(incidents, a_handoff(Severity.P0))
    await until_state(handle, "awaiting_approval")

    result = await handle.result()  # time skips through the ladder and 24 hours unattended

    assert (result.final_state, result.carried_out) == ("closed_unattended", False)
    assert result.approval is not None and result.approval.timed_out
    assert desk(sandbox, handle.id)["status"] == "open"
    steps = [row["step_key"] for row in audit_rows(stanch.settings, handle.id)]
    # The P0 response target (5 min) moved it to the team lead before the gate's 30 minutes did; the gate
    # went on from there, unattended at 35 min: one repeat more in the 24 hours than the gate alone.
    assert steps == [
        *OPENING,
        "response-target-missed",
        *repeat_pages(SHIPPED_LADDER_REPEATS + 1),
        "gate1-safe-default",
        "gate1-give-up",
        "closed",
    ]
    # P0: the instant channel at once, not the cockpit.
    assert delivery_groups(stanch.settings, handle.id, "notify-human") == {"instant"}


async def test_an_alert_without_a_handoff_gets_one_from_its_labels(
    stanch: Running, incidents: Incidents
) -> None:
    sandbox = stanch.settings.platform_url
    labels = {
        "trigger": "low_quality",
        "quality_score": "0.55",
        "priority": "P1",
        "recommendation": "pause-agent",
    }
    handle = await start(incidents, None, labels)
    brief = await until_state(handle, "awaiting_approval")
    assert brief.severity == "P1" and brief.recommendation.startswith("pause-agent")
    stored = desk(sandbox, handle.id)
    assert [o["name"] for o in stored["handoff"]["options"]] == [
        "human-takeover",
        "let-agent-continue",
        "pause-agent",
    ]
    assert stored["handoff"]["trigger"] == "low_quality" and "55%" in stored["markdown"]

    await handle.signal("approve", ApprovalAnswer(approver="dave", action="pause-agent"))
    result = await handle.result()
    assert (result.final_state, result.chosen_option) == ("decided", "pause-agent")
    assert desk(sandbox, handle.id)["executed_option"] == "pause-agent"


async def test_handoff_desk_failure_is_audited_and_paged(stanch: Running, incidents: Incidents) -> None:
    sandbox = stanch.settings.platform_url
    fault(sandbox, "/handoffs", 422)
    handle = await start(incidents, a_handoff(Severity.P1))
    result = await handle.result()

    assert result.final_state == "action_failed"
    rows = audit_rows(stanch.settings, handle.id)
    assert [(row["step_key"], row["outcome"]) for row in rows] == [
        ("handoff-document", "failed"),
        ("handoff-failed", "done"),
        ("closed", "action_failed"),
    ]


async def until_gate(handle: WorkflowHandle[Any, Any], n: int) -> None:
    import asyncio

    from schemas.briefs import Timeline

    for _ in range(200):
        timeline = await handle.query("timeline", result_type=Timeline)
        if sum(1 for e in timeline.entries if e.text == "state is now awaiting_approval") >= n:
            await settled(handle)
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"gate {n} was never asked")


def test_handoff_model_refuses_an_unknown_recommendation() -> None:
    import pytest
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="not one of the options"):
        a_handoff(recommendation="fire-everyone")
    assert a_handoff().alternative_in("Human-Takeover, not a refund") == OPTIONS[1]
    assert a_handoff().alternative_in("refund-customer is wrong") is None
