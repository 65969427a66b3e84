"""`resolve` stands every runbook down, from any wait — a gate, a poll's pause, a child — on the
time-skipping server with real effects (sandbox, audit log in Postgres): no further effect reaches the
sandbox, the pending gate is withdrawn (and StanchAwaiting cleared), children are cancelled, who and why are
in the timeline and the audit log, the incident closes `resolved`, and the next alert for the same key opens
a NEW incident through the intake's own code path."""

from __future__ import annotations

import inspect
import uuid
from datetime import timedelta
from typing import Any

from temporalio.client import WorkflowExecutionStatus, WorkflowHandle
from temporalio.common import SearchAttributeKey
from temporalio.worker._workflow_instance import _WorkflowInstanceImpl

from schemas.alerts import Alert
from schemas.approvals import ApprovalAnswer, Resolution
from schemas.briefs import Timeline
from schemas.handoff import HandoffResult
from schemas.incidents import IncidentResult
from stanch.policy import Policy
from tests.helpers import (
    Incidents,
    Running,
    agent,
    applied,
    audit_rows,
    chat_messages,
    cli,
    get,
    new_agent,
    put,
    until_state,
)
from workers.intake.app import TemporalGateway
from workers.intake.routing import route_alert

AWAITING = SearchAttributeKey.for_keyword_list("StanchAwaiting")


def steps(stanch: Running, workflow_id: str) -> list[str]:
    return [row["step_key"] for row in audit_rows(stanch.settings, workflow_id)]


def row(stanch: Running, workflow_id: str, step: str) -> dict[str, Any]:
    return next(r for r in audit_rows(stanch.settings, workflow_id) if r["step_key"] == step)


async def awaiting(handle: WorkflowHandle[Any, Any]) -> list[str]:
    """StanchAwaiting as the server holds it (describe: the time-skipping server has no list queries)."""
    described = await handle.describe()
    value = described.typed_search_attributes.get(AWAITING)
    return sorted(value) if value else []


async def stood_down(stanch: Running, handle: WorkflowHandle[Any, Any], by: str, note: str) -> IncidentResult:
    """The run closed `resolved` by `by`, with the stand-down in its timeline and audit log."""
    result: IncidentResult = await handle.result()
    assert (result.final_state, result.resolved_by) == ("resolved", by)
    resolved = row(stanch, handle.id, "resolved")
    assert (resolved["actor"], resolved["outcome"], resolved["reason"]) == (by, "stood down", note)
    closed = audit_rows(stanch.settings, handle.id)[-1]
    assert (closed["step_key"], closed["actor"], closed["outcome"]) == ("closed", by, "resolved")
    timeline = await handle.query("timeline", result_type=Timeline)
    texts = [entry.text for entry in timeline.entries]
    assert f"marked resolved by {by}: {note}" in texts
    assert any(text.startswith(f"stood down for {by}'s resolve") for text in texts)
    return result


# ---- from a gate, through the CLI; the next alert for the key opens a new incident -----------------------


def hallucination(agent_id: str, fingerprint: str) -> Alert:
    return Alert(
        source="alertmanager",
        name="AgentHallucination",
        fingerprint=fingerprint,
        labels={"alertname": "AgentHallucination", "agent": agent_id, "customer": "acme"},
        annotations={"summary": f"{agent_id} promised a refund nobody approved"},
    )


async def test_resolve_at_the_gate_withdraws_it_changes_nothing_and_the_next_alert_opens_a_new_incident(
    stanch: Running, policy: Policy, cli_env: dict[str, str]
) -> None:
    sandbox = stanch.settings.platform_url
    agent_id = new_agent(sandbox)
    alert = hallucination(agent_id, uuid.uuid4().hex[:16])
    intake = TemporalGateway(
        stanch.settings.model_copy(update={"task_queue": stanch.task_queue}), stanch.client
    )
    first = await intake.open_or_signal(route_alert(policy, alert, "alerts.0"))
    handle = stanch.client.get_workflow_handle(first.workflow_id, result_type=IncidentResult)
    await until_state(handle, "awaiting_approval")
    first_run = (await handle.describe()).run_id
    # Who may decide the rollback now: the policy's oncall and lead people.
    assert await awaiting(handle) == ["alice", "bob", "carol", "dave"]

    resolved = await cli(["resolve", handle.id, "--as", "bob", "--note", "rolled back by hand"], cli_env)
    assert resolved.exit_code == 0, resolved.output
    await stood_down(stanch, handle, "bob", "rolled back by hand")

    assert steps(stanch, handle.id) == [
        "pause",
        "tell-customer",
        "tell-oncall",
        "gate1-requested",
        "gate1-withdrawn",
        "resolved",
        "closed",
    ]
    withdrawn = row(stanch, handle.id, "gate1-withdrawn")
    assert (withdrawn["actor"], withdrawn["outcome"]) == ("bob", "withdrawn")
    assert await awaiting(handle) == []
    # Left as it was: paused on its version, nothing rolled back, nobody paged — also hours later.
    sent = len(chat_messages(sandbox, handle.id))
    await stanch.env.sleep(timedelta(hours=2))
    assert len(chat_messages(sandbox, handle.id)) == sent == 2
    assert (agent(sandbox, agent_id)["state"], agent(sandbox, agent_id)["version"]) == ("paused", "v3")
    assert applied(sandbox, f"/agents/{agent_id}/rollback") == 0

    # The same alert fires again: a new incident (a new run under the same id), not the closed one.
    again = await intake.open_or_signal(route_alert(policy, alert, "alerts.0"))
    assert again.workflow_id == handle.id
    latest = stanch.client.get_workflow_handle(handle.id, result_type=IncidentResult)
    described = await latest.describe()
    assert described.run_id != first_run and described.status is WorkflowExecutionStatus.RUNNING
    await until_state(latest, "awaiting_approval")
    assert applied(sandbox, f"/agents/{agent_id}/pause") == 2  # the new run's own pause (its own key)
    assert await awaiting(latest) == [
        "alice",
        "bob",
        "carol",
        "dave",
    ]  # a new question (left open: teardown ends it)


# ---- from a poll's pause --------------------------------------------------------------------------------


async def test_resolve_while_polling_the_provider_stops_the_polls_and_tells_nobody(
    stanch: Running, incidents: Incidents
) -> None:
    sandbox = stanch.settings.platform_url
    channel = f"wa-{uuid.uuid4().hex[:8]}"
    put(sandbox, f"/chat/channels/{channel}", {"webhook_events_last_5m": 0, "provider_status": "down"})
    handle = await incidents.channel_down(channel)
    await until_state(handle, "watching_provider")
    await stanch.env.sleep(timedelta(minutes=11))  # two polls in
    await until_state(handle, "watching_provider")
    reads = get(sandbox, f"/chat/channels/{channel}")["provider_reads"]
    assert reads >= 2

    await handle.signal("resolve", Resolution(by="alice", note="provider says it is fixed"))
    await stood_down(stanch, handle, "alice", "provider says it is fixed")
    await stanch.env.sleep(timedelta(hours=1))

    assert get(sandbox, f"/chat/channels/{channel}")["provider_reads"] == reads  # no poll after the resolve
    assert steps(stanch, handle.id) == ["diagnosis", "provider-down", "resolved", "closed"]
    assert "customer" not in [m["channel"] for m in chat_messages(sandbox, handle.id)]
    assert row(stanch, handle.id, "resolved")["reason"] == "provider says it is fixed"


# ---- from a child --------------------------------------------------------------------------------------


async def test_resolve_while_the_handoff_child_waits_cancels_the_child_and_closes_the_incident(
    stanch: Running, incidents: Incidents
) -> None:
    sandbox = stanch.settings.platform_url
    agent_id = f"sec-agent-{uuid.uuid4().hex[:8]}"
    put(sandbox, f"/agents/{agent_id}", {"versions": ["v1", "v2", "v3"], "gold_scores": {"v2": 0.41}})
    handle = await incidents.open(
        "security_incident",
        alertname="AgentPromptInjection",
        labels={"agent": agent_id, "kind": "prompt_injection"},
        annotations={"summary": f"{agent_id} followed instructions hidden in an attachment"},
        severity=incidents.policy.route_named("security-p0").severity,  # type: ignore[union-attr]
        service="agents",
        signal_alert=False,
        target={"agent_id": agent_id, "kind": "prompt_injection", "subsystem": f"sub-{agent_id}"},
    )
    await until_state(handle, "awaiting_approval")
    await handle.signal("approve", ApprovalAnswer(approver="alice", action="remediate"))
    await until_state(handle, "awaiting_human")
    child = stanch.client.get_workflow_handle(f"{handle.id}-handoff-1", result_type=HandoffResult)
    await until_state(child, "awaiting_approval")
    assert await awaiting(child)  # the child's question waits for its deciders

    await handle.signal("resolve", Resolution(by="carol", note="agent retired by hand"))
    await stood_down(stanch, handle, "carol", "agent retired by hand")

    assert (await child.describe()).status is WorkflowExecutionStatus.CANCELED
    assert await awaiting(child) == []
    assert row(stanch, child.id, "gate1-requested")["outcome"] == "pending"
    assert "gate1-decision" not in steps(stanch, child.id)
    assert get(sandbox, f"/handoffs/{child.id}")["status"] != "executed"  # the child carried out nothing
    assert agent(sandbox, agent_id)["state"] == "paused"  # isolation stays, as the runbook left it
    assert steps(stanch, handle.id)[-2:] == ["resolved", "closed"]


def test_the_sdk_still_keeps_pending_activities_where_activities_in_flight_reads_them() -> None:
    # workflows/steps/incident.py `activities_in_flight` reads this private attribute of the workflow
    # instance (the running event loop): an SDK upgrade that moves it must fail here, not in a workflow.
    assert "self._pending_activities" in inspect.getsource(_WorkflowInstanceImpl.__init__)
