"""Response targets (seed 001) on the time-skipping server: every incident must see a human respond —
`acknowledge`, a decision or `resolve` — within its severity's target (shipped policy: P0 5 min). A missed
target moves the incident one level up the escalation ladder the gates climb (ONE level per incident,
whichever timer fires first) and pages that level saying so, whatever the runbook is waiting for; the
gate's own clock then goes on from that level. Real effects: the sandbox, the audit log in Postgres."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from temporalio.client import WorkflowHandle

from activities.guardrail import GuardrailActivities
from schemas.approvals import ApprovalAnswer
from schemas.channel import AppealVerdict
from schemas.guardrail import ActionCheck, GuardrailLimits, GuardrailRequest, Risk
from schemas.severity import Severity
from tests.helpers import (
    Incidents,
    Running,
    agent,
    applied,
    audit_rows,
    chat_messages,
    cli,
    deploys_of,
    get,
    level_timers,
    new_agent,
    new_service,
    put,
    until_state,
)

P0 = Severity.P0
MISSED = "response-target-missed"


def steps(stanch: Running, handle: WorkflowHandle[Any, Any]) -> list[str]:
    return [row["step_key"] for row in audit_rows(stanch.settings, handle.id)]


def pages_to_levels(stanch: Running, handle: WorkflowHandle[Any, Any]) -> list[dict[str, Any]]:
    """The messages this incident sent to an escalation level (not on-call, customer, stakeholders)."""
    return [m for m in chat_messages(stanch.settings.platform_url, handle.id) if m["channel"] == "team-lead"]


def assert_missed_page(page: dict[str, Any], *, waiting_for: str = "") -> None:
    assert page["recipient"] == "lead"  # the team-lead level pages the lead role (carol and dave)
    assert page["title"].startswith("Response target missed:")
    assert "within its response target of 5 minutes" in page["text"]
    assert waiting_for in page["text"]


async def open_agent_stop(incidents: Incidents, agent_id: str) -> WorkflowHandle[Any, Any]:
    return await incidents.open(
        "agent_emergency_stop",
        alertname="AgentHallucination",
        target={"agent_id": agent_id, "customer": "acme"},
        labels={"agent": agent_id, "customer": "acme"},
        annotations={"summary": f"{agent_id} insults customers"},
        severity=P0,
        service="support",
    )


AGENT_STOP_OPENING = ["pause", "tell-customer", "tell-oncall", "gate1-requested"]


async def test_agent_stop_missing_its_p0_target_pages_the_next_level_at_5_minutes_then_the_gate_goes_on_from_there(
    stanch: Running, incidents: Incidents
) -> None:
    sandbox = stanch.settings.platform_url
    agent_id = new_agent(sandbox)
    handle = await open_agent_stop(incidents, agent_id)
    await until_state(handle, "awaiting_approval")

    # 5 minutes, nobody responded: one level up (the team lead), long before the gate's own 30 minutes.
    await stanch.env.sleep(timedelta(minutes=6))
    brief = await until_state(handle, "escalated")
    assert brief.awaiting is not None and "escalated to team-lead" in brief.awaiting
    [page] = pages_to_levels(stanch, handle)
    assert_missed_page(page, waiting_for="approval of 'rollback'")
    assert steps(stanch, handle) == [*AGENT_STOP_OPENING, MISSED]
    assert (agent(sandbox, agent_id)["state"], applied(sandbox, f"/agents/{agent_id}/rollback")) == (
        "paused",
        0,
    )

    # The gate's clock goes on from that level: its 30 minutes from the move, then past the last level.
    await stanch.env.sleep(timedelta(minutes=20))  # 26 min: still at the team lead's level
    assert (await until_state(handle, "escalated")).state == "escalated"
    await stanch.env.sleep(timedelta(minutes=10))  # 36 min: unattended, nobody paged twice for one level
    await until_state(handle, "unattended")
    assert len(pages_to_levels(stanch, handle)) == 1
    assert steps(stanch, handle) == [*AGENT_STOP_OPENING, MISSED]
    await stanch.env.sleep(timedelta(minutes=30))  # 66 min: the last level again, as unattended does
    await until_state(handle, "unattended")
    assert steps(stanch, handle) == [*AGENT_STOP_OPENING, MISSED, "gate1-repeat-1"]

    await handle.signal("approve", ApprovalAnswer(approver="carol", action="rollback"))
    result = await handle.result()
    assert result.final_state == "rolled_back" and result.approval is not None and result.approval.escalated
    assert agent(sandbox, agent_id)["version"] == "v2"
    history = await handle.fetch_history()
    # The first level was cut short by the target; the team lead's level waited its full 30 minutes.
    assert level_timers(history)[:3] == [timedelta(minutes=30)] * 3
    missed = next(row for row in audit_rows(stanch.settings, handle.id) if row["step_key"] == MISSED)
    assert (missed["actor"], missed["outcome"]) == ("stanch", "done")


async def test_an_acknowledgement_within_the_target_stops_it(
    stanch: Running, incidents: Incidents, cli_env: dict[str, str]
) -> None:
    sandbox = stanch.settings.platform_url
    agent_id = new_agent(sandbox)
    handle = await open_agent_stop(incidents, agent_id)
    await until_state(handle, "awaiting_approval")
    await stanch.env.sleep(timedelta(minutes=2))
    acknowledged = await cli(["acknowledge", handle.id, "--as", "alice"], cli_env)
    assert acknowledged.exit_code == 0, acknowledged.output

    await stanch.env.sleep(timedelta(minutes=20))  # far past 5 minutes, within alice's 30-minute hold
    assert (await until_state(handle, "awaiting_approval")).state == "awaiting_approval"
    assert pages_to_levels(stanch, handle) == []
    assert steps(stanch, handle) == AGENT_STOP_OPENING

    await handle.signal(
        "reject", ApprovalAnswer(approver="alice", action="rollback", comment="keep it paused")
    )
    result = await handle.result()
    assert result.final_state == "contained"
    assert MISSED not in steps(stanch, handle)
    # The target's watch ended with the acknowledgement: its timer was cancelled, never fired.
    history = await handle.fetch_history()
    assert not any(
        e.HasField("timer_fired_event_attributes")
        and e.timer_fired_event_attributes.started_event_id in _target_timer_ids(history)
        for e in history.events
    )


def _target_timer_ids(history: Any) -> set[int]:
    return {
        e.event_id
        for e in history.events
        if e.HasField("timer_started_event_attributes")
        and e.HasField("user_metadata")
        and b"response target" in e.user_metadata.summary.data
    }


# ---- number_banned: the wait for the provider's verdict, and a gate asked after the move --------------------

BANNED = {
    "number": "+5511955550001",
    "number_status": "banned",
    "quality_rating": "low",
    "sends": {
        "template_sends_24h": 100,
        "spam_reports_24h": 0,
        "blocks_24h": 0,
        "rejected_template_sends": {},
    },
}


async def test_number_banned_verdict_relayed_in_time_meets_the_p0_target(
    stanch: Running, incidents: Incidents
) -> None:
    sandbox = stanch.settings.platform_url
    channel = f"wa-{uuid.uuid4().hex[:8]}"
    put(sandbox, f"/chat/channels/{channel}", BANNED)
    handle = await incidents.number_banned(channel, severity=P0)
    await until_state(handle, "awaiting_verdict")
    await stanch.env.sleep(timedelta(minutes=2))
    await handle.signal("verdict", AppealVerdict(by="alice", outcome="final", note="ban upheld"))
    await until_state(handle, "awaiting_approval")

    # alice answered 2 minutes in: past the 5-minute target nobody is paged and the level has not moved;
    # the new-number question has its own 30-minute window.
    await stanch.env.sleep(timedelta(minutes=6))
    brief = await until_state(handle, "awaiting_approval")
    assert "escalated" not in (brief.awaiting or "")
    assert pages_to_levels(stanch, handle) == []
    assert MISSED not in steps(stanch, handle)
    await handle.signal("reject", ApprovalAnswer(approver="bob", action="provision-number"))
    assert (await handle.result()).final_state == "contained"


async def test_number_banned_waiting_for_the_verdict_misses_its_target_and_a_later_gate_starts_at_that_level(
    stanch: Running, incidents: Incidents
) -> None:
    sandbox = stanch.settings.platform_url
    channel = f"wa-{uuid.uuid4().hex[:8]}"
    put(sandbox, f"/chat/channels/{channel}", BANNED)
    handle = await incidents.number_banned(channel, severity=P0)
    await until_state(handle, "awaiting_verdict")

    await stanch.env.sleep(timedelta(minutes=6))
    brief = await until_state(handle, "awaiting_verdict")  # the runbook still waits for the verdict
    [page] = pages_to_levels(stanch, handle)
    assert_missed_page(page, waiting_for="the provider's verdict")
    assert steps(stanch, handle) == ["stop-template-sends", "open-appeal", "tell-oncall", MISSED]
    assert "response target missed" in " ".join(e.text for e in (await _timeline(handle)))
    assert brief.state == "awaiting_verdict"

    # A final ban asks a question: it starts at the team lead's level, already escalated, and its next
    # step is past the last level — the team lead is not paged a second time for the same level.
    await handle.signal("verdict", AppealVerdict(by="alice", outcome="final", note="ban upheld"))
    brief = await until_state(handle, "escalated")
    assert brief.awaiting is not None and "'provision-number'" in brief.awaiting
    await stanch.env.sleep(timedelta(minutes=31))
    await until_state(handle, "unattended")
    assert len(pages_to_levels(stanch, handle)) == 1
    assert "gate1-escalate-1" not in steps(stanch, handle)
    state = get(sandbox, f"/chat/channels/{channel}")
    assert state["template_sends_enabled"] is False and len(state["numbers"]) == 1

    await handle.signal("reject", ApprovalAnswer(approver="bob", action="provision-number"))
    assert (await handle.result()).final_state == "contained"


async def _timeline(handle: WorkflowHandle[Any, Any]) -> list[Any]:
    from schemas.briefs import Timeline

    return (await handle.query("timeline", result_type=Timeline)).entries


# ---- rollback, gateway restart, channel downtime -----------------------------------------------------------


async def test_rollback_missing_its_p0_target_is_escalated_before_the_gate_would(
    stanch: Running, incidents: Incidents
) -> None:
    sandbox = stanch.settings.platform_url
    service = new_service(sandbox, ["7.0.0", "7.1.0"])
    handle = await incidents.open(
        "rollback",
        alertname="RollbackRequested",
        annotations={"summary": f"roll back {service} (code)"},
        severity=P0,
        service=service,
        target={"service": service, "kind": "code"},
    )
    await until_state(handle, "awaiting_approval")
    await stanch.env.sleep(timedelta(minutes=6))
    await until_state(handle, "escalated")
    [page] = pages_to_levels(stanch, handle)
    assert_missed_page(page, waiting_for="'rollback-deploy'")
    assert steps(stanch, handle)[-1] == MISSED
    assert [d["status"] for d in deploys_of(sandbox, service)][-1] == "live"  # nothing rolled back meanwhile

    await handle.signal("reject", ApprovalAnswer(approver="alice", action="rollback-deploy"))
    result = await handle.result()
    assert result.final_state != "rolled_back"
    assert [d["status"] for d in deploys_of(sandbox, service)][-1] == "live"


HIGH_MEMORY = {
    "memory_mb": 1300,
    "high_watermark_mb": 1536,
    "scheduled_runs": {"digest": "alive"},
    "files": ["sessions.json"],
}


async def test_gateway_restart_awaiting_approval_misses_its_p0_target(
    stanch: Running, incidents: Incidents
) -> None:
    sandbox = stanch.settings.platform_url
    gateway = f"gw-{uuid.uuid4().hex[:8]}"
    put(sandbox, f"/runtimes/{gateway}", HIGH_MEMORY)
    # Three restarts already this hour: the fourth needs a human.
    asker = GuardrailActivities(stanch.client, stanch.task_queue)
    for n in range(3):
        check = ActionCheck(
            requested_by="earlier-incident",
            idempotency_key=f"earlier-{gateway}-{n}",
            action="safe restart",
            kind="restart",
            risk=Risk.high,
            reason="memory high earlier",
        )
        await asker.ask(GuardrailRequest(subsystem=gateway, check=check, limits=GuardrailLimits()))
    handle = await incidents.open(
        "gateway_safe_restart",
        alertname="GatewayMemoryHigh",
        labels={"gateway": gateway},
        annotations={"summary": f"GatewayMemoryHigh on {gateway}"},
        severity=P0,
        service="gateway",
        target={"gateway": gateway, "subsystem": gateway},
    )
    await until_state(handle, "awaiting_approval")
    await stanch.env.sleep(timedelta(minutes=6))
    await until_state(handle, "escalated")
    [page] = pages_to_levels(stanch, handle)
    assert_missed_page(page, waiting_for="'safe-restart'")
    assert get(sandbox, f"/runtimes/{gateway}")["restarts"] == 0

    await handle.signal("reject", ApprovalAnswer(approver="bob", action="safe-restart"))
    assert (await handle.result()).final_state == "left_running"
    assert steps(stanch, handle)[-3:] == [MISSED, "gate1-decision", "closed"]


async def test_channel_downtime_watching_the_provider_misses_its_p0_target_while_it_polls(
    stanch: Running, incidents: Incidents
) -> None:
    sandbox = stanch.settings.platform_url
    channel = f"wa-{uuid.uuid4().hex[:8]}"
    put(sandbox, f"/chat/channels/{channel}", {"webhook_events_last_5m": 0, "provider_status": "down"})
    handle = await incidents.channel_down(channel, severity=P0)
    await until_state(handle, "watching_provider")
    await stanch.env.sleep(timedelta(minutes=6))
    await until_state(handle, "watching_provider")  # its polls go on; the target only pages
    [page] = pages_to_levels(stanch, handle)
    assert_missed_page(page, waiting_for="the provider's status")
    assert steps(stanch, handle) == ["diagnosis", "provider-down", MISSED]
    result = await handle.result()
    assert result.final_state == "escalated"
    assert len(pages_to_levels(stanch, handle)) == 1  # one level up, once
