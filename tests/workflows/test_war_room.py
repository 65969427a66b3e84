"""The war room runbook on the time-skipping server, with real effects: the sandbox platform over HTTP
(deploys, flags, QA runs, hotfix builds, post-mortems, backlog) and the audit log in Postgres. Once resolved,
a room hands its post-mortem draft to `postmortem-<incident id>` (tests/workflows/test_postmortem.py), which
stores the report and files the stories under the room's incident id."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio.client import WorkflowExecutionStatus, WorkflowHandle

from schemas.approvals import ApprovalAnswer, Resolution
from schemas.briefs import Brief
from schemas.hotfix import HotfixResult
from schemas.incidents import IncidentResult
from schemas.learning import Learning, PostmortemResult
from schemas.severity import Severity
from tests.helpers import (
    Incidents,
    Running,
    audit_rows,
    chat_messages,
    deploys_of,
    get,
    http_client,
    new_service,
    put,
    script_qa,
    until_state,
)

TRIAGE = ["triage-deploys", "triage-infra", "triage-external"]


async def open_war_room(
    incidents: Incidents,
    service: str,
    *,
    severity: Severity = Severity.P1,
    labels: dict[str, str] | None = None,
) -> WorkflowHandle[Any, IncidentResult]:
    extra = labels or {}
    return await incidents.open(
        "war_room",
        alertname="ProductionDown",
        annotations={"summary": f"{service} answers 500 to most users"},
        severity=severity,
        service=service,
        target={"service": service, **extra},
    )


async def awaiting(handle: WorkflowHandle[Any, Any], action: str) -> Brief:
    brief = await until_state(handle, "awaiting_approval")
    for _ in range(100):
        if brief.awaiting and repr(action) in brief.awaiting:
            return brief
        brief = await until_state(handle, "awaiting_approval")
    raise AssertionError(f"never asked for {action}: {brief.awaiting}")


def steps(stanch: Running, workflow_id: str) -> list[str]:
    return [row["step_key"] for row in audit_rows(stanch.settings, workflow_id)]


async def postmortem_of(
    stanch: Running, room: WorkflowHandle[Any, Any]
) -> WorkflowHandle[Any, PostmortemResult]:
    """The resolved room's post-mortem, linked from its brief, waiting for the learning."""
    brief = await room.query("brief", result_type=Brief)
    assert brief.postmortem is not None and brief.postmortem.workflow_id == f"postmortem-{room.id}"
    handle = stanch.client.get_workflow_handle(brief.postmortem.workflow_id, result_type=PostmortemResult)
    await until_state(handle, "awaiting_learning")
    return handle


def learning(by: str, *prevention: str) -> Learning:
    return Learning(by=by, root_cause="the deploy", impact="users saw errors", prevention=list(prevention))


async def without_learning(
    stanch: Running, postmortem: WorkflowHandle[Any, PostmortemResult]
) -> PostmortemResult:
    """Nobody sends a learning: a reminder at 24 h, the report and the draft's stories at 48 h."""
    await stanch.env.sleep(timedelta(hours=49))
    result = await postmortem.result()
    assert result.final_state == "closed_without_learning"
    return result


async def test_p1_rollback_then_qa_pass_resolves_writes_postmortem_and_files_stories(
    stanch: Running, incidents: Incidents
) -> None:
    sandbox = stanch.settings.platform_url
    service = new_service(sandbox, ["1.0.0", "1.1.0"])
    put(sandbox, f"/external/{service}", {"dependencies": {"payments-api": "down"}})
    handle = await open_war_room(incidents, service)

    brief = await awaiting(handle, "rollback")
    assert "within 1 hour" in brief.summary
    assert "last deploy 1.1.0" in brief.summary and "external trouble: payments-api" in brief.summary
    assert "1.1.0" in brief.recommendation
    await handle.signal("approve", ApprovalAnswer(approver="alice", action="rollback", comment="bad deploy"))

    result = await handle.result()
    assert result.final_state == "resolved" and result.resolved_by == "qa-gate"
    assert [d["status"] for d in deploys_of(sandbox, service)] == ["rolled_back", "live"]
    [qa] = get(sandbox, "/qa/runs", service=service)
    assert (qa["subject"], qa["verdict"]) == ("rollback", "PASS")

    postmortem_handle = await postmortem_of(stanch, handle)
    await postmortem_handle.signal("learning", learning("carol", "Canary the checkout deploys"))
    assert (await postmortem_handle.result()).learned_by == "carol"
    [postmortem] = get(sandbox, "/postmortems", incident_id=handle.id)
    # The room's own analysis stays in the report beside the learning.
    assert "latest deploy" in postmortem["markdown"] and "payments\\-api" in postmortem["markdown"]
    assert "contained by rollback" in postmortem["remediation"] and "qa-gate" in postmortem["remediation"]
    assert postmortem["impact"] and postmortem["prevention"] == ["Canary the checkout deploys"]
    assert any("alice approved rollback" in line for line in postmortem["timeline"])
    stories = get(sandbox, "/backlog/stories", incident_id=handle.id)
    assert [s["title"] for s in stories] == ["Canary the checkout deploys"]
    assembled = [m["channel"] for m in chat_messages(sandbox, handle.id) if m["title"].startswith("War room")]
    assert assembled == ["devops", "dev", "qa"]  # no architect below P0
    rows = audit_rows(stanch.settings, handle.id)
    keys = [row["step_key"] for row in rows]
    assert sorted(keys[3:6]) == sorted(TRIAGE)  # run together, so they land in any order
    assert keys[:3] + keys[6:] == [
        "assemble-devops",
        "assemble-dev",
        "assemble-qa",
        "gate1-requested",
        "gate1-decision",
        "contain-rollback",
        "verify-rollback",
        "resolved",
        "closed",
    ]
    assert steps(stanch, postmortem_handle.id) == ["opened", "ask", "report", "story-1", "closed"]
    rollback = next(row for row in rows if row["step_key"] == "contain-rollback")
    assert (rollback["actor"], rollback["outcome"]) == ("alice", "done")


async def test_rejected_rollback_moves_to_the_feature_flag(stanch: Running, incidents: Incidents) -> None:
    sandbox = stanch.settings.platform_url
    service = new_service(sandbox, ["2.0.0", "2.1.0"])
    flag = f"flag-{service}"
    put(sandbox, f"/flags/{flag}", {"enabled": True}, key=flag)
    handle = await open_war_room(incidents, service, labels={"feature": flag})

    await awaiting(handle, "rollback")
    await handle.signal("reject", ApprovalAnswer(approver="bob", action="rollback", comment="data migration"))
    await awaiting(handle, "disable-flag")
    await handle.signal("approve", ApprovalAnswer(approver="carol", action="disable-flag"))
    result = await handle.result()

    assert result.final_state == "resolved"
    flags = {f["name"]: f["enabled"] for f in get(sandbox, "/flags")}
    assert flags[flag] is False
    assert [d["status"] for d in deploys_of(sandbox, service)] == ["live", "live"]  # not rolled back
    rows = audit_rows(stanch.settings, handle.id)
    decisions = [(r["step_key"], r["outcome"]) for r in rows if r["step_key"].endswith("-decision")]
    assert decisions == [("gate1-decision", "rejected"), ("gate2-decision", "approved")]
    keys = [row["step_key"] for row in rows]
    assert "contain-rollback" not in keys and "contain-flag" in keys and "verify-feature-flag" in keys
    # No learning comes: the post-mortem's own prevention list is filed.
    await without_learning(stanch, await postmortem_of(stanch, handle))
    stories = get(sandbox, "/backlog/stories", incident_id=handle.id)
    assert len(stories) == 2 and "regression test" in stories[0]["title"]


async def test_p0_label_rejections_lead_to_hotfix_child_and_architect_is_called(
    stanch: Running, incidents: Incidents
) -> None:
    sandbox = stanch.settings.platform_url
    service = new_service(sandbox, ["3.0.0", "3.1.0"])
    flag = f"flag-{service}"
    script_qa(sandbox, service, ["FAIL", "PASS", "PASS"])  # hotfix round 1, round 2, then the room's check
    handle = await open_war_room(
        incidents, service, labels={"priority": "P0", "feature": flag, "issue": "null-cart"}
    )

    brief = await awaiting(handle, "rollback")
    assert brief.severity == "P0" and "within minutes" in brief.summary
    await handle.signal("reject", ApprovalAnswer(approver="alice", action="rollback"))
    await awaiting(handle, "disable-flag")
    await handle.signal("reject", ApprovalAnswer(approver="alice", action="disable-flag"))
    await awaiting(handle, "hotfix")
    await handle.signal("approve", ApprovalAnswer(approver="bob", action="hotfix"))
    result = await handle.result()

    child = stanch.client.get_workflow_handle(f"{handle.id}-hotfix", result_type=HotfixResult)
    hotfix = await child.result()
    assert (hotfix.outcome, hotfix.iterations) == ("fixed", 2)
    assert hotfix.deployed_version is not None and hotfix.deployed_version.startswith("3.1.0-hotfix")
    assert deploys_of(sandbox, service)[0]["version"] == hotfix.deployed_version
    assert [r["verdict"] for r in get(sandbox, "/qa/runs", service=service)] == ["FAIL", "PASS", "PASS"]

    assert result.final_state == "resolved"
    assembled = [m["channel"] for m in chat_messages(sandbox, handle.id) if m["title"].startswith("War room")]
    assert assembled == ["devops", "dev", "qa", "architect"]
    rows = audit_rows(stanch.settings, handle.id)
    hotfix_row = next(row for row in rows if row["step_key"] == "contain-hotfix")
    assert hotfix_row["outcome"] == "fixed"
    assert "contain-flag" not in [row["step_key"] for row in rows]
    await without_learning(stanch, await postmortem_of(stanch, handle))
    [postmortem] = get(sandbox, "/postmortems", incident_id=handle.id)
    assert "hotfix" in postmortem["root_cause"]
    assert not any("roll back" in p for p in postmortem["prevention"])  # a rollback was possible


async def test_p0_status_every_15_minutes_until_resolve_then_report_reminder_and_48h_stories(
    stanch: Running, incidents: Incidents
) -> None:
    sandbox = stanch.settings.platform_url
    service = new_service(sandbox, ["4.0.0", "4.1.0"])
    handle = await open_war_room(incidents, service, severity=Severity.P0)
    await awaiting(handle, "rollback")

    # Nobody decides: status updates go out every 15 minutes; the P0 response target moves the room to the
    # team lead at 5 minutes, and the request's clock goes on from there: past the last level at 35.
    await stanch.env.sleep(timedelta(minutes=46))
    brief = await until_state(handle, "unattended")
    assert brief.awaiting is not None and "nobody answered the escalation ladder" in brief.awaiting

    def status_updates() -> list[dict[str, Any]]:
        return [m for m in chat_messages(sandbox, handle.id) if m["title"].startswith("Status")]

    assert [m["title"].split(" ·")[0] for m in status_updates()] == ["Status 1", "Status 2", "Status 3"]
    assert any(m["channel"] == "team-lead" for m in chat_messages(sandbox, handle.id))

    # A person fixed it by hand: the pending approval is withdrawn and the updates stop.
    await handle.signal("resolve", Resolution(by="carol", note="restarted the pods by hand"))
    # Closing needs no timer; with the clock left skipping while we wait, a loaded machine can let it run
    # on through the post-mortem's 24 h reminder before the test has looked at the post-mortem at all.
    with stanch.env.auto_time_skipping_disabled():
        result = await handle.result()
    assert result.final_state == "resolved" and result.resolved_by == "carol"
    assert len(status_updates()) == 3

    postmortem_handle = await postmortem_of(stanch, handle)
    await without_learning(stanch, postmortem_handle)  # a reminder at 24 h, stories at 48 h
    assert len(status_updates()) == 3
    assert [d["status"] for d in deploys_of(sandbox, service)] == ["live", "live"]
    reminders = [m for m in chat_messages(sandbox, postmortem_handle.id) if "overdue" in m["title"]]
    assert len(reminders) == 1
    stories = get(sandbox, "/backlog/stories", incident_id=handle.id)
    assert any("feature flags" in story["title"] for story in stories)  # no flag to switch off here
    keys = steps(stanch, handle.id)
    assert keys[:4] == ["assemble-devops", "assemble-dev", "assemble-qa", "assemble-architect"]
    assert [k for k in keys if k.startswith("status-")] == ["status-1", "status-2", "status-3"]
    assert "response-target-missed" in keys and "gate1-escalate-1" not in keys
    assert keys[-3:] == ["containment-withdrawn", "resolved", "closed"]
    assert steps(stanch, postmortem_handle.id) == [
        "opened",
        "ask",
        "reminder",
        "report",
        "story-1",
        "story-2",
        "story-3",
        "no-learning",
        "closed",
    ]
    assert "contain-rollback" not in keys
    [postmortem] = get(sandbox, "/postmortems", incident_id=handle.id)
    assert "carol" in postmortem["remediation"] and "restarted the pods" in postmortem["remediation"]


async def test_qa_failure_after_rollback_moves_on_and_declined_hotfix_leaves_it_uncontained(
    stanch: Running, incidents: Incidents
) -> None:
    sandbox = stanch.settings.platform_url
    service = new_service(sandbox, ["5.0.0", "5.1.0"])
    script_qa(sandbox, service, ["FAIL"])
    handle = await open_war_room(incidents, service, severity=Severity.P2)

    await awaiting(handle, "rollback")
    await handle.signal("approve", ApprovalAnswer(approver="alice", action="rollback"))
    await awaiting(handle, "hotfix")  # QA failed after the rollback; no flag label, so the hotfix is next
    await handle.signal("reject", ApprovalAnswer(approver="alice", action="hotfix"))
    await until_state(handle, "uncontained")
    assert any("No containment" in m["title"] for m in chat_messages(sandbox, handle.id))

    await handle.signal("resolve", Resolution(by="bob", note="config fixed"))
    result = await handle.result()
    # A P2 room gets its post-mortem too (every room that was assembled does).
    postmortem = await postmortem_of(stanch, handle)
    await postmortem.execute_update("learning", learning("bob", "a", "b", "c"))

    assert result.final_state == "resolved" and result.resolved_by == "bob"
    assert [d["status"] for d in deploys_of(sandbox, service)] == ["rolled_back", "live"]
    assert len(get(sandbox, "/backlog/stories", incident_id=handle.id)) == 3
    keys = steps(stanch, handle.id)
    assert "verify-rollback" in keys and "uncontained" in keys and "status-1" not in keys  # P2: no cadence
    assert not [m for m in chat_messages(sandbox, handle.id) if m["channel"] == "architect"]


async def test_p3_goes_to_the_next_sprint_without_a_war_room(stanch: Running, incidents: Incidents) -> None:
    sandbox = stanch.settings.platform_url
    service = new_service(sandbox, ["6.0.0", "6.1.0"])
    handle = await open_war_room(incidents, service, labels={"priority": "P3"})
    result = await handle.result()

    assert result.final_state == "queued_for_sprint"
    [story] = get(sandbox, "/backlog/stories", incident_id=handle.id)
    assert service in story["title"]
    assert steps(stanch, handle.id) == ["sprint-story", "tell-dev", "closed"]
    assert [d["status"] for d in deploys_of(sandbox, service)] == ["live", "live"]
    assert not get(sandbox, "/qa/runs", service=service)


def fault(sandbox: str, path_prefix: str, times: int) -> None:
    http_client.post(f"{sandbox}/faults", json={"path_prefix": path_prefix, "status": 503, "times": times})


def clear_faults(sandbox: str) -> None:
    http_client.delete(f"{sandbox}/faults").raise_for_status()


async def test_resolve_during_the_hotfix_cancels_the_child_and_closes_the_room(
    stanch: Running, incidents: Incidents
) -> None:
    sandbox = stanch.settings.platform_url
    service = new_service(sandbox)  # no deploys, no flag: the hotfix is the only mitigation left
    fault(sandbox, "/hotfix/builds", times=1000)  # builds keep failing, so the child is busy retrying
    try:
        handle = await open_war_room(incidents, service)
        await awaiting(handle, "hotfix")
        await handle.signal("approve", ApprovalAnswer(approver="alice", action="hotfix"))
        await until_state(handle, "hotfix")
        child = stanch.client.get_workflow_handle(f"{handle.id}-hotfix")
        await until_state(child, "fixing", settle=False)  # its build keeps failing and retrying

        await handle.signal("resolve", Resolution(by="bob", note="upstream fixed itself"))
        result = await handle.result()
    finally:
        clear_faults(sandbox)
    assert (await child.describe()).status is WorkflowExecutionStatus.CANCELED
    postmortem_handle = await postmortem_of(stanch, handle)
    await postmortem_handle.execute_update("learning", learning("bob", "Retry budget for upstream"))

    assert result.final_state == "resolved" and result.resolved_by == "bob"
    assert get(sandbox, "/hotfix/builds", service=service) == []
    rows = audit_rows(stanch.settings, handle.id)
    withdrawn = next(row for row in rows if row["step_key"] == "containment-withdrawn")
    assert "hotfix cycle" in withdrawn["outcome"]
    assert "contain-hotfix" not in [row["step_key"] for row in rows]
    [postmortem] = get(sandbox, "/postmortems", incident_id=handle.id)
    assert postmortem["prevention"] == ["Retry budget for upstream"]
    assert "Keep a previous stable deploy" in postmortem["markdown"]  # what the room itself suggested
