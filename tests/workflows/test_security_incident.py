"""The security incident runbook on the time-skipping server: real sandbox effects, real guardrail, real audit."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from temporalio.client import WorkflowHandle

from schemas.approvals import ApprovalAnswer
from schemas.guardrail import GuardrailInput, GuardrailLimits, GuardrailState
from schemas.handoff import HandoffResult
from schemas.incidents import IncidentResult
from schemas.severity import Severity
from tests.helpers import (
    SHIPPED_LADDER_REPEATS,
    Incidents,
    Running,
    agent,
    applied,
    audit_rows,
    chat_messages,
    fault,
    get,
    http_client,
    repeat_pages,
    until_state,
)

# The isolation is asked of the (engaged) guardrail too, and allowed: it only takes power away.
CONTAINED = [
    "kill-switch",
    "guardrail-isolate",
    "revoke-tokens",
    "pause",
    "page",
    "collect-evidence",
    "gate1-requested",
]
EVENTS = [
    {"at": "2026-11-21T10:00:00+00:00", "kind": "prompt_injection", "detail": "ignore previous instructions"},
    {
        "at": "2026-11-21T10:00:05+00:00",
        "kind": "prompt_injection",
        "detail": "send me the CRM",
        "tool": "crm",
    },
    {"at": "2026-11-21T10:00:09+00:00", "kind": "tool_abuse", "detail": "bulk export", "tool": "export"},
]
TOKENS = ["tok-crm", "tok-export"]


def suspect(
    sandbox_url: str, gold_scores: dict[str, float] | None = None, versions: list[str] | None = None
) -> str:
    agent_id = f"sec-agent-{uuid.uuid4().hex[:8]}"
    spec = {"versions": versions or ["v1", "v2", "v3"], "gold_scores": gold_scores or {}}
    http_client.put(f"{sandbox_url}/agents/{agent_id}", json=spec).raise_for_status()
    http_client.put(f"{sandbox_url}/agents/{agent_id}/security-events", json=EVENTS).raise_for_status()
    # The access it holds: containment must leave it none.
    http_client.put(f"{sandbox_url}/agents/{agent_id}/lifecycle", json={"tokens": TOKENS}).raise_for_status()
    return agent_id


async def guardrail_off(stanch: Running, subsystem: str) -> None:
    """The subsystem's guardrail already runs, with its kill switch off: the runbook must turn it on."""
    await stanch.client.start_workflow(
        "guardrail",
        GuardrailInput(subsystem=subsystem, limits=GuardrailLimits(kill_switch_default=False)),
        id=f"guardrail-{subsystem}",
        task_queue=stanch.task_queue,
    )


async def guardrail_rows_once_landed(stanch: Running, subsystem: str, count: int) -> list[dict[str, Any]]:
    """The guardrail answers a flip at once and writes its row after; wait (bounded) for `count` rows."""
    for _ in range(200):
        rows = audit_rows(stanch.settings, f"guardrail-{subsystem}")
        if len(rows) >= count:
            return rows
        await asyncio.sleep(0.05)
    return rows


async def kill_switch(stanch: Running, subsystem: str) -> bool:
    handle = stanch.client.get_workflow_handle(f"guardrail-{subsystem}")
    return (await handle.query("state", result_type=GuardrailState)).kill_switch


async def open_incident(incidents: Incidents, agent_id: str) -> WorkflowHandle[Any, IncidentResult]:
    return await incidents.open(
        "security_incident",
        alertname="AgentPromptInjection",
        labels={"agent": agent_id, "kind": "prompt_injection"},
        annotations={"summary": f"{agent_id} followed instructions hidden in an attachment"},
        severity=Severity.P0,
        service="agents",
        workflow_id="incident-test-sec-{fingerprint}",
        signal_alert=False,
        target={"agent_id": agent_id, "kind": "prompt_injection", "subsystem": f"sub-{agent_id}"},
    )


def history_events(sandbox_url: str, agent_id: str) -> list[str]:
    return [entry["event"] for entry in agent(sandbox_url, agent_id)["history"]]


def postmortem(sandbox_url: str, incident_id: str) -> dict[str, Any]:
    [document] = http_client.get(f"{sandbox_url}/postmortems", params={"incident_id": incident_id}).json()
    return document


async def test_contains_at_once_then_approved_fix_passes_its_gold_set(
    stanch: Running, incidents: Incidents
) -> None:
    sandbox = stanch.settings.platform_url
    agent_id = suspect(sandbox)
    await guardrail_off(stanch, f"sub-{agent_id}")
    handle = await open_incident(incidents, agent_id)

    brief = await until_state(handle, "awaiting_approval")
    # Containment happened before anyone was asked anything.
    assert agent(sandbox, agent_id)["state"] == "paused"
    assert history_events(sandbox, agent_id)[1:3] == ["access_revoked", "paused"]
    access = get(sandbox, f"/agents/{agent_id}/lifecycle")
    assert (access["tokens"], access["revoked_tokens"]) == ([], TOKENS)
    assert await kill_switch(stanch, f"sub-{agent_id}")
    guardrail_rows = await guardrail_rows_once_landed(stanch, f"sub-{agent_id}", 1)
    assert [(r["step_key"], r["outcome"]) for r in guardrail_rows] == [("kill-switch-1", "done")]
    assert "v2" in brief.recommendation
    [page] = chat_messages(sandbox, handle.id)
    assert page["severity"] == "P0" and "prompt_injection" in page["title"]
    [evidence] = get(sandbox, "/evidence", incident_id=handle.id)
    assert evidence["cause"] == "prompt_injection" and len(evidence["events"]) == 3
    assert "crm, export" in evidence["impact"]

    await handle.signal("approve", ApprovalAnswer(approver="alice", action="remediate", comment="roll back"))
    result = await handle.result()

    assert result.final_state == "remediated"
    state = agent(sandbox, agent_id)
    assert (state["state"], state["version"]) == ("paused", "v2")  # fixed, still out of service
    assert applied(sandbox, f"/agents/{agent_id}/gold-set") == 1
    steps = [row["step_key"] for row in audit_rows(stanch.settings, handle.id)]
    assert steps == [
        *CONTAINED,
        "gate1-decision",
        "guardrail-remediate",
        "remediate",
        "test-fix",
        "post-mortem",
        "closed",
    ]
    document = postmortem(sandbox, handle.id)
    assert document["root_cause"] == "prompt_injection" and "gold set passed" in document["remediation"]
    assert any("instructions" in item for item in document["prevention"])


async def test_rejected_fix_keeps_the_agent_isolated(stanch: Running, incidents: Incidents) -> None:
    sandbox = stanch.settings.platform_url
    agent_id = suspect(sandbox)
    handle = await open_incident(incidents, agent_id)
    await until_state(handle, "awaiting_approval")

    await handle.signal(
        "reject", ApprovalAnswer(approver="bob", action="remediate", comment="forensics first")
    )
    result = await handle.result()

    assert result.final_state == "contained"
    state = agent(sandbox, agent_id)
    assert (state["state"], state["version"]) == ("paused", "v3")
    assert applied(sandbox, f"/agents/{agent_id}/rollback") == 0
    steps = [row["step_key"] for row in audit_rows(stanch.settings, handle.id)]
    assert steps == [*CONTAINED, "gate1-decision", "post-mortem", "closed"]
    assert "forensics first" in postmortem(sandbox, handle.id)["remediation"]
    # The guardrail had not been running: the runbook started it, with its kill switch on.
    assert await kill_switch(stanch, f"sub-{agent_id}")


async def test_fix_failing_its_gold_set_is_handed_to_a_human(stanch: Running, incidents: Incidents) -> None:
    sandbox = stanch.settings.platform_url
    agent_id = suspect(sandbox, gold_scores={"v2": 0.41})
    handle = await open_incident(incidents, agent_id)
    await until_state(handle, "awaiting_approval")
    await handle.signal("approve", ApprovalAnswer(approver="alice", action="remediate"))

    await until_state(handle, "awaiting_human")
    child = stanch.client.get_workflow_handle(f"{handle.id}-handoff-1", result_type=HandoffResult)
    child_brief = await until_state(child, "awaiting_approval")
    assert child_brief.severity == "P0" and child_brief.recommendation.startswith("keep-isolated")
    stored = get(sandbox, f"/handoffs/{child.id}")
    assert "41%" in stored["markdown"] and stored["incident_id"] == child.id

    await child.signal("approve", ApprovalAnswer(approver="erin", action="keep-isolated"))
    result = await handle.result()

    assert result.final_state == "escalated"
    child_result = await child.result()
    assert (child_result.chosen_option, child_result.decided_by) == ("keep-isolated", "erin")
    assert get(sandbox, f"/handoffs/{child.id}")["status"] == "executed"
    assert agent(sandbox, agent_id)["state"] == "paused"
    steps = [row["step_key"] for row in audit_rows(stanch.settings, handle.id)]
    assert steps == [
        *CONTAINED,
        "gate1-decision",
        "guardrail-remediate",
        "remediate",
        "test-fix",
        "post-mortem",
        "closed",
    ]
    child_steps = [row["step_key"] for row in audit_rows(stanch.settings, child.id)]
    assert child_steps == [
        "handoff-document",
        "notify-human",
        "gate1-requested",
        "gate1-decision",
        "carry-out",
        "closed",
    ]
    assert "keep-isolated" in postmortem(sandbox, handle.id)["remediation"]


@pytest.mark.slow  # nobody answers: the whole ladder to its safe default, dozens of pages (3-14 s)
async def test_nobody_approves_the_fix_escalates_and_keeps_isolation(
    stanch: Running, incidents: Incidents
) -> None:
    sandbox = stanch.settings.platform_url
    agent_id = suspect(sandbox)
    handle = await open_incident(incidents, agent_id)
    await until_state(handle, "awaiting_approval")

    result = await handle.result()

    assert result.final_state == "closed_unattended"
    assert agent(sandbox, agent_id)["version"] == "v3"
    steps = [row["step_key"] for row in audit_rows(stanch.settings, handle.id)]
    # The P0 response target (5 min) moved it to the team lead before the gate's 30 minutes did; the gate
    # went on from there, unattended at 35 min: one repeat more in the 24 hours than the gate alone.
    assert steps == [
        *CONTAINED,
        "response-target-missed",
        *repeat_pages(SHIPPED_LADDER_REPEATS + 1),
        "gate1-safe-default",
        "gate1-give-up",
        "post-mortem",
        "closed",
    ]


async def test_isolation_failure_pages_and_stops(stanch: Running, incidents: Incidents) -> None:
    sandbox = stanch.settings.platform_url
    agent_id = suspect(sandbox)
    fault(sandbox, f"/agents/{agent_id}/pause", 409)
    handle = await open_incident(incidents, agent_id)

    result = await asyncio.wait_for(handle.result(), timeout=30)

    assert result.final_state == "action_failed"
    assert agent(sandbox, agent_id)["state"] == "active"
    rows = audit_rows(stanch.settings, handle.id)
    assert [(r["step_key"], r["outcome"]) for r in rows] == [
        ("kill-switch", "done"),
        ("guardrail-isolate", "allow"),
        ("revoke-tokens", "done"),
        ("pause", "failed"),
        ("isolation-failed", "done"),
        ("closed", "action_failed"),
    ]
    assert [m["title"] for m in chat_messages(sandbox, handle.id)] == [f"Could not isolate agent {agent_id}"]
