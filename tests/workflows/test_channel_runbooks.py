"""The chat-channel runbooks (channel downtime, number banned, template rejected) on the time-skipping
server, with real effects: the sandbox's `/chat/channels/{name}` over HTTP and the audit log in Postgres.
Every test works on its own channel (and its own guardrail subsystem), so none sees another's state."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from temporalio.client import WorkflowHandle

from activities.guardrail import GuardrailActivities
from schemas.approvals import ApprovalAnswer
from schemas.briefs import Brief
from schemas.channel import AppealVerdict, SendReport
from schemas.guardrail import ActionCheck, GuardrailLimits, GuardrailRequest, Risk, Ruling
from schemas.incidents import IncidentResult
from tests.helpers import (
    SHIPPED_LADDER_REPEATS,
    Incidents,
    Running,
    applied,
    audit_rows,
    chat_messages,
    fault,
    http_client,
    repeat_pages,
    until_state,
)
from workflows.channel_downtime import PROVIDER_POLLS
from workflows.number_banned import analysis
from workflows.template_rejected import MAX_SUBMISSIONS, edited

PROMO_BODY = "Seu pedido {{1}} foi confirmado! Aproveite 20% de desconto na próxima compra!"
BACKUP_BODY = "Oi, tenho uma atualização sobre seu pedido, pode me responder?"


# ---- helpers ----------------------------------------------------------------------------------------


def new_channel(sandbox_url: str, **spec: Any) -> str:
    name = f"wa-{uuid.uuid4().hex[:8]}"
    http_client.put(f"{sandbox_url}/chat/channels/{name}", json=spec).raise_for_status()
    return name


def channel_state(sandbox_url: str, name: str) -> dict[str, Any]:
    response = http_client.get(f"{sandbox_url}/chat/channels/{name}")
    response.raise_for_status()
    return dict(response.json())


def channel_calls(sandbox_url: str, name: str) -> list[dict[str, Any]]:
    return list(
        http_client.get(f"{sandbox_url}/calls", params={"path_prefix": f"/chat/channels/{name}/"}).json()
    )


async def open_incident(
    incidents: Incidents, runbook: str, alertname: str, target: dict[str, str]
) -> WorkflowHandle[Any, IncidentResult]:
    return await incidents.open(
        runbook,
        alertname=alertname,
        target=target,
        annotations={"summary": f"{alertname} on {target['channel']}"},
        service="whatsapp",
    )


def steps(stanch: Running, handle: WorkflowHandle[Any, Any]) -> list[str]:
    return [row["step_key"] for row in audit_rows(stanch.settings, handle.id)]


def row(stanch: Running, handle: WorkflowHandle[Any, Any], step: str) -> dict[str, Any]:
    return next(r for r in audit_rows(stanch.settings, handle.id) if r["step_key"] == step)


# ---- channel downtime ---------------------------------------------------------------------------------


async def downtime(
    stanch: Running, incidents: Incidents, **spec: Any
) -> tuple[str, str, WorkflowHandle[Any, Any]]:
    sandbox = stanch.settings.platform_url
    channel = new_channel(sandbox, **spec)
    subsystem = f"runtime-{uuid.uuid4().hex[:8]}"
    target = {"channel": channel, "runtime": "chat-runtime", "subsystem": subsystem, "customer": "acme"}
    handle = await open_incident(incidents, "channel_downtime", "WhatsAppChannelDown", target)
    return channel, subsystem, handle


async def test_server_errors_restart_the_runtime_after_parallel_diagnosis(
    stanch: Running, incidents: Incidents
) -> None:
    sandbox = stanch.settings.platform_url
    channel, _, handle = await downtime(stanch, incidents, runtime_5xx_last_5m=40)

    result = await handle.result()

    assert result.final_state == "restored"
    state = channel_state(sandbox, channel)
    assert (state["runtime_restarts"], state["runtime_5xx_last_5m"]) == (1, 0)
    assert applied(sandbox, f"/chat/channels/{channel}/runtime/restart") == 1
    assert steps(stanch, handle) == ["diagnosis", "guardrail-restart-runtime", "restart-runtime", "closed"]
    assert row(stanch, handle, "diagnosis")["outcome"] == "runtime_errors"
    assert row(stanch, handle, "guardrail-restart-runtime")["outcome"] == Ruling.allow.value
    assert row(stanch, handle, "restart-runtime")["actor"] == "stanch"
    brief = await handle.query("brief", result_type=Brief)
    assert "Diagnosis:" in brief.summary and "40 answered with server errors" in brief.summary
    assert any("Restart chat-runtime" in action for action in brief.automatic_actions)

    # The three checks were scheduled together, in one workflow task, before any of them had finished.
    history = await handle.fetch_history()
    kinds = [
        event.activity_task_scheduled_event_attributes.activity_type.name
        if event.HasField("activity_task_scheduled_event_attributes")
        else "completed"
        if event.HasField("activity_task_completed_event_attributes")
        else None
        for event in history.events
    ]
    first = [kind for kind in kinds if kind is not None][:3]
    assert sorted(first) == ["channel_account_balance", "channel_token_expiry", "channel_webhook_events"]


async def test_past_the_hourly_restart_limit_a_human_approves_the_restart(
    stanch: Running, incidents: Incidents
) -> None:
    sandbox = stanch.settings.platform_url
    channel = new_channel(sandbox, runtime_5xx_last_5m=12)
    subsystem = f"runtime-{uuid.uuid4().hex[:8]}"
    guardrail = GuardrailActivities(stanch.client, stanch.task_queue)
    for n in range(3):  # three automatic restarts already this hour
        check = ActionCheck(
            requested_by="earlier-incident",
            idempotency_key=f"earlier-incident/run/{n}",
            action="restart chat-runtime",
            kind="restart",
            risk=Risk.high,
            reason="server errors",
        )
        verdict = await guardrail.ask(
            GuardrailRequest(subsystem=subsystem, check=check, limits=GuardrailLimits())
        )
        assert verdict.allowed
    target = {"channel": channel, "runtime": "chat-runtime", "subsystem": subsystem}
    handle = await open_incident(incidents, "channel_downtime", "WhatsAppChannelDown", target)

    brief = await until_state(handle, "awaiting_approval")
    assert "restart-runtime" in (brief.awaiting or "")
    assert channel_state(sandbox, channel)["runtime_restarts"] == 0
    await handle.signal("approve", ApprovalAnswer(approver="alice", action="restart-runtime"))
    result = await handle.result()

    assert result.final_state == "restored"
    assert channel_state(sandbox, channel)["runtime_restarts"] == 1
    assert steps(stanch, handle) == [
        "diagnosis",
        "guardrail-restart-runtime",
        "gate1-requested",
        "gate1-decision",
        "restart-runtime",
        "closed",
    ]
    assert row(stanch, handle, "guardrail-restart-runtime")["outcome"] == Ruling.needs_approval.value
    assert row(stanch, handle, "restart-runtime")["actor"] == "alice"


async def test_a_refused_restart_is_audited_as_failed(stanch: Running, incidents: Incidents) -> None:
    sandbox = stanch.settings.platform_url
    channel = new_channel(sandbox, runtime_5xx_last_5m=40)
    fault(sandbox, f"/chat/channels/{channel}/runtime/restart")
    subsystem = f"runtime-{uuid.uuid4().hex[:8]}"
    handle = await open_incident(
        incidents,
        "channel_downtime",
        "WhatsAppChannelDown",
        {"channel": channel, "subsystem": subsystem},
    )

    result = await handle.result()

    assert result.final_state == "action_failed"
    assert channel_state(sandbox, channel)["runtime_restarts"] == 0
    restart = row(stanch, handle, "restart-runtime")
    assert restart["outcome"] == "failed" and "409" in restart["reason"]


async def test_expired_token_is_rotated_once_approved(stanch: Running, incidents: Incidents) -> None:
    sandbox = stanch.settings.platform_url
    channel, _, handle = await downtime(stanch, incidents, token_expires_in_s=0)

    brief = await until_state(handle, "awaiting_approval")
    assert "token v1 expired" in brief.summary
    await handle.signal("approve", ApprovalAnswer(approver="bob", action="rotate-token", comment="new token"))
    result = await handle.result()

    assert result.final_state == "restored"
    state = channel_state(sandbox, channel)
    assert (state["token_version"], state["token_rotations"]) == (2, 1)
    assert state["token_expires_in_s"] > 0
    assert applied(sandbox, f"/chat/channels/{channel}/token/rotate") == 1
    assert steps(stanch, handle) == [
        "diagnosis",
        "gate1-requested",
        "gate1-decision",
        "rotate-token",
        "closed",
    ]
    assert row(stanch, handle, "rotate-token")["actor"] == "bob"


async def test_token_rotation_rejected_leaves_the_token(stanch: Running, incidents: Incidents) -> None:
    sandbox = stanch.settings.platform_url
    channel, _, handle = await downtime(stanch, incidents, token_expires_in_s=0)
    await until_state(handle, "awaiting_approval")

    await handle.signal(
        "reject", ApprovalAnswer(approver="carol", action="rotate-token", comment="vault down")
    )
    result = await handle.result()

    assert result.final_state == "declined"
    assert channel_state(sandbox, channel)["token_version"] == 1
    assert applied(sandbox, f"/chat/channels/{channel}/token/rotate") == 0
    assert steps(stanch, handle) == ["diagnosis", "gate1-requested", "gate1-decision", "closed"]


@pytest.mark.slow  # nobody answers: the whole ladder to its safe default, dozens of pages (3-14 s)
async def test_token_rotation_unanswered_escalates_and_leaves_the_token(
    stanch: Running, incidents: Incidents
) -> None:
    sandbox = stanch.settings.platform_url
    channel, _, handle = await downtime(stanch, incidents, token_expires_in_s=0)
    await until_state(handle, "awaiting_approval")

    result = await handle.result()  # nobody answers on-call, nor the team lead, for 24 hours

    assert result.final_state == "closed_unattended"
    assert result.approval is not None and result.approval.timed_out
    assert channel_state(sandbox, channel)["token_version"] == 1
    assert steps(stanch, handle) == [
        "diagnosis",
        "gate1-requested",
        "gate1-escalate-1",
        *repeat_pages(),
        "gate1-safe-default",
        "gate1-give-up",
        "closed",
    ]
    assert [m["channel"] for m in chat_messages(sandbox, handle.id)] == ["team-lead"] * (
        1 + SHIPPED_LADDER_REPEATS + 1
    )


async def test_spent_balance_only_asks_on_call_to_top_up(stanch: Running, incidents: Incidents) -> None:
    sandbox = stanch.settings.platform_url
    channel, _, handle = await downtime(stanch, incidents, balance=0.0, payment_failed=True)

    result = await handle.result()

    assert result.final_state == "awaiting_top_up"
    assert channel_calls(sandbox, channel) == []  # nothing automatic touched the channel
    assert steps(stanch, handle) == ["diagnosis", "top-up", "closed"]
    [message] = chat_messages(sandbox, handle.id)
    assert message["channel"] == "on-call" and "card on file was refused" in message["text"]


async def test_provider_outage_is_watched_and_the_customer_told_when_it_is_back(
    stanch: Running, incidents: Incidents
) -> None:
    sandbox = stanch.settings.platform_url
    # The diagnosis reads "down" (1st read), the first poll too (2nd), the second poll reads "up".
    channel, _, handle = await downtime(
        stanch, incidents, webhook_events_last_5m=0, provider_status="down", provider_recovers_after_reads=3
    )

    result = await handle.result()

    assert result.final_state == "restored"
    assert channel_state(sandbox, channel)["provider_reads"] == 3
    assert steps(stanch, handle) == [
        "diagnosis",
        "provider-down",
        "provider-back",
        "tell-customer-back",
        "closed",
    ]
    assert row(stanch, handle, "provider-back")["reason"] == "up again at check 2"
    messages = chat_messages(sandbox, handle.id)
    assert [(m["channel"], m["recipient"]) for m in messages] == [("on-call", None), ("customer", "acme")]
    assert messages[1]["title"] == "WhatsApp is back"


async def test_provider_down_for_an_hour_escalates(stanch: Running, incidents: Incidents) -> None:
    sandbox = stanch.settings.platform_url
    channel, _, handle = await downtime(stanch, incidents, webhook_events_last_5m=0, provider_status="down")

    result = await handle.result()

    assert result.final_state == "escalated"
    assert channel_state(sandbox, channel)["provider_reads"] == 1 + PROVIDER_POLLS
    assert steps(stanch, handle)[-3:] == ["provider-still-down", "provider-escalate", "closed"]
    assert "customer" not in [m["channel"] for m in chat_messages(sandbox, handle.id)]


async def test_healthy_channel_goes_to_a_person(stanch: Running, incidents: Incidents) -> None:
    sandbox = stanch.settings.platform_url
    channel, _, handle = await downtime(stanch, incidents)

    result = await handle.result()

    assert result.final_state == "undiagnosed"
    assert channel_calls(sandbox, channel) == []
    assert steps(stanch, handle) == ["diagnosis", "nothing-found", "closed"]
    assert row(stanch, handle, "diagnosis")["outcome"] == "nothing found"


# ---- number banned ------------------------------------------------------------------------------------

BANNED = {
    "number": "+5511955550000",
    "number_status": "banned",
    "quality_rating": "low",
    "sends": {
        "template_sends_24h": 10000,
        "spam_reports_24h": 120,
        "blocks_24h": 400,
        "rejected_template_sends": {"promo_blackfriday": 900},
    },
}


async def banned(stanch: Running, incidents: Incidents, **spec: Any) -> tuple[str, WorkflowHandle[Any, Any]]:
    channel = new_channel(stanch.settings.platform_url, **{**BANNED, **spec})
    target = {"channel": channel, "customer": "acme"}
    handle = await open_incident(incidents, "number_banned", "WhatsAppNumberBanned", target)
    await until_state(handle, "awaiting_verdict")
    return channel, handle


OPENING = ["stop-template-sends", "open-appeal", "tell-oncall"]


async def test_final_ban_provisions_a_new_number_once_approved(stanch: Running, incidents: Incidents) -> None:
    sandbox = stanch.settings.platform_url
    channel, handle = await banned(stanch, incidents)
    state = channel_state(sandbox, channel)
    assert state["template_sends_enabled"] is False
    [appeal] = state["appeals"]
    assert appeal["number"] == "+5511955550000"

    await handle.signal("verdict", AppealVerdict(by="alice", outcome="final", note="case 42: ban upheld"))
    await until_state(handle, "awaiting_approval")
    assert len(channel_state(sandbox, channel)["numbers"]) == 1  # nothing provisioned before the approval
    await handle.signal("approve", ApprovalAnswer(approver="bob", action="provision-number"))
    result = await handle.result()

    assert result.final_state == "number_replaced"
    state = channel_state(sandbox, channel)
    assert state["number"] != "+5511955550000" and state["number_status"] == "active"
    assert [n["status"] for n in state["numbers"]] == ["retired", "active"]
    assert state["template_sends_enabled"] is False  # sends stay off until a person reviews the analysis
    assert applied(sandbox, f"/chat/channels/{channel}/numbers") == 1
    assert steps(stanch, handle) == [
        *OPENING,
        "verdict",
        "gate1-requested",
        "gate1-decision",
        "provision-number",
        "tell-customer-number",
        "analysis",
        "closed",
    ]
    assert (row(stanch, handle, "verdict")["actor"], row(stanch, handle, "verdict")["outcome"]) == (
        "alice",
        "final",
    )
    assert row(stanch, handle, "provision-number")["actor"] == "bob"
    analysed = row(stanch, handle, "analysis")
    assert (
        analysed["outcome"] == "findings" and "promo_blackfriday forced out 900 times" in analysed["reason"]
    )
    brief = await handle.query("brief", result_type=Brief)
    assert "Analysis: spam: 120 reports" in brief.summary
    customer = [m for m in chat_messages(sandbox, handle.id) if m["channel"] == "customer"]
    assert len(customer) == 1 and state["number"] in customer[0]["text"]


async def test_reinstated_number_keeps_sends_stopped_and_provisions_nothing(
    stanch: Running, incidents: Incidents
) -> None:
    sandbox = stanch.settings.platform_url
    clean = {"template_sends_24h": 500, "spam_reports_24h": 0, "blocks_24h": 1, "rejected_template_sends": {}}
    channel, handle = await banned(stanch, incidents, sends=clean)

    await handle.signal("verdict", AppealVerdict(by="alice", outcome="reinstated"))
    result = await handle.result()

    assert result.final_state == "reinstated"
    state = channel_state(sandbox, channel)
    assert (state["number"], len(state["numbers"]), state["template_sends_enabled"]) == (
        "+5511955550000",
        1,
        False,
    )
    assert steps(stanch, handle) == [*OPENING, "verdict", "analysis", "closed"]
    assert row(stanch, handle, "analysis")["outcome"] == "clean"
    brief = await handle.query("brief", result_type=Brief)
    assert "may be turned back on" in brief.recommendation


async def test_rejected_migration_keeps_the_banned_number(stanch: Running, incidents: Incidents) -> None:
    sandbox = stanch.settings.platform_url
    channel, handle = await banned(stanch, incidents)
    await handle.signal("verdict", AppealVerdict(by="alice", outcome="final"))
    await until_state(handle, "awaiting_approval")

    await handle.signal("reject", ApprovalAnswer(approver="carol", action="provision-number"))
    result = await handle.result()

    assert result.final_state == "contained"
    assert applied(sandbox, f"/chat/channels/{channel}/numbers") == 0
    assert len(channel_state(sandbox, channel)["numbers"]) == 1
    assert steps(stanch, handle) == [
        *OPENING,
        "verdict",
        "gate1-requested",
        "gate1-decision",
        "analysis",
        "closed",
    ]


async def test_no_verdict_for_three_days_escalates_with_sends_stopped(
    stanch: Running, incidents: Incidents
) -> None:
    sandbox = stanch.settings.platform_url
    channel, handle = await banned(stanch, incidents)

    result = await handle.result()

    assert result.final_state == "escalated"
    state = channel_state(sandbox, channel)
    assert state["template_sends_enabled"] is False and len(state["numbers"]) == 1
    assert steps(stanch, handle) == [
        *OPENING,
        "response-target-missed",  # nobody acknowledged within the P1 target: the team lead is told
        "verdict-reminder-1",
        "verdict-reminder-2",
        "verdict-reminder-3",
        "verdict-timeout",
        "analysis",
        "closed",
    ]


async def test_sends_that_cannot_be_stopped_page_on_call_and_appeal_nothing(
    stanch: Running, incidents: Incidents
) -> None:
    sandbox = stanch.settings.platform_url
    channel = new_channel(sandbox, **BANNED)
    fault(sandbox, f"/chat/channels/{channel}/template-sends")
    handle = await open_incident(incidents, "number_banned", "WhatsAppNumberBanned", {"channel": channel})

    result = await handle.result()

    assert result.final_state == "action_failed"
    state = channel_state(sandbox, channel)
    assert state["template_sends_enabled"] is True and state["appeals"] == []
    assert steps(stanch, handle) == ["stop-template-sends", "stop-failed", "closed"]
    assert row(stanch, handle, "stop-template-sends")["outcome"] == "failed"


def test_analysis_names_spam_and_forced_rejected_templates() -> None:
    report = SendReport(
        channel="c",
        number="n",
        quality_rating="low",
        template_sends_24h=1000,
        spam_reports_24h=5,
        blocks_24h=9,
        rejected_template_sends={"b": 3, "a": 0},
    )
    assert analysis(report) == [
        "spam: 5 reports and 9 blocks for 1000 template sends (5.0 per thousand)",
        "rejected template b forced out 3 times",
    ]
    assert analysis(report.model_copy(update={"spam_reports_24h": 4, "rejected_template_sends": {}})) == []


# ---- template rejected --------------------------------------------------------------------------------


def templates(reviews: list[str], backup_status: str = "approved") -> dict[str, Any]:
    return {
        "templates": {
            "order_confirmation": {
                "body": PROMO_BODY,
                "category": "MARKETING",
                "status": "rejected",
                "rejection_reason": "promotional content in a utility message",
                "reviews": reviews,
            },
            "generic_update": {"body": BACKUP_BODY, "status": backup_status},
        }
    }


async def rejected(
    stanch: Running, incidents: Incidents, **spec: Any
) -> tuple[str, WorkflowHandle[Any, Any]]:
    channel = new_channel(stanch.settings.platform_url, **spec)
    target = {"channel": channel, "template": "order_confirmation"}
    handle = await open_incident(incidents, "template_rejected", "WhatsAppTemplateRejected", target)
    return channel, handle


async def test_backup_at_once_then_edited_template_restored_when_approved(
    stanch: Running, incidents: Incidents
) -> None:
    sandbox = stanch.settings.platform_url
    channel, handle = await rejected(stanch, incidents, **templates(["rejected", "approved"]))

    brief = await until_state(handle, "awaiting_review")
    assert channel_state(sandbox, channel)["template_in_use"] == {"order_confirmation": "generic_update"}
    assert any("generic_update in place of" in action for action in brief.automatic_actions)
    result = await handle.result()

    assert result.final_state == "restored"
    state = channel_state(sandbox, channel)
    assert state["template_in_use"] == {}
    template = state["templates"]["order_confirmation"]
    assert template["status"] == "approved"
    assert [s["category"] for s in template["submissions"]] == ["UTILITY", "UTILITY"]
    assert template["submissions"][0]["body"] == "Seu pedido {{1}} foi confirmado."
    uses = [c["body"]["use"] for c in channel_calls(sandbox, channel) if c["path"].endswith("/use")]
    assert uses == ["generic_update", "order_confirmation"]
    assert steps(stanch, handle) == [
        "use-backup",
        "tell-oncall",
        "resubmit-1",
        "review-1",
        "resubmit-2",
        "review-2",
        "restore-original",
        "tell-oncall-restored",
        "closed",
    ]
    assert [row(stanch, handle, f"review-{n}")["outcome"] for n in (1, 2)] == ["rejected", "approved"]


async def test_still_rejected_after_three_submissions_escalates_with_backup_in_use(
    stanch: Running, incidents: Incidents
) -> None:
    sandbox = stanch.settings.platform_url
    channel, handle = await rejected(stanch, incidents, **templates(["rejected"] * MAX_SUBMISSIONS))

    result = await handle.result()

    assert result.final_state == "escalated"
    state = channel_state(sandbox, channel)
    assert state["template_in_use"] == {"order_confirmation": "generic_update"}
    assert len(state["templates"]["order_confirmation"]["submissions"]) == MAX_SUBMISSIONS
    assert applied(sandbox, f"/chat/channels/{channel}/templates/order_confirmation/submissions") == 3
    assert steps(stanch, handle)[-3:] == [f"review-{MAX_SUBMISSIONS}", "escalate", "closed"]
    # The P2 response target (4 h) ran out first while the reviews went on, then the escalation itself.
    missed, escalation = [m for m in chat_messages(sandbox, handle.id) if m["channel"] == "team-lead"]
    assert missed["title"].startswith("Response target missed:")
    assert (missed["recipient"], escalation["recipient"]) == ("lead", "lead")


async def test_backup_that_cannot_be_sent_fails_without_resubmitting(
    stanch: Running, incidents: Incidents
) -> None:
    sandbox = stanch.settings.platform_url
    channel, handle = await rejected(stanch, incidents, **templates([], backup_status="rejected"))

    result = await handle.result()

    assert result.final_state == "action_failed"
    state = channel_state(sandbox, channel)
    assert state["template_in_use"] == {} and state["templates"]["order_confirmation"]["submissions"] == []
    assert steps(stanch, handle) == ["use-backup", "backup-failed", "closed"]
    assert "not approved" in row(stanch, handle, "use-backup")["reason"]


def test_edit_drops_promotional_sentences_and_is_stable() -> None:
    assert edited(PROMO_BODY) == "Seu pedido {{1}} foi confirmado."
    assert edited(edited(PROMO_BODY)) == edited(PROMO_BODY)
    assert edited("FREE coupon inside!!") == "inside."
