"""Customer messages reviewed beside the runbook (`customer_messages = "review"`), on the time-skipping server
with real effects: the sandbox's chat and agents over HTTP, the audit log in Postgres, the `stanch` CLI.

The runbook's main gate (the rollback) and the review of its customer message never wait for each other:
each test answers them in a different order and watches the sandbox between the two answers."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError

from schemas.approvals import ApprovalAnswer, Decision, DecisionOutcome, Resolution
from schemas.briefs import Brief
from schemas.channel import AppealVerdict
from schemas.incidents import IncidentPolicy
from stanch.policy import PolicyError, load_policy
from stanch.settings import REPO_ROOT, Settings
from tests.clock import settled
from tests.helpers import (
    Incidents,
    Running,
    agent,
    audit_rows,
    chat_messages,
    cli,
    http_client,
    new_agent,
    until_state,
    write_policy,
)
from workflows.agent_emergency_stop import CUSTOMER_MESSAGE
from workflows.steps.customer_message import SEND_CUSTOMER_MESSAGE

REPLACEMENT = "Our assistant is paused while we fix a fault; Dana from our team is answering you now."


def reviewed(incidents: Incidents) -> IncidentPolicy:
    return incidents.policy.incident_policy().model_copy(update={"customer_messages": "review"})


async def emergency_stop(incidents: Incidents, agent_id: str) -> WorkflowHandle[Any, Any]:
    """`incidents.agent_emergency_stop`, with the incident's policy asking for customer messages reviewed."""
    return await incidents.open(
        "agent_emergency_stop",
        alertname="AgentHallucination",
        target={"agent_id": agent_id, "customer": "acme"},
        labels={"agent": agent_id, "customer": "acme"},
        annotations={"summary": f"{agent_id} promised a 90% discount"},
        service="support",
        incident_policy=reviewed(incidents),
    )


def rows(settings: Settings, workflow_id: str) -> dict[str, dict[str, Any]]:
    """The incident's audit rows by step, with their details."""
    with psycopg.connect(settings.database_url) as conn:
        found = conn.execute(
            "SELECT step_key, actor, outcome, reason, details FROM audit_log WHERE workflow_id = %s",
            (workflow_id,),
        ).fetchall()
    return {step: {"actor": a, "outcome": o, "reason": r, "details": d} for step, a, o, r, d in found}


def steps(stanch: Running, handle: WorkflowHandle[Any, Any]) -> list[str]:
    return [row["step_key"] for row in audit_rows(stanch.settings, handle.id)]


def told(sandbox: str, handle: WorkflowHandle[Any, Any], channel: str) -> list[dict[str, Any]]:
    return [m for m in chat_messages(sandbox, handle.id) if m["channel"] == channel]


async def until(check: Callable[[], bool], what: str) -> None:
    for _ in range(200):
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"never saw {what}")


async def brief_of(handle: WorkflowHandle[Any, Any]) -> Brief:
    await settled(handle)
    return await handle.query("brief", result_type=Brief)


async def refusal(handle: WorkflowHandle[Any, Any], decision: Decision) -> str:
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update("decide", decision)
    return str(refused.value.cause)


OPENING = ["pause", "tell-customer-review-requested", "tell-oncall", "gate1-requested"]


async def test_rollback_goes_ahead_while_the_draft_waits_then_the_draft_is_sent_as_approved(
    stanch: Running, incidents: Incidents
) -> None:
    sandbox = stanch.settings.platform_url
    agent_id = new_agent(sandbox)
    handle = await emergency_stop(incidents, agent_id)

    brief = await until_state(handle, "awaiting_approval")
    assert agent(sandbox, agent_id)["state"] == "paused"  # containment did not wait for the review
    assert [m["channel"] for m in chat_messages(sandbox, handle.id)] == ["on-call"]
    [pending] = brief.pending_reviews
    assert CUSTOMER_MESSAGE in pending and SEND_CUSTOMER_MESSAGE in pending and "acme" in pending
    assert "Roll agent" in brief.recommendation  # the main gate's question, untouched by the review

    # The rollback first: it is carried out while the customer message still waits.
    await handle.signal("approve", ApprovalAnswer(approver="alice", action="rollback", comment="v3 is bad"))
    await until(lambda: agent(sandbox, agent_id)["version"] == "v2", "the rollback at the sandbox")
    brief = await brief_of(handle)
    assert brief.state == "awaiting_approval" and brief.awaiting is not None
    assert "customer message" in brief.awaiting and len(brief.pending_reviews) == 1
    assert told(sandbox, handle, "customer") == []

    outcome = await handle.execute_update(
        "decide",
        Decision(approver="bob", action=SEND_CUSTOMER_MESSAGE, approved=True),
        result_type=DecisionOutcome,
    )
    assert outcome.accepted and outcome.detail == f"{SEND_CUSTOMER_MESSAGE} approved"
    result = await handle.result()

    assert result.final_state == "rolled_back"
    assert result.approval is not None and result.approval.decided_by == "alice"
    [message] = told(sandbox, handle, "customer")
    assert (message["recipient"], message["title"], message["text"]) == (
        "acme",
        "Assistant paused",
        CUSTOMER_MESSAGE,
    )
    assert steps(stanch, handle) == [
        *OPENING,
        "gate1-decision",
        "rollback",
        "tell-customer-review-decision",
        "tell-customer",
        "closed",
    ]
    decision = rows(stanch.settings, handle.id)["tell-customer-review-decision"]
    assert (decision["actor"], decision["outcome"], decision["details"]["text"]) == (
        "bob",
        "approved",
        "as drafted",
    )
    assert (await handle.query("brief", result_type=Brief)).pending_reviews == []


async def test_approver_replaces_the_draft_from_the_cli_and_the_customer_gets_the_new_text(
    stanch: Running, incidents: Incidents, cli_env: dict[str, str]
) -> None:
    sandbox = stanch.settings.platform_url
    agent_id = new_agent(sandbox)
    handle = await emergency_stop(incidents, agent_id)
    await until_state(handle, "awaiting_approval")

    # The review's own rules: an approver the policy knows, and a text that says something.
    assert "may not decide" in await refusal(
        handle, Decision(approver="mallory", action=SEND_CUSTOMER_MESSAGE, approved=True)
    )
    assert "replacement text is empty" in await refusal(
        handle, Decision(approver="carol", action=SEND_CUSTOMER_MESSAGE, approved=True, text="  ")
    )

    # The review first this time: the rollback still waits for its own answer.
    approved = await cli(
        [
            "approve",
            handle.id,
            SEND_CUSTOMER_MESSAGE,
            "--as",
            "carol",
            "--text",
            REPLACEMENT,
            "--comment",
            "name Dana",
        ],
        cli_env,
    )
    assert approved.exit_code == 0, approved.output
    await until(lambda: told(sandbox, handle, "customer") != [], "the customer message")
    [message] = told(sandbox, handle, "customer")
    assert (message["recipient"], message["text"]) == ("acme", REPLACEMENT)
    brief = await brief_of(handle)
    assert brief.state == "awaiting_approval" and brief.pending_reviews == []
    assert agent(sandbox, agent_id)["version"] == "v3"  # nothing rolled back yet

    await handle.signal("approve", ApprovalAnswer(approver="alice", action="rollback"))
    result = await handle.result()

    assert result.final_state == "rolled_back" and agent(sandbox, agent_id)["version"] == "v2"
    assert steps(stanch, handle) == [
        *OPENING,
        "tell-customer-review-decision",
        "tell-customer",
        "gate1-decision",
        "rollback",
        "closed",
    ]
    decision = rows(stanch.settings, handle.id)["tell-customer-review-decision"]
    assert (decision["actor"], decision["outcome"], decision["reason"]) == ("carol", "approved", "name Dana")
    assert decision["details"]["text"] == "replaced" and decision["details"]["sent_text"] == REPLACEMENT
    assert len(told(sandbox, handle, "customer")) == 1


async def test_unreviewed_draft_is_never_sent_escalates_and_closes_unsent_with_a_page(
    stanch: Running, incidents: Incidents
) -> None:
    sandbox = stanch.settings.platform_url
    agent_id = new_agent(sandbox)
    handle = await emergency_stop(incidents, agent_id)
    await until_state(handle, "awaiting_approval")

    await handle.signal("approve", ApprovalAnswer(approver="alice", action="rollback"))
    await until(lambda: agent(sandbox, agent_id)["version"] == "v2", "the rollback at the sandbox")
    assert (await brief_of(handle)).pending_reviews != []
    # Nobody reviews the draft: 30 minutes to the team lead, 30 more and the review closes unsent.
    result = await handle.result()

    assert result.final_state == "rolled_back"
    assert told(sandbox, handle, "customer") == []
    pages = told(sandbox, handle, "team-lead")
    assert [(page["recipient"], page["title"].split(":")[0]) for page in pages] == [
        ("lead", "Review the customer message"),
        ("lead", "Customer message not sent"),
    ]
    assert CUSTOMER_MESSAGE in pages[0]["text"] and "not sent" in pages[1]["text"]
    assert steps(stanch, handle) == [
        *OPENING,
        "gate1-decision",
        "rollback",
        "tell-customer-review-escalate-1",
        "tell-customer-review-unanswered",
        "tell-customer-review-unsent",
        "closed",
    ]
    assert rows(stanch.settings, handle.id)["tell-customer-review-unanswered"]["outcome"] == "not sent"
    # No repeat pages: an unsent message leaves nothing unsafe in force.
    history = await handle.fetch_history()
    timers = [str(e) for e in history.events if e.HasField("timer_started_event_attributes")]
    review_timers = [timer for timer in timers if "nobody reviews the customer message" in timer]
    assert len(review_timers) == 2  # its two levels, then it closed


async def test_rejected_draft_is_not_sent_and_a_late_answer_is_refused(
    stanch: Running, incidents: Incidents
) -> None:
    sandbox = stanch.settings.platform_url
    agent_id = new_agent(sandbox)
    handle = await emergency_stop(incidents, agent_id)
    await until_state(handle, "awaiting_approval")

    await handle.signal(
        "reject", ApprovalAnswer(approver="bob", action=SEND_CUSTOMER_MESSAGE, comment="we call acme instead")
    )
    await until(lambda: "tell-customer-review-decision" in steps(stanch, handle), "the review's decision")
    # The review is closed; an answer for it now is refused and audited, and leaves the rollback gate alone.
    await handle.signal("approve", ApprovalAnswer(approver="bob", action=SEND_CUSTOMER_MESSAGE))
    await until(lambda: "customer-review-refused-1" in steps(stanch, handle), "the refused answer")
    brief = await brief_of(handle)
    assert (brief.state, brief.pending_reviews) == ("awaiting_approval", [])

    await handle.signal("reject", ApprovalAnswer(approver="alice", action="rollback"))
    result = await handle.result()

    assert result.final_state == "contained"
    assert told(sandbox, handle, "customer") == []
    audit = rows(stanch.settings, handle.id)
    decision = audit["tell-customer-review-decision"]
    assert (decision["actor"], decision["outcome"], decision["reason"]) == (
        "bob",
        "rejected",
        "we call acme instead",
    )
    assert audit["customer-review-refused-1"]["reason"] == "no customer message awaits review"
    assert "tell-customer" not in audit


async def test_number_banned_tells_the_customer_the_new_number_once_reviewed(
    stanch: Running, incidents: Incidents
) -> None:
    sandbox = stanch.settings.platform_url
    channel = f"wa-review-{uuid.uuid4().hex[:8]}"
    (await asyncio.to_thread(_put_channel, sandbox, channel)).raise_for_status()
    handle = await incidents.number_banned(channel, incident_policy=reviewed(incidents))
    await until_state(handle, "awaiting_verdict")
    await handle.signal("verdict", AppealVerdict(by="alice", outcome="final"))
    await until_state(handle, "awaiting_approval")
    await handle.signal("approve", ApprovalAnswer(approver="bob", action="provision-number"))

    # The runbook provisions the number, analyses the ban and only then waits for the message's review.
    await until(lambda: "analysis" in steps(stanch, handle), "the analysis after the provisioning")
    brief = await brief_of(handle)
    assert brief.state == "awaiting_approval" and len(brief.pending_reviews) == 1
    assert told(sandbox, handle, "customer") == []
    await handle.signal("approve", ApprovalAnswer(approver="alice", action=SEND_CUSTOMER_MESSAGE))
    result = await handle.result()

    assert result.final_state == "number_replaced"
    [message] = told(sandbox, handle, "customer")
    number = _channel(sandbox, channel)["number"]
    assert message["recipient"] == "acme" and number in message["text"]
    assert steps(stanch, handle)[-6:] == [
        "provision-number",
        "tell-customer-number-review-requested",
        "analysis",
        "tell-customer-number-review-decision",
        "tell-customer-number",
        "closed",
    ]


async def test_a_pending_review_is_cancelled_cleanly_and_nothing_is_sent(
    stanch: Running, incidents: Incidents
) -> None:
    """`cancel_pending`, as a `resolve` calls it (the gate probe stands in for a runbook)."""
    sandbox = stanch.settings.platform_url
    handle = await incidents.open(
        "gate_probe",
        target={"customer_message": "Queues are slow; we are on it.", "linger": "yes"},
        incident_policy=reviewed(incidents),
        result_type=dict,
    )
    await until_state(handle, "awaiting_approval")
    await handle.signal("approve", ApprovalAnswer(approver="alice", action="purge"))
    await until_state(handle, "decided")
    assert len((await brief_of(handle)).pending_reviews) == 1

    await handle.signal("resolve", Resolution(by="alice", note="fixed upstream"))
    result = await handle.result()

    assert result["final_state"] == "done"
    assert told(sandbox, handle, "customer") == []
    cancelled = rows(stanch.settings, handle.id)["tell-customer-review-cancelled"]
    assert (cancelled["actor"], cancelled["outcome"], cancelled["reason"]) == (
        "alice",
        "not sent",
        "fixed upstream",
    )
    assert steps(stanch, handle)[-2:] == ["tell-customer-review-cancelled", "closed"]


# ---- the policy key -------------------------------------------------------------------------------------


def test_policy_key_is_validated_and_old_inputs_decode_as_send(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="customer_messages"):
        load_policy(write_policy(tmp_path, 'customer_messages = "sometimes"\n'))
    assert (
        load_policy(write_policy(tmp_path, 'customer_messages = "review"\n'))
        .incident_policy()
        .customer_messages
        == "review"
    )
    # An input recorded before the key existed has no `customer_messages`: it decodes, and sends at once
    # (tests/test_replay.py replays those histories).
    assert IncidentPolicy.model_validate({"roles": {"oncall": ["alice"]}}).customer_messages == "send"


def test_shipped_policy_sends_customer_messages_at_once() -> None:
    policy = load_policy(REPO_ROOT / "config" / "stanch.toml")
    assert policy.incident_policy().customer_messages == "send"


# ---- the channel of the number_banned test --------------------------------------------------------------


def _put_channel(sandbox: str, name: str) -> httpx.Response:
    clean = {"template_sends_24h": 100, "spam_reports_24h": 0, "blocks_24h": 0, "rejected_template_sends": {}}
    return http_client.put(
        f"{sandbox}/chat/channels/{name}",
        json={"number": "+5511955550000", "number_status": "banned", "quality_rating": "low", "sends": clean},
    )


def _channel(sandbox: str, name: str) -> dict[str, Any]:
    return dict(http_client.get(f"{sandbox}/chat/channels/{name}").json())


def test_brief_lists_pending_reviews_escaped_and_only_when_there_are_some() -> None:
    now = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
    brief = Brief(
        incident_id="incident-x",
        runbook="agent_emergency_stop",
        severity="P1",
        service="support",
        summary="s",
        started_at=now,
        last_update_at=now,
        state="awaiting_approval",
    )
    assert "awaiting review" not in brief.as_markdown() and "awaiting review" not in brief.as_text()
    brief.pending_reviews = ["'Assistant paused' to acme: approve or reject. Draft: \"**free** <img>\""]
    assert "**Customer messages awaiting review:**" in brief.as_markdown()
    assert "\\*\\*free\\*\\*" in brief.as_markdown()  # the draft's markup shows as typed
    assert "  - 'Assistant paused' to acme: approve or reject. Draft: \"**free** <img>\"" in brief.as_text()
