"""The gateway health runbooks (seed 002) on the time-skipping server, with real effects: the sandbox
platform's gateway runtimes over HTTP, the per-subsystem guardrail workflow and the audit log in Postgres."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle

from activities.guardrail import GuardrailActivities
from schemas.approvals import ApprovalAnswer
from schemas.briefs import Brief
from schemas.guardrail import (
    ActionCheck,
    GuardrailLimits,
    GuardrailRequest,
    Risk,
    Ruling,
    Verdict,
    guardrail_workflow_id,
)
from schemas.incidents import IncidentResult
from schemas.severity import Severity
from tests.helpers import (
    SHIPPED_LADDER_REPEATS,
    Incidents,
    Running,
    applied,
    audit_rows,
    chat_messages,
    http_client,
    level_timers,
    repeat_pages,
    until_state,
)


class Gateways:
    """Fresh gateway runtimes (and guardrail subsystems) per test; guardrails terminated afterwards."""

    def __init__(self, stanch: Running, incidents: Incidents) -> None:
        self.stanch = stanch
        self.incidents = incidents
        self.url = stanch.settings.platform_url
        self.subsystems: list[str] = []

    def new(self, **spec: Any) -> str:
        name = f"gw-{uuid.uuid4().hex[:8]}"
        http_client.put(f"{self.url}/runtimes/{name}", json=spec).raise_for_status()
        self.subsystems.append(name)
        return name

    def runtime(self, name: str) -> dict[str, Any]:
        return http_client.get(f"{self.url}/runtimes/{name}").json()

    def effects(self, name: str) -> list[str]:
        """The effect paths this gateway received, in order, past the `/runtimes/<name>` prefix."""
        prefix = f"/runtimes/{name}"
        calls = http_client.get(f"{self.url}/calls", params={"path_prefix": prefix + "/"}).json()
        return [call["path"][len(prefix) :] for call in calls if not call["replayed"]]

    def reset(self, name: str) -> None:
        http_client.put(f"{self.url}/runtimes/{name}", json={}).raise_for_status()

    def clear_faults(self) -> None:
        http_client.delete(f"{self.url}/faults").raise_for_status()

    def fault(self, path: str, status: int = 409, times: int = 1) -> None:
        http_client.post(
            f"{self.url}/faults", json={"path_prefix": path, "status": status, "times": times}
        ).raise_for_status()

    async def open(
        self,
        runbook: str,
        gateway: str,
        *,
        alertname: str,
        severity: Severity = Severity.P1,
        **target: str,
    ) -> WorkflowHandle[Any, IncidentResult]:
        return await self.incidents.open(
            runbook,
            alertname=alertname,
            labels={"gateway": gateway},
            annotations={"summary": f"{alertname} on {gateway}"},
            severity=severity,
            service="gateway",
            # Each test's gateway is its own guardrail subsystem: limits never leak between tests.
            target={"gateway": gateway, "subsystem": gateway, **target},
        )

    async def spend_restarts(self, subsystem: str, count: int) -> None:
        """Restarts some earlier incident took on this subsystem, counted by its guardrail."""
        asker = GuardrailActivities(self.stanch.client, self.stanch.task_queue)
        for n in range(count):
            check = ActionCheck(
                requested_by="earlier-incident",
                idempotency_key=f"earlier-{subsystem}-{n}",
                action="safe restart",
                kind="restart",
                risk=Risk.high,
                reason="memory high earlier",
            )
            verdict: Verdict = await asker.ask(
                GuardrailRequest(subsystem=subsystem, check=check, limits=GuardrailLimits())
            )
            assert verdict.ruling is Ruling.allow


@pytest.fixture
async def gateways(stanch: Running, incidents: Incidents) -> AsyncIterator[Gateways]:
    made = Gateways(stanch, incidents)
    yield made
    # A fault a failed test did not use up must not trip the next test's effects.
    made.clear_faults()
    for subsystem in made.subsystems:
        try:
            await stanch.client.get_workflow_handle(guardrail_workflow_id(subsystem)).terminate("test over")
        except Exception:  # never started: this test asked no guardrail
            pass


def steps(stanch: Running, handle: WorkflowHandle[Any, Any]) -> list[str]:
    return [row["step_key"] for row in audit_rows(stanch.settings, handle.id)]


async def approvers_sent(handle: WorkflowHandle[Any, Any], activity: str) -> list[str]:
    """The `approved_by` of every `activity` the workflow scheduled, as the history holds its input."""
    history = await handle.fetch_history()
    return [
        json.loads(event.activity_task_scheduled_event_attributes.input.payloads[0].data)["approved_by"]
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        and event.activity_task_scheduled_event_attributes.activity_type.name == activity
    ]


def row(stanch: Running, handle: WorkflowHandle[Any, Any], step: str) -> dict[str, Any]:
    return next(r for r in audit_rows(stanch.settings, handle.id) if r["step_key"] == step)


HIGH_MEMORY = {
    "memory_mb": 1300,
    "high_watermark_mb": 1536,
    "scheduled_runs": {"digest": "alive", "cron-a": "dead", "cron-b": "dead"},
    "files": ["sessions.json", "s-1.jsonl.deleted", "s-2.jsonl.corrupt", "s-3.jsonl"],
}
RESTART_TRAIL = ["clean-scheduled-runs", "remove-junk-files", "announce", "safe-restart", "health"]


# ---- gateway_safe_restart ------------------------------------------------------------------------------


async def test_safe_restart_cleans_announces_waits_restarts_and_confirms_health(
    stanch: Running, gateways: Gateways
) -> None:
    name = gateways.new(**HIGH_MEMORY, unhealthy_checks_after_restart=2)
    handle = await gateways.open("gateway_safe_restart", name, alertname="GatewayMemoryHigh")
    result = await handle.result()

    assert result.final_state == "restarted"
    runtime = gateways.runtime(name)
    assert (runtime["restarts"], runtime["memory_mb"], runtime["healthy"]) == (1, 520, True)
    assert runtime["scheduled_runs"] == {"digest": "alive"}
    assert runtime["files"] == ["sessions.json", "s-3.jsonl"]
    # Only the safe path, once, after the clean-up; the restart's reason is documented on the platform.
    assert gateways.effects(name) == ["/scheduled-runs/clean", "/files/clean", "/safe-restart"]
    restart = next(e for e in runtime["events"] if e["event"] == "safe_restart")
    assert "85% of the 1536 MB high watermark" in restart["detail"]
    assert applied(stanch.settings.platform_url, f"/runtimes/{name}/safe-restart") == 1
    assert steps(stanch, handle) == [
        "diagnose",
        "guardrail",
        *RESTART_TRAIL,
        "memory-compare",
        "restarted",
        "closed",
    ]
    assert row(stanch, handle, "guardrail")["outcome"] == "allow"
    assert row(stanch, handle, "remove-junk-files")["outcome"] == "done"
    # Nobody approved an automatic restart, so the gateway is told of no approver.
    assert await approvers_sent(handle, "gateway_safe_restart") == [""]
    assert row(stanch, handle, "memory-compare")["outcome"] == "as_expected"
    assert [m["channel"] for m in chat_messages(stanch.settings.platform_url, handle.id)] == [
        "gateway-users",
        "on-call",
    ]

    # The 3 s grace sits between the announcement and the restart; health was polled on timers.
    history = await handle.fetch_history()
    order: list[str] = []
    for event in history.events:
        if event.event_type == EventType.EVENT_TYPE_TIMER_STARTED:
            seconds = event.timer_started_event_attributes.start_to_fire_timeout.ToTimedelta()
            order.append(f"timer {seconds.total_seconds():g}s")
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            kind = event.activity_task_scheduled_event_attributes.activity_type.name
            if kind.startswith("gateway_") or kind == "send_notification":
                order.append(kind)
    start = order.index("gateway_remove_junk_files")
    assert order[start : start + 7] == [
        "gateway_remove_junk_files",
        "send_notification",
        "timer 3s",
        "gateway_safe_restart",
        "gateway_health",
        "timer 15s",
        "gateway_health",
    ]


async def test_below_the_threshold_only_diagnoses(stanch: Running, gateways: Gateways) -> None:
    name = gateways.new(memory_mb=1000, high_watermark_mb=1536, files=["x.corrupt"])
    handle = await gateways.open("gateway_safe_restart", name, alertname="GatewayMemoryHigh")
    result = await handle.result()

    assert result.final_state == "diagnosed"
    runtime = gateways.runtime(name)
    assert (runtime["restarts"], runtime["files"]) == (0, ["x.corrupt"])
    assert gateways.effects(name) == []
    assert steps(stanch, handle) == ["diagnose", "diagnosis", "closed"]


async def test_a_restart_that_frees_too_little_is_reported(stanch: Running, gateways: Gateways) -> None:
    name = gateways.new(**HIGH_MEMORY, restart_memory_ratio=0.7)
    handle = await gateways.open("gateway_safe_restart", name, alertname="GatewayMemoryHigh")
    result = await handle.result()

    assert result.final_state == "restarted_low_gain"
    assert gateways.runtime(name)["memory_mb"] == 910
    compare = row(stanch, handle, "memory-compare")
    assert compare["outcome"] == "below_expected"
    assert "30% less" in compare["reason"] and "below the expected 50%" in compare["reason"]
    brief = await handle.query("brief", result_type=Brief)
    assert "below the expected 50%" in brief.summary
    assert "Investigate" in brief.recommendation


async def test_fourth_restart_in_an_hour_goes_through_approval(stanch: Running, gateways: Gateways) -> None:
    name = gateways.new(**HIGH_MEMORY)
    await gateways.spend_restarts(name, 3)
    handle = await gateways.open("gateway_safe_restart", name, alertname="GatewayMemoryHigh")
    brief = await until_state(handle, "awaiting_approval")
    assert "3 restarts already within the hour" in brief.recommendation
    assert gateways.effects(name) == []  # nothing tidied or restarted while a human decides

    await handle.signal("approve", ApprovalAnswer(approver="alice", action="safe-restart", comment="go"))
    result = await handle.result()

    assert result.final_state == "restarted"
    assert gateways.effects(name) == ["/scheduled-runs/clean", "/files/clean", "/safe-restart"]
    assert steps(stanch, handle) == [
        "diagnose",
        "guardrail",
        "gate1-requested",
        "gate1-decision",
        *RESTART_TRAIL,
        "memory-compare",
        "restarted",
        "closed",
    ]
    assert row(stanch, handle, "guardrail")["outcome"] == "needs_approval"
    assert row(stanch, handle, "safe-restart")["actor"] == "alice"
    # The gateway hears who approved, so its own hourly limit lets the approved restart through.
    for activity in ("gateway_clean_scheduled_runs", "gateway_remove_junk_files", "gateway_safe_restart"):
        assert await approvers_sent(handle, activity) == ["alice"], activity


async def test_rejected_restart_leaves_the_gateway_running(stanch: Running, gateways: Gateways) -> None:
    name = gateways.new(**HIGH_MEMORY)
    await gateways.spend_restarts(name, 3)
    handle = await gateways.open("gateway_safe_restart", name, alertname="GatewayMemoryHigh")
    await until_state(handle, "awaiting_approval")

    await handle.signal("reject", ApprovalAnswer(approver="bob", action="safe-restart", comment="peak hour"))
    result = await handle.result()

    assert result.final_state == "left_running"
    runtime = gateways.runtime(name)
    assert (runtime["restarts"], runtime["memory_mb"]) == (0, 1300)
    assert gateways.effects(name) == []
    assert steps(stanch, handle) == ["diagnose", "guardrail", "gate1-requested", "gate1-decision", "closed"]
    assert row(stanch, handle, "gate1-decision")["outcome"] == "rejected"


@pytest.mark.slow  # nobody answers: the whole ladder to its safe default, dozens of pages (3-14 s)
async def test_unanswered_restart_escalates_and_takes_the_safe_default(
    stanch: Running, gateways: Gateways
) -> None:
    name = gateways.new(**HIGH_MEMORY)
    await gateways.spend_restarts(name, 3)
    handle = await gateways.open("gateway_safe_restart", name, alertname="GatewayMemoryHigh")
    await until_state(handle, "awaiting_approval")

    result = await handle.result()  # nobody answers on-call nor the team lead, for 24 hours

    assert result.final_state == "closed_unattended"
    assert result.approval is not None and result.approval.timed_out
    assert gateways.runtime(name)["restarts"] == 0
    assert steps(stanch, handle) == [
        "diagnose",
        "guardrail",
        "gate1-requested",
        "gate1-escalate-1",
        *repeat_pages(),
        "gate1-safe-default",
        "gate1-give-up",
        "closed",
    ]
    escalations = [
        m for m in chat_messages(stanch.settings.platform_url, handle.id) if m["channel"] == "team-lead"
    ]
    # The escalation, a page every 30 minutes while unattended, and the final one.
    assert len(escalations) == 1 + SHIPPED_LADDER_REPEATS + 1


async def test_failed_safe_restart_is_audited_and_paged(stanch: Running, gateways: Gateways) -> None:
    name = gateways.new(**HIGH_MEMORY)
    gateways.fault(f"/runtimes/{name}/safe-restart", status=409)
    handle = await gateways.open("gateway_safe_restart", name, alertname="GatewayMemoryHigh")
    result = await handle.result()

    assert result.final_state == "action_failed"
    assert gateways.runtime(name)["restarts"] == 0
    assert steps(stanch, handle)[-3:] == ["safe-restart", "restart-failed", "closed"]
    assert row(stanch, handle, "safe-restart")["outcome"] == "failed"
    pages = [m for m in chat_messages(stanch.settings.platform_url, handle.id) if m["channel"] == "on-call"]
    assert len(pages) == 1 and "not restarted" in pages[0]["text"]


async def test_gateway_that_never_comes_back_is_reported_after_bounded_checks(
    stanch: Running, gateways: Gateways
) -> None:
    name = gateways.new(**HIGH_MEMORY, unhealthy_checks_after_restart=1000)
    handle = await gateways.open("gateway_safe_restart", name, alertname="GatewayMemoryHigh")
    result = await handle.result()

    assert result.final_state == "unhealthy_after_restart"
    health = row(stanch, handle, "health")
    assert health["outcome"] == "failed" and "8 checks" in health["reason"]
    history = await handle.fetch_history()
    checks = [
        e
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        and e.activity_task_scheduled_event_attributes.activity_type.name == "gateway_health"
    ]
    assert len(checks) == 8
    assert steps(stanch, handle)[-3:] == ["health", "unhealthy", "closed"]


# ---- retry_storm ---------------------------------------------------------------------------------------


async def test_retry_storm_freezes_the_chain_for_30_minutes_then_lifts_it(
    stanch: Running, gateways: Gateways
) -> None:
    name = gateways.new()
    handle = await gateways.open("retry_storm", name, alertname="RetryStorm", severity=Severity.P2)
    await until_state(handle, "frozen")
    runtime = gateways.runtime(name)
    assert runtime["chain_frozen"] and runtime["chain_frozen_until"]

    await stanch.env.sleep(timedelta(minutes=29))
    assert gateways.runtime(name)["chain_frozen"], "lifted before the 30-minute window was over"
    assert (await handle.query("brief", result_type=Brief)).state == "frozen"

    result = await handle.result()
    assert result.final_state == "lifted"
    runtime = gateways.runtime(name)
    assert not runtime["chain_frozen"]
    assert [(r["kind"], r["title"]) for r in runtime["reviews"]] == [
        ("retry_storm", f"Retry storm on {name}")
    ]
    assert gateways.effects(name) == ["/chain/freeze", "/reviews", "/chain/unfreeze"]
    assert steps(stanch, handle) == ["freeze", "review", "tell-oncall", "unfreeze", "tell-lifted", "closed"]
    history = await handle.fetch_history()
    assert level_timers(history) == [timedelta(minutes=30)]


async def test_retry_storm_freeze_refused_pages_and_stops(stanch: Running, gateways: Gateways) -> None:
    name = gateways.new()
    gateways.fault(f"/runtimes/{name}/chain/freeze", status=409)
    handle = await gateways.open("retry_storm", name, alertname="RetryStorm", severity=Severity.P2)
    result = await handle.result()

    assert result.final_state == "action_failed"
    runtime = gateways.runtime(name)
    assert (runtime["chain_frozen"], runtime["reviews"]) == (False, [])
    assert steps(stanch, handle) == ["freeze", "freeze-failed", "closed"]
    assert row(stanch, handle, "freeze")["outcome"] == "failed"


async def test_retry_storm_lift_failure_leaves_it_frozen_and_says_so(
    stanch: Running, gateways: Gateways
) -> None:
    name = gateways.new()
    handle = await gateways.open("retry_storm", name, alertname="RetryStorm", severity=Severity.P2)
    await until_state(handle, "frozen")
    gateways.fault(f"/runtimes/{name}/chain/unfreeze", status=409)
    result = await handle.result()

    assert result.final_state == "action_failed"
    assert gateways.runtime(name)["chain_frozen"]
    assert steps(stanch, handle)[-3:] == ["unfreeze", "unfreeze-failed", "closed"]
    pages = [
        m for m in chat_messages(stanch.settings.platform_url, handle.id) if "still frozen" in m["title"]
    ]
    assert len(pages) == 1


# ---- resource_pressure ---------------------------------------------------------------------------------


async def test_medium_pressure_marks_blocks_notifies_and_opens_a_review(
    stanch: Running, gateways: Gateways
) -> None:
    name = gateways.new(memory_mb=1400)
    handle = await gateways.open(
        "resource_pressure", name, alertname="ResourcePressure", severity=Severity.P2
    )
    result = await handle.result()

    assert result.final_state == "spawns_blocked"
    runtime = gateways.runtime(name)
    assert (runtime["resource_pressure"], runtime["spawns_blocked"]) == (True, True)
    assert [r["kind"] for r in runtime["reviews"]] == ["resource_pressure"]
    assert "risky spawns blocked" in runtime["reviews"][0]["title"]
    assert gateways.effects(name) == ["/pressure", "/spawns/block", "/reviews"]
    assert steps(stanch, handle) == [
        "diagnose",
        "mark-pressure",
        "guardrail",
        "block-spawns",
        "tell-oncall",
        "review",
        "closed",
    ]
    assert row(stanch, handle, "guardrail")["outcome"] == "allow"


async def test_low_pressure_only_diagnoses_and_alerts(stanch: Running, gateways: Gateways) -> None:
    name = gateways.new()
    handle = await gateways.open(
        "resource_pressure", name, alertname="ResourcePressure", severity=Severity.P3, risk="low"
    )
    result = await handle.result()

    assert result.final_state == "diagnosed"
    runtime = gateways.runtime(name)
    assert (runtime["resource_pressure"], runtime["spawns_blocked"]) == (True, False)
    assert gateways.effects(name) == ["/pressure", "/reviews"]
    assert row(stanch, handle, "guardrail")["outcome"] == "diagnose_only"
    assert "block-spawns" not in steps(stanch, handle)


async def test_second_block_within_10_minutes_needs_approval(stanch: Running, gateways: Gateways) -> None:
    name = gateways.new()
    first = await gateways.open("resource_pressure", name, alertname="ResourcePressure", severity=Severity.P2)
    # Not `result()`: waiting on a result lets the shared test server skip time, past the 10-minute window.
    await until_state(first, "spawns_blocked")
    gateways.reset(name)  # the block was lifted by hand

    second = await gateways.open(
        "resource_pressure", name, alertname="ResourcePressure", severity=Severity.P2
    )
    await until_state(second, "awaiting_approval")
    runtime = gateways.runtime(name)
    # Told and under review already; spawns stay open until a human says otherwise.
    assert (runtime["resource_pressure"], runtime["spawns_blocked"], len(runtime["reviews"])) == (
        True,
        False,
        1,
    )
    assert row(stanch, second, "guardrail")["outcome"] == "needs_approval"

    await second.signal("approve", ApprovalAnswer(approver="carol", action="block-risky-spawns"))
    result = await second.result()
    assert result.final_state == "spawns_blocked"
    assert gateways.runtime(name)["spawns_blocked"]
    assert row(stanch, second, "block-spawns")["actor"] == "carol"
    assert steps(stanch, second)[-4:] == ["gate1-requested", "gate1-decision", "block-spawns", "closed"]


async def test_pressure_that_cannot_be_marked_pages_and_stops(stanch: Running, gateways: Gateways) -> None:
    name = gateways.new()
    gateways.fault(f"/runtimes/{name}/pressure", status=409)
    handle = await gateways.open(
        "resource_pressure", name, alertname="ResourcePressure", severity=Severity.P2
    )
    result = await handle.result()

    assert result.final_state == "action_failed"
    runtime = gateways.runtime(name)
    assert (runtime["resource_pressure"], runtime["spawns_blocked"]) == (False, False)
    assert steps(stanch, handle) == ["diagnose", "mark-pressure", "mark-failed", "closed"]


# ---- lost_session --------------------------------------------------------------------------------------


def session(session_id: str, past_failures: int) -> dict[str, Any]:
    return {
        "session_id": session_id,
        "alive": False,
        "past_failures": past_failures,
        "tasks": [
            {"task_id": "t-1", "state": "running"},
            {"task_id": "t-2", "state": "queued"},
            {"task_id": "t-3", "state": "done"},
        ],
    }


async def test_lost_session_moves_tasks_to_review_and_records_ids(
    stanch: Running, gateways: Gateways
) -> None:
    name = gateways.new(sessions=[session("s-9", past_failures=0)])
    handle = await gateways.open(
        "lost_session", name, alertname="GatewaySessionLost", severity=Severity.P2, session="s-9"
    )
    result = await handle.result()

    assert result.final_state == "in_review"
    runtime = gateways.runtime(name)
    assert [t["state"] for t in runtime["sessions"]["s-9"]["tasks"]] == ["review", "review", "done"]
    assert runtime["retry_settings"] == {
        "t-1": {"mode": "retry", "max_attempts": 3, "backoff_s": 60, "reason": "0 past failure(s)"},
        "t-2": {"mode": "retry", "max_attempts": 3, "backoff_s": 60, "reason": "0 past failure(s)"},
    }
    assert steps(stanch, handle) == [
        "tasks-to-review",
        "lost-session",
        "failure-history",
        "retry-policy",
        "tell-oncall",
        "closed",
    ]
    lost = row(stanch, handle, "lost-session")
    assert lost["outcome"] == "recorded" and "t-1, t-2" in lost["reason"]
    brief = await handle.query("brief", result_type=Brief)
    assert "s-9" in brief.summary and "t-1, t-2" in brief.summary


async def test_lost_session_with_a_bad_history_gets_no_automatic_retry(
    stanch: Running, gateways: Gateways
) -> None:
    name = gateways.new(sessions=[session("s-7", past_failures=4)])
    handle = await gateways.open(
        "lost_session", name, alertname="GatewaySessionLost", severity=Severity.P2, session="s-7"
    )
    result = await handle.result()

    assert result.final_state == "in_review"
    settings = gateways.runtime(name)["retry_settings"]
    assert {task: (s["mode"], s["max_attempts"]) for task, s in settings.items()} == {
        "t-1": ("manual_only", 0),
        "t-2": ("manual_only", 0),
    }
    assert "by hand" in (await handle.query("brief", result_type=Brief)).recommendation


async def test_lost_session_unknown_to_the_gateway_pages_and_stops(
    stanch: Running, gateways: Gateways
) -> None:
    name = gateways.new()
    handle = await gateways.open(
        "lost_session", name, alertname="GatewaySessionLost", severity=Severity.P2, session="s-ghost"
    )
    result = await handle.result()

    assert result.final_state == "action_failed"
    assert gateways.runtime(name)["retry_settings"] == {}
    assert steps(stanch, handle) == ["tasks-to-review", "move-failed", "closed"]
    assert "no session s-ghost" in row(stanch, handle, "tasks-to-review")["reason"]


# ---- zombie_gateway ------------------------------------------------------------------------------------

ZOMBIE = {
    "healthy": False,
    "zombie": True,
    "log_lines": ["heartbeat missed", "watchdog: no progress for 300 s"],
}
TRAIL = ["alert-direct", "collect-logs", "collect-state", "event-trail", "handoff", "gate1-requested"]


async def test_zombie_gateway_hands_off_only_after_the_trail_and_restarts_on_approval(
    stanch: Running, gateways: Gateways
) -> None:
    name = gateways.new(**ZOMBIE)
    handle = await gateways.open("zombie_gateway", name, alertname="GatewayZombie", severity=Severity.P0)
    await until_state(handle, "awaiting_approval")

    rows = audit_rows(stanch.settings, handle.id)
    assert [r["step_key"] for r in rows] == TRAIL
    trail = rows[3]
    assert trail["outcome"] == "recorded"
    # The human hears about it only after the logs, the state and the trail are in the audit log.
    handoff = next(
        m for m in chat_messages(stanch.settings.platform_url, handle.id) if "Hand-off" in m["title"]
    )
    assert handoff["channel"] == "team-lead"
    assert "watchdog: no progress" in handoff["text"] and "zombie=True" in handoff["text"]
    assert gateways.effects(name) == ["/logs/collect", "/state/collect"]

    await handle.signal("approve", ApprovalAnswer(approver="alice", action="safe-restart"))
    result = await handle.result()
    assert result.final_state == "restarted"
    runtime = gateways.runtime(name)
    assert (runtime["restarts"], runtime["zombie"]) == (1, False)
    assert gateways.effects(name) == ["/logs/collect", "/state/collect", "/safe-restart"]
    # The approved restart was asked of the gateway's guardrail (armed, window empty) before it ran.
    assert steps(stanch, handle) == [
        *TRAIL,
        "gate1-decision",
        "guardrail-safe-restart",
        "safe-restart",
        "closed",
    ]
    assert row(stanch, handle, "guardrail-safe-restart")["outcome"] == "allow"
    assert await approvers_sent(handle, "gateway_safe_restart") == ["alice"]


async def test_zombie_gateway_pages_the_escalation_level_when_paging_fails(
    stanch: Running, gateways: Gateways
) -> None:
    name = gateways.new(**ZOMBIE)
    # Every attempt of the direct page fails (P0 goes to the instant group only: one post per attempt).
    gateways.fault("/chat/messages", status=503, times=12)
    handle = await gateways.open("zombie_gateway", name, alertname="GatewayZombie", severity=Severity.P0)
    # Skip through the page's retry backoff (about 4 minutes), well short of the approval timeout.
    await stanch.env.sleep(timedelta(minutes=10))
    # Past the P0 response target (5 minutes) with nobody responding: the question is escalated already.
    await until_state(handle, "escalated")

    steps_so_far = [r["step_key"] for r in audit_rows(stanch.settings, handle.id)]
    assert steps_so_far[:2] == ["alert-direct", "alert-fallback"]
    assert row(stanch, handle, "alert-direct")["outcome"] == "failed"
    assert row(stanch, handle, "event-trail")["outcome"] == "recorded"
    titles = [m["title"] for m in chat_messages(stanch.settings.platform_url, handle.id)]
    assert titles[0] == f"Zombie gateway {name} (paging channel failed)"

    await handle.signal("reject", ApprovalAnswer(approver="bob", action="safe-restart", comment="looking"))
    result = await handle.result()
    assert result.final_state == "handed_off"
    assert gateways.runtime(name)["restarts"] == 0


@pytest.mark.slow  # nobody answers: the whole ladder to its safe default, dozens of pages (3-14 s)
async def test_zombie_gateway_with_missing_evidence_still_records_the_trail_first(
    stanch: Running, gateways: Gateways
) -> None:
    name = gateways.new(**ZOMBIE)
    gateways.fault(f"/runtimes/{name}/logs/collect", status=404)
    handle = await gateways.open("zombie_gateway", name, alertname="GatewayZombie", severity=Severity.P0)
    result = await handle.result()  # nobody answers: closed unattended, nothing restarted

    assert result.final_state == "closed_unattended"
    assert gateways.runtime(name)["restarts"] == 0
    rows = audit_rows(stanch.settings, handle.id)
    assert [r["step_key"] for r in rows][:6] == TRAIL
    assert rows[1]["outcome"] == "failed"
    assert (rows[3]["outcome"], rows[3]["reason"]) == ("recorded_incomplete", "missing: service logs")
