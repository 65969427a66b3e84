"""The agent lifecycle runbooks (upgrade, termination, onboarding) on the time-skipping server, with real
effects: the sandbox platform over HTTP and the audit log in Postgres."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest
from temporalio.client import WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import CancelledError

from schemas.approvals import ApprovalAnswer
from schemas.briefs import Brief
from schemas.incidents import IncidentResult
from schemas.severity import Severity
from tests.clock import settled
from tests.helpers import (
    SHIPPED_LADDER_REPEATS,
    Incidents,
    Running,
    audit_rows,
    chat_messages,
    http_client,
    repeat_pages,
)
from tests.helpers_keys import demo_signed


async def start(
    incidents: Incidents,
    runbook: str,
    target: dict[str, str],
    severity: Severity = Severity.P2,
    summary: str = "agent lifecycle request",
) -> WorkflowHandle[Any, IncidentResult]:
    return await incidents.open(
        runbook,
        labels={"agent": target["agent_id"]},
        annotations={"summary": summary},
        severity=severity,
        service="agents",
        target=target,
    )


async def until_awaiting(handle: WorkflowHandle[Any, Any], action: str) -> Brief:
    """Wait for the gate that asks for `action` (several gates share the awaiting_approval state)."""
    for _ in range(200):
        brief = await handle.query("brief", result_type=Brief)
        if brief.awaiting and f"'{action}'" in brief.awaiting:
            await settled(handle)
            return brief
        await asyncio.sleep(0.05)
    raise AssertionError(f"never asked for {action}; last brief: {brief}")


async def until_parked(handle: WorkflowHandle[Any, Any]) -> None:
    """Wait for the gate's escalation timer: no activity is in flight any more, only the human is awaited.

    (The time-skipping test server can wedge a workflow whose cancellation races an activity's completion,
    "ACTIVITY_UNKNOWN"; cancelling while parked on the timer keeps the test about the runbook.)
    """
    for _ in range(200):
        history = await handle.fetch_history()
        if any(event.HasField("timer_started_event_attributes") for event in history.events):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the workflow never parked on the approval timer")


def agent_of(sandbox: str, agent_id: str) -> dict[str, Any]:
    response = http_client.get(f"{sandbox}/agents/{agent_id}")
    return dict(response.json()) if response.status_code == 200 else {}


def lifecycle(sandbox: str, agent_id: str) -> dict[str, Any]:
    return dict(http_client.get(f"{sandbox}/agents/{agent_id}/lifecycle").json())


def count(sandbox: str, path: str, method: str = "POST") -> int:
    counts = http_client.get(f"{sandbox}/calls/count", params={"path": path, "method": method}).json()
    return int(counts["applied"])


def fault(sandbox: str, path_prefix: str, status: int = 409, times: int = 1) -> None:
    http_client.post(
        f"{sandbox}/faults", json={"path_prefix": path_prefix, "status": status, "times": times}
    ).raise_for_status()


def call_order(sandbox: str, agent_id: str) -> list[str]:
    """`METHOD path-after-the-agent` of every successful effect on the agent, in order (set-up excluded)."""
    calls = http_client.get(f"{sandbox}/calls", params={"path_prefix": f"/agents/{agent_id}/"}).json()
    prefix = len(f"/agents/{agent_id}/")
    return [
        f"{c['method']} {c['path'][prefix:]}"
        for c in calls
        if c["idempotency_key"] and 200 <= c["status_code"] < 300
    ]


def steps(stanch: Running, handle: WorkflowHandle[Any, Any]) -> list[str]:
    return [row["step_key"] for row in audit_rows(stanch.settings, handle.id)]


def row(stanch: Running, handle: WorkflowHandle[Any, Any], step: str) -> dict[str, Any]:
    return next(r for r in audit_rows(stanch.settings, handle.id) if r["step_key"] == step)


# ---- agent upgrade ---------------------------------------------------------------------------------------

OLD_CONFIG = {"model": "small-2025", "skills": ["faq"]}
NEW_CONFIG = {"model": "large-2026", "skills": ["faq", "summarise"]}
MEMORY = ["customer acme prefers email", "refunds need a ticket"]
UPGRADE_OPENING = ["identify-changes", "snapshot", "apply", "gold-set"]


def upgradable_agent(sandbox: str, gold_scores: dict[str, float] | None = None) -> str:
    agent_id = f"agent-up-{uuid.uuid4().hex[:8]}"
    http_client.put(
        f"{sandbox}/agents/{agent_id}", json={"versions": ["v1", "v2"], "gold_scores": gold_scores or {}}
    ).raise_for_status()
    http_client.put(
        f"{sandbox}/agents/{agent_id}/lifecycle",
        json={"config": OLD_CONFIG, "memory": MEMORY, "version_configs": {"v3": NEW_CONFIG}},
    ).raise_for_status()
    return agent_id


async def start_upgrade(incidents: Incidents, agent_id: str) -> WorkflowHandle[Any, IncidentResult]:
    target = {"agent_id": agent_id, "to_version": "v3"}
    return await start(incidents, "agent_upgrade", target, summary=f"upgrade {agent_id} to v3")


async def test_upgrade_snapshots_first_applies_tests_and_owner_validates(
    stanch: Running, incidents: Incidents
) -> None:
    sandbox = stanch.settings.platform_url
    agent_id = upgradable_agent(sandbox)
    handle = await start_upgrade(incidents, agent_id)

    brief = await until_awaiting(handle, "validate-upgrade")
    assert "93%" in brief.recommendation
    await handle.signal("approve", ApprovalAnswer(approver="erin", action="validate-upgrade", comment="ok"))
    result = await handle.result()

    assert result.final_state == "upgraded"
    state = agent_of(sandbox, agent_id)
    assert (state["version"], state["previous_version"]) == ("v3", "v2")
    held = lifecycle(sandbox, agent_id)
    assert held["config"] == NEW_CONFIG
    [snapshot] = held["snapshots"].values()
    assert (snapshot["version"], snapshot["config"], snapshot["memory"]) == ("v2", OLD_CONFIG, MEMORY)
    # The backup happened before the first change, and nothing was restored.
    order = call_order(sandbox, agent_id)
    assert order.index("POST snapshots") < order.index("PUT config")
    assert not any(call.endswith("/restore") for call in order)
    assert steps(stanch, handle) == [
        *UPGRADE_OPENING,
        "tested",
        "gate1-requested",
        "gate1-decision",
        "upgrade-log",
        "closed",
    ]
    log = row(stanch, handle, "upgrade-log")
    assert log["outcome"] == "upgraded" and "model: 'small-2025' → 'large-2026'" in log["reason"]


async def test_upgrade_regression_restores_snapshot_without_asking(
    stanch: Running, incidents: Incidents
) -> None:
    sandbox = stanch.settings.platform_url
    agent_id = upgradable_agent(sandbox, gold_scores={"v3": 0.55})
    handle = await start_upgrade(incidents, agent_id)

    result = await handle.result()

    assert result.final_state == "rolled_back"
    assert result.approval is None  # the compensation is automatic, nobody was asked
    state = agent_of(sandbox, agent_id)
    assert state["version"] == "v2" and [h["event"] for h in state["history"]][-1] == "restored"
    held = lifecycle(sandbox, agent_id)
    assert (held["config"], held["memory"]) == (OLD_CONFIG, MEMORY)
    assert count(sandbox, f"/agents/{agent_id}/snapshots/{agent_id}-state-1/restore") == 1
    assert steps(stanch, handle) == [
        *UPGRADE_OPENING,
        "restore-snapshot",
        "rolled-back",
        "upgrade-log",
        "closed",
    ]
    assert row(stanch, handle, "upgrade-log")["outcome"] == "rolled_back"
    owner = [m for m in chat_messages(sandbox, handle.id) if m["channel"] == "owner"]
    assert len(owner) == 1 and "55%" in owner[0]["text"] and "80%" in owner[0]["text"]


async def test_upgrade_failed_apply_is_compensated_too(stanch: Running, incidents: Incidents) -> None:
    sandbox = stanch.settings.platform_url
    agent_id = upgradable_agent(sandbox)
    fault(sandbox, f"/agents/{agent_id}/config", status=409)
    handle = await start_upgrade(incidents, agent_id)

    result = await handle.result()

    assert result.final_state == "rolled_back"
    assert agent_of(sandbox, agent_id)["version"] == "v2"
    assert count(sandbox, f"/agents/{agent_id}/gold-set") == 0
    assert steps(stanch, handle) == [
        "identify-changes",
        "snapshot",
        "apply",
        "restore-snapshot",
        "rolled-back",
        "upgrade-log",
        "closed",
    ]
    assert row(stanch, handle, "apply")["outcome"] == "failed"


async def test_upgrade_failed_restore_pages_oncall(stanch: Running, incidents: Incidents) -> None:
    sandbox = stanch.settings.platform_url
    agent_id = upgradable_agent(sandbox, gold_scores={"v3": 0.4})
    fault(sandbox, f"/agents/{agent_id}/snapshots/{agent_id}-state-1/restore", status=409)
    handle = await start_upgrade(incidents, agent_id)

    result = await handle.result()

    assert result.final_state == "action_failed"
    assert agent_of(sandbox, agent_id)["version"] == "v3"  # still on the bad version: a person must act
    assert row(stanch, handle, "restore-snapshot")["outcome"] == "failed"
    [page] = [m for m in chat_messages(sandbox, handle.id) if m["channel"] == "on-call"]
    assert "could not be undone" in page["title"]


async def test_upgrade_snapshot_failure_changes_nothing(stanch: Running, incidents: Incidents) -> None:
    sandbox = stanch.settings.platform_url
    agent_id = upgradable_agent(sandbox)
    fault(sandbox, f"/agents/{agent_id}/snapshots", status=409)
    handle = await start_upgrade(incidents, agent_id)

    result = await handle.result()

    assert result.final_state == "action_failed"
    assert agent_of(sandbox, agent_id)["version"] == "v2"
    assert count(sandbox, f"/agents/{agent_id}/config", method="PUT") == 0
    assert steps(stanch, handle) == ["identify-changes", "snapshot", "snapshot-failed", "closed"]


async def test_upgrade_owner_rejection_restores_snapshot(stanch: Running, incidents: Incidents) -> None:
    sandbox = stanch.settings.platform_url
    agent_id = upgradable_agent(sandbox)
    handle = await start_upgrade(incidents, agent_id)
    await until_awaiting(handle, "validate-upgrade")

    await handle.signal("reject", ApprovalAnswer(approver="erin", action="validate-upgrade", comment="tone"))
    result = await handle.result()

    assert result.final_state == "rolled_back"
    assert agent_of(sandbox, agent_id)["version"] == "v2"
    assert lifecycle(sandbox, agent_id)["config"] == OLD_CONFIG
    assert steps(stanch, handle)[-5:] == [
        "gate1-decision",
        "restore-snapshot",
        "rolled-back",
        "upgrade-log",
        "closed",
    ]


async def test_upgrade_cancelled_while_awaiting_validation_still_restores(
    stanch: Running, incidents: Incidents
) -> None:
    sandbox = stanch.settings.platform_url
    agent_id = upgradable_agent(sandbox)
    handle = await start_upgrade(incidents, agent_id)
    await until_awaiting(handle, "validate-upgrade")
    await until_parked(handle)

    await handle.cancel()
    with pytest.raises(WorkflowFailureError) as failure:
        await handle.result()

    assert isinstance(failure.value.cause, CancelledError)
    assert agent_of(sandbox, agent_id)["version"] == "v2"
    assert lifecycle(sandbox, agent_id)["config"] == OLD_CONFIG
    assert count(sandbox, f"/agents/{agent_id}/snapshots/{agent_id}-state-1/restore") == 1
    assert steps(stanch, handle)[-2:] == ["restore-snapshot", "rolled-back"]


@pytest.mark.slow  # nobody answers: the whole ladder to its safe default, dozens of pages (3-14 s)
async def test_upgrade_unanswered_validation_escalates_and_keeps_passing_version(
    stanch: Running, incidents: Incidents
) -> None:
    sandbox = stanch.settings.platform_url
    agent_id = upgradable_agent(sandbox)
    handle = await start_upgrade(incidents, agent_id)

    result = await handle.result()

    assert result.final_state == "closed_unattended"
    assert result.approval is not None and result.approval.timed_out
    assert agent_of(sandbox, agent_id)["version"] == "v3"
    assert steps(stanch, handle)[-(SHIPPED_LADDER_REPEATS + 5) :] == [
        "gate1-escalate-1",
        *repeat_pages(),
        "gate1-safe-default",
        "gate1-give-up",
        "upgrade-log",
        "closed",
    ]


# ---- agent termination -----------------------------------------------------------------------------------

TERMINATION_DONE = [
    "gate1-requested",
    "gate1-decision",
    "pause",
    "archive",
    "verify-archive",
    "guardrail-terminate",  # the agent's guardrail (armed, window empty) lets the clean-up run
    "terminate",
    "revoke-tokens",
    "delete-secrets",
    "retention",
    "dependents",
    "final-report",
    "termination-log",
]


def retiring_agent(sandbox: str) -> tuple[str, list[str]]:
    agent_id = f"agent-end-{uuid.uuid4().hex[:8]}"
    dependents = [f"{agent_id}-router", f"{agent_id}-reporter"]
    http_client.put(f"{sandbox}/agents/{agent_id}", json={"versions": ["v1", "v2"]}).raise_for_status()
    http_client.put(
        f"{sandbox}/agents/{agent_id}/lifecycle",
        json={
            "workspace": {"JOB.md": "answer invoices", "notes.md": "escalate refunds"},
            "memory": MEMORY,
            "tokens": ["tok-api", "tok-chat"],
            "secrets": ["CRM_PASSWORD", "MAIL_TOKEN", "OPENAI_KEY"],
            "dependents": dependents,
        },
    ).raise_for_status()
    return agent_id, dependents


async def test_termination_archives_before_anything_destructive(
    stanch: Running, incidents: Incidents
) -> None:
    sandbox = stanch.settings.platform_url
    agent_id, dependents = retiring_agent(sandbox)
    handle = await start(incidents, "agent_termination", {"agent_id": agent_id})
    await until_awaiting(handle, "terminate")
    assert agent_of(sandbox, agent_id)["state"] == "active"  # nothing before the confirmation

    comment = "replaced by v3 fleet; keep prompts shorter"
    await handle.signal(
        "approve",
        await demo_signed(handle, ApprovalAnswer(approver="erin", action="terminate", comment=comment)),
    )
    result = await handle.result()

    assert result.final_state == "terminated"
    assert agent_of(sandbox, agent_id)["state"] == "terminated"
    held = lifecycle(sandbox, agent_id)
    archive = held["archives"][f"{agent_id}-archive-1"]
    assert archive["memory"] == MEMORY and set(archive["workspace"]) == {"JOB.md", "notes.md"}
    assert any(entry["event"] == "paused" for entry in archive["logs"])
    assert (held["tokens"], held["secrets"]) == ([], [])
    assert len(held["revoked_tokens"]) == 2 and len(held["deleted_secrets"]) == 3
    until = datetime.fromisoformat(held["retention_until"])
    assert until - result.finished_at == timedelta(days=365) or (
        timedelta(days=364, hours=23) < until - result.finished_at < timedelta(days=365)
    )
    order = call_order(sandbox, agent_id)
    archived_at = order.index("POST archives")
    assert all(
        order.index(call) > archived_at for call in ("POST terminate", "DELETE tokens", "DELETE secrets")
    )
    for name in dependents:
        [notice] = lifecycle(sandbox, name)["notices"]
        assert notice["from_agent"] == agent_id
    assert steps(stanch, handle) == [*TERMINATION_DONE, *(f"inform-{n}" for n in dependents), "closed"]
    # The retention date is in the audit log itself, not only on the platform.
    assert f"{until:%Y-%m-%d}" in row(stanch, handle, "retention")["action"]
    log = row(stanch, handle, "termination-log")
    assert (
        log["outcome"] == "terminated" and comment in log["reason"] and f"{until:%Y-%m-%d}" in log["reason"]
    )
    [report] = [m for m in chat_messages(sandbox, handle.id) if m["channel"] == "owner"]
    assert f"{agent_id}-archive-1" in report["text"] and dependents[0] in report["text"]


async def test_termination_archive_fault_leaves_everything_in_place(
    stanch: Running, incidents: Incidents
) -> None:
    sandbox = stanch.settings.platform_url
    agent_id, dependents = retiring_agent(sandbox)
    fault(sandbox, f"/agents/{agent_id}/archives", status=409)
    handle = await start(incidents, "agent_termination", {"agent_id": agent_id})
    await until_awaiting(handle, "terminate")

    await handle.signal(
        "approve", await demo_signed(handle, ApprovalAnswer(approver="dave", action="terminate"))
    )
    result = await handle.result()

    assert result.final_state == "archive_failed"
    state = agent_of(sandbox, agent_id)
    assert state["state"] == "paused"
    held = lifecycle(sandbox, agent_id)
    assert held["archives"] == {} and len(held["tokens"]) == 2 and len(held["secrets"]) == 3
    assert count(sandbox, f"/agents/{agent_id}/terminate") == 0
    assert count(sandbox, f"/agents/{agent_id}/tokens", method="DELETE") == 0
    assert count(sandbox, f"/agents/{agent_id}/secrets", method="DELETE") == 0
    assert lifecycle(sandbox, dependents[0])["notices"] == []
    assert steps(stanch, handle) == [
        "gate1-requested",
        "gate1-decision",
        "pause",
        "archive",
        "archive-failed",
        "closed",
    ]
    assert row(stanch, handle, "archive")["outcome"] == "failed"


async def test_termination_unreadable_archive_is_no_archive(stanch: Running, incidents: Incidents) -> None:
    sandbox = stanch.settings.platform_url
    agent_id, _ = retiring_agent(sandbox)
    # The archive is written but the read-back fails: still nothing destructive may happen.
    fault(sandbox, f"/agents/{agent_id}/archives/{agent_id}-archive-1", status=404)
    handle = await start(incidents, "agent_termination", {"agent_id": agent_id})
    await until_awaiting(handle, "terminate")
    await handle.signal(
        "approve", await demo_signed(handle, ApprovalAnswer(approver="dave", action="terminate"))
    )

    assert (await handle.result()).final_state == "archive_failed"
    assert count(sandbox, f"/agents/{agent_id}/terminate") == 0
    assert len(lifecycle(sandbox, agent_id)["secrets"]) == 3
    assert steps(stanch, handle)[-3:] == ["verify-archive", "archive-failed", "closed"]


async def test_termination_on_p0_needs_two_approvers(stanch: Running, incidents: Incidents) -> None:
    sandbox = stanch.settings.platform_url
    agent_id, _ = retiring_agent(sandbox)
    handle = await start(incidents, "agent_termination", {"agent_id": agent_id}, severity=Severity.P0)
    brief = await until_awaiting(handle, "terminate")
    assert "2 approvers" in (brief.awaiting or "")

    await handle.signal(
        "approve", await demo_signed(handle, ApprovalAnswer(approver="erin", action="terminate"))
    )
    await asyncio.sleep(0.3)
    assert (await handle.query("brief", result_type=Brief)).state == "awaiting_approval"
    assert agent_of(sandbox, agent_id)["state"] == "active"
    await handle.signal(
        "approve", await demo_signed(handle, ApprovalAnswer(approver="dave", action="terminate"))
    )
    result = await handle.result()

    assert result.final_state == "terminated"
    assert agent_of(sandbox, agent_id)["state"] == "terminated"
    assert row(stanch, handle, "gate1-decision")["actor"] == "erin, dave"


async def test_termination_rejected_keeps_agent(stanch: Running, incidents: Incidents) -> None:
    sandbox = stanch.settings.platform_url
    agent_id, _ = retiring_agent(sandbox)
    handle = await start(incidents, "agent_termination", {"agent_id": agent_id})
    await until_awaiting(handle, "terminate")

    await handle.signal("reject", ApprovalAnswer(approver="erin", action="terminate", comment="still needed"))
    result = await handle.result()

    assert result.final_state == "kept"
    assert agent_of(sandbox, agent_id)["state"] == "active"
    assert call_order(sandbox, agent_id) == []
    assert steps(stanch, handle) == ["gate1-requested", "gate1-decision", "closed"]


@pytest.mark.slow  # nobody answers: the whole ladder to its safe default, dozens of pages (3-14 s)
async def test_termination_unanswered_escalates_and_deletes_nothing(
    stanch: Running, incidents: Incidents
) -> None:
    sandbox = stanch.settings.platform_url
    agent_id, _ = retiring_agent(sandbox)
    handle = await start(incidents, "agent_termination", {"agent_id": agent_id})

    result = await handle.result()

    assert result.final_state == "closed_unattended"
    assert agent_of(sandbox, agent_id)["state"] == "active"
    assert call_order(sandbox, agent_id) == []
    assert steps(stanch, handle) == [
        "gate1-requested",
        "gate1-escalate-1",
        *repeat_pages(),
        "gate1-safe-default",
        "gate1-give-up",
        "closed",
    ]


# ---- agent onboarding ------------------------------------------------------------------------------------

GATES = ["approve-scope", "approve-job-description", "approve-capabilities"]
APPROVED_GATES = [f"gate{n}-{kind}" for n in (1, 2, 3) for kind in ("requested", "decision")]
DEPLOYED = [*APPROVED_GATES, "workspace", "config", "health-check", "deployed"]


def new_name(sandbox: str, gold_scores: dict[str, float] | None = None, healthy: bool = True) -> str:
    agent_id = f"agent-new-{uuid.uuid4().hex[:8]}"
    if gold_scores or not healthy:
        http_client.put(
            f"{sandbox}/agents/{agent_id}/lifecycle",
            json={"gold_scores": gold_scores or {}, "healthy": healthy},
        ).raise_for_status()
    return agent_id


async def start_onboarding(incidents: Incidents, agent_id: str) -> WorkflowHandle[Any, IncidentResult]:
    target = {"agent_id": agent_id, "role": "billing-assistant", "tools": "kb:read, tickets:write"}
    return await start(
        incidents, "agent_onboarding", target, severity=Severity.P3, summary="answer invoice questions"
    )


async def approve_gates(handle: WorkflowHandle[Any, Any], gates: list[str] = GATES) -> None:
    for action in gates:
        await until_awaiting(handle, action)
        await handle.signal("approve", ApprovalAnswer(approver="erin", action=action))


async def test_onboarding_three_approvals_deploy_test_and_go_live(
    stanch: Running, incidents: Incidents
) -> None:
    sandbox = stanch.settings.platform_url
    agent_id = new_name(sandbox)
    handle = await start_onboarding(incidents, agent_id)

    brief = await until_awaiting(handle, "approve-scope")
    assert "billing-assistant" in brief.recommendation and "answer invoice questions" in brief.recommendation
    assert agent_of(sandbox, agent_id) == {}  # nothing deployed before the three approvals
    await approve_gates(handle)
    result = await handle.result()

    assert result.final_state == "operational"
    state = agent_of(sandbox, agent_id)
    assert (state["state"], state["version"]) == ("active", "v1")
    held = lifecycle(sandbox, agent_id)
    assert set(held["workspace"]) == {"SCOPE.md", "JOB.md", "CAPABILITIES.md"}
    assert "tickets:write" in held["workspace"]["CAPABILITIES.md"]
    assert held["config"] == {
        "role": "billing-assistant",
        "tools": ["kb:read", "tickets:write"],
        "level": "L1",
    }
    assert count(sandbox, f"/agents/{agent_id}/workspace", method="PUT") == 1
    assert steps(stanch, handle) == [*DEPLOYED, "gold-set-1", "activate", "operational", "closed"]
    titles = [m["title"] for m in chat_messages(sandbox, handle.id)]
    assert titles == [f"Agent {agent_id} deployed", f"Agent {agent_id} is operational"]


async def test_onboarding_rejected_job_description_deploys_nothing(
    stanch: Running, incidents: Incidents
) -> None:
    sandbox = stanch.settings.platform_url
    agent_id = new_name(sandbox)
    handle = await start_onboarding(incidents, agent_id)
    await approve_gates(handle, GATES[:1])
    await until_awaiting(handle, "approve-job-description")

    await handle.signal(
        "reject", ApprovalAnswer(approver="erin", action="approve-job-description", comment="too broad")
    )
    result = await handle.result()

    assert result.final_state == "rejected"
    assert agent_of(sandbox, agent_id) == {}
    assert lifecycle(sandbox, agent_id)["workspace"] is None
    assert call_order(sandbox, agent_id) == []
    assert steps(stanch, handle) == [*APPROVED_GATES[:4], "closed"]
    assert row(stanch, handle, "gate2-decision")["outcome"] == "rejected"


@pytest.mark.slow  # nobody answers: the whole ladder to its safe default, dozens of pages (3-14 s)
async def test_onboarding_unanswered_scope_escalates_with_nothing_deployed(
    stanch: Running, incidents: Incidents
) -> None:
    sandbox = stanch.settings.platform_url
    agent_id = new_name(sandbox)
    handle = await start_onboarding(incidents, agent_id)

    result = await handle.result()

    assert result.final_state == "closed_unattended"
    assert agent_of(sandbox, agent_id) == {}
    assert steps(stanch, handle) == [
        "gate1-requested",
        "gate1-escalate-1",
        *repeat_pages(),
        "gate1-safe-default",
        "gate1-give-up",
        "closed",
    ]


async def test_onboarding_failed_gold_set_is_debugged_and_retried(
    stanch: Running, incidents: Incidents
) -> None:
    sandbox = stanch.settings.platform_url
    agent_id = new_name(sandbox, gold_scores={"v1": 0.5, "v1-fix1": 0.7})
    handle = await start_onboarding(incidents, agent_id)
    await approve_gates(handle)

    result = await handle.result()  # the pauses between retries are skipped

    assert result.final_state == "operational"
    state = agent_of(sandbox, agent_id)
    assert (state["state"], state["version"]) == ("active", "v1-fix2")
    assert count(sandbox, f"/agents/{agent_id}/debug") == 2
    assert steps(stanch, handle) == [
        *DEPLOYED,
        "gold-set-1",
        "debug-1",
        "gold-set-2",
        "debug-2",
        "gold-set-3",
        "activate",
        "operational",
        "closed",
    ]
    history = await handle.fetch_history()
    timers = [e for e in history.events if e.HasField("timer_started_event_attributes")]
    pauses = [t for t in timers if t.timer_started_event_attributes.start_to_fire_timeout.seconds == 600]
    assert len(pauses) == 2


async def test_onboarding_gold_set_failing_past_retries_escalates(
    stanch: Running, incidents: Incidents
) -> None:
    sandbox = stanch.settings.platform_url
    scores = {"v1": 0.3, "v1-fix1": 0.4, "v1-fix2": 0.5, "v1-fix3": 0.6}
    agent_id = new_name(sandbox, gold_scores=scores)
    handle = await start_onboarding(incidents, agent_id)
    await approve_gates(handle)

    result = await handle.result()

    assert result.final_state == "escalated"
    state = agent_of(sandbox, agent_id)
    assert (state["state"], state["version"]) == ("paused", "v1-fix3")  # deployed, serving nobody
    assert count(sandbox, f"/agents/{agent_id}/gold-set") == 4
    assert count(sandbox, f"/agents/{agent_id}/debug") == 3
    assert count(sandbox, f"/agents/{agent_id}/resume") == 0
    assert steps(stanch, handle)[-3:] == ["gold-set-4", "gold-set-escalation", "closed"]
    [escalation] = [m for m in chat_messages(sandbox, handle.id) if m["channel"] == "team-lead"]
    assert escalation["recipient"] == "lead"


async def test_onboarding_unhealthy_deploy_is_reported_and_never_goes_live(
    stanch: Running, incidents: Incidents
) -> None:
    sandbox = stanch.settings.platform_url
    agent_id = new_name(sandbox, healthy=False)
    handle = await start_onboarding(incidents, agent_id)
    await approve_gates(handle)

    result = await handle.result()

    assert result.final_state == "deploy_failed"
    assert agent_of(sandbox, agent_id)["state"] == "paused"
    assert count(sandbox, f"/agents/{agent_id}/gold-set") == 0
    assert steps(stanch, handle)[-3:] == ["health-check", "deploy-failed", "closed"]
