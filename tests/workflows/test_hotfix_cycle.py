"""The hotfix cycle on its own (as the war room starts it, but directly), with the sandbox's scriptable
builds and QA verdicts and the audit log in Postgres."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio.client import WorkflowHandle

from schemas.approvals import EscalationRequest
from schemas.hotfix import HotfixInput, HotfixResult, ResumeRequest, SavedLoop, StopRequest
from tests.helpers import (
    Incidents,
    Running,
    audit_rows,
    chat_messages,
    deploys_of,
    get,
    new_service,
    put,
    script_qa,
    until_state,
)


async def start_cycle(
    incidents: Incidents,
    service: str,
    *,
    stop_first: bool = False,
    max_iterations: int = 5,
) -> WorkflowHandle[Any, HotfixResult]:
    return await incidents.open(
        "hotfix_cycle",
        alertname="ProductionDown",
        annotations={"summary": f"{service} crashes on empty carts"},
        service=service,
        target={"service": service},
        workflow_id="incident-test-{fingerprint}-hotfix",
        signal_alert=False,
        start_signal=("stop", StopRequest(by="alice", reason="wait for logs")) if stop_first else None,
        input_type=HotfixInput,
        result_type=HotfixResult,
        issue="empty-cart",
        max_iterations=max_iterations,
    )


def builds(sandbox: str, service: str) -> list[dict[str, Any]]:
    return list(get(sandbox, "/hotfix/builds", service=service))


def keys(stanch: Running, workflow_id: str) -> list[str]:
    return [row["step_key"] for row in audit_rows(stanch.settings, workflow_id)]


async def test_fails_qa_once_then_ships_and_keeps_a_decision_log(
    stanch: Running, incidents: Incidents
) -> None:
    sandbox = stanch.settings.platform_url
    service = new_service(sandbox, ["1.0.0"])
    script_qa(sandbox, service, ["FAIL", "CONCERNS"])
    handle = await start_cycle(incidents, service)
    result = await handle.result()

    assert (result.final_state, result.outcome, result.iterations) == ("fixed", "fixed", 2)
    assert result.escalation_trigger is None
    assert [b["status"] for b in builds(sandbox, service)] == ["succeeded", "deployed"]
    live = deploys_of(sandbox, service)[0]
    assert (live["version"], live["status"]) == (result.deployed_version, "live")
    decisions = [e.text for e in result.decision_log if e.kind == "decision"]
    assert decisions[0].startswith("decision log of hotfix-empty-cart")
    assert any("round 1: QA says FAIL" in d for d in decisions)
    assert any("round 2: QA says CONCERNS" in d for d in decisions)
    assert keys(stanch, handle.id) == ["build-1-1", "qa-1", "build-2-1", "qa-2", "ship", "closed"]


async def test_five_failed_rounds_escalate_to_the_lead(stanch: Running, incidents: Incidents) -> None:
    sandbox = stanch.settings.platform_url
    service = new_service(sandbox, ["1.0.0"])
    script_qa(sandbox, service, ["FAIL"] * 5)
    handle = await start_cycle(incidents, service)
    result = await handle.result()

    assert result.final_state == "escalated"
    assert (result.escalation_trigger, result.escalated_to) == ("max_iterations_reached", "engineering-lead")
    assert result.iterations == 5
    assert len(builds(sandbox, service)) == 5
    assert all(b["status"] == "succeeded" for b in builds(sandbox, service))  # none shipped
    assert [d["version"] for d in deploys_of(sandbox, service)] == ["1.0.0"]
    [page] = [m for m in chat_messages(sandbox, handle.id) if m["channel"] == "engineering-lead"]
    assert "max_iterations_reached" in page["title"]
    steps = keys(stanch, handle.id)
    assert steps[-2:] == ["escalate-max_iterations_reached", "closed"] and "ship" not in steps


async def test_blocked_verdict_escalates_at_once(stanch: Running, incidents: Incidents) -> None:
    sandbox = stanch.settings.platform_url
    service = new_service(sandbox, ["1.0.0"])
    script_qa(sandbox, service, ["BLOCKED", "PASS"])
    handle = await start_cycle(incidents, service)
    result = await handle.result()

    assert (result.escalation_trigger, result.iterations) == ("verdict_blocked", 1)
    assert keys(stanch, handle.id) == ["build-1-1", "qa-1", "escalate-verdict_blocked", "closed"]
    assert len(get(sandbox, "/qa/runs", service=service)) == 1


async def test_fix_that_never_builds_goes_to_the_architect(stanch: Running, incidents: Incidents) -> None:
    sandbox = stanch.settings.platform_url
    service = new_service(sandbox, ["1.0.0"])
    put(sandbox, "/hotfix/script", {"service": service, "failures": 3})
    handle = await start_cycle(incidents, service)
    result = await handle.result()

    assert (result.escalation_trigger, result.escalated_to) == ("fix_failure", "architect")
    assert [b["status"] for b in builds(sandbox, service)] == ["failed", "failed", "failed"]
    assert not get(sandbox, "/qa/runs", service=service)
    assert [m["channel"] for m in chat_messages(sandbox, handle.id)] == ["architect"]
    assert keys(stanch, handle.id) == [
        "build-1-1",
        "build-1-2",
        "build-1-3",
        "escalate-fix_failure",
        "closed",
    ]


async def test_stop_saves_the_loop_and_resume_continues_it(stanch: Running, incidents: Incidents) -> None:
    sandbox = stanch.settings.platform_url
    service = new_service(sandbox, ["1.0.0"])
    handle = await start_cycle(incidents, service, stop_first=True)

    brief = await until_state(handle, "stopped")
    assert brief.awaiting is not None and "resume" in brief.awaiting
    await stanch.env.sleep(timedelta(hours=2))  # stopped means stopped, however long
    saved = await handle.query("saved_loop", result_type=SavedLoop)
    assert (saved.iteration, saved.phase, saved.stopped, saved.stopped_by) == (1, "build", True, "alice")
    assert builds(sandbox, service) == []

    await handle.signal("resume", ResumeRequest(by="bob", note="logs are in"))
    result = await handle.result()
    assert (result.final_state, result.iterations) == ("fixed", 1)
    rows = audit_rows(stanch.settings, handle.id)
    assert [r["step_key"] for r in rows] == ["stop-1", "resume-1", "build-1-1", "qa-1", "ship", "closed"]
    assert (rows[0]["actor"], rows[0]["outcome"]) == ("alice", "saved")
    assert (rows[1]["actor"], rows[1]["outcome"]) == ("bob", "build of round 1")


async def test_escalate_signal_while_stopped_hands_over_to_the_lead(
    stanch: Running, incidents: Incidents
) -> None:
    sandbox = stanch.settings.platform_url
    service = new_service(sandbox, ["1.0.0"])
    handle = await start_cycle(incidents, service, stop_first=True)
    await until_state(handle, "stopped")

    await handle.signal("escalate", EscalationRequest(by="carol", reason="needs a schema change"))
    result = await handle.result()

    assert (result.escalation_trigger, result.escalated_to) == ("manual_escalate", "engineering-lead")
    assert builds(sandbox, service) == []
    assert keys(stanch, handle.id) == ["stop-1", "escalate-manual_escalate", "closed"]
    [page] = chat_messages(sandbox, handle.id)
    assert "carol" in page["text"]
