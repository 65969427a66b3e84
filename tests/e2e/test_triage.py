"""End to end on the real stack (Temporal dev server, Postgres, sandbox, worker, each its own process): a
triage incident pages on-call, `stanch triage` hands it to agent_emergency_stop, which pauses the agent
and outlives the triage incident; `stanch approve` then rolls the agent back.

The triage incident is started here as the intake starts it (signal-with-start, `alert` first); the
intake's side, from a real Alertmanager, is tested with the intake."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid

import pytest
from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError

from schemas.triage import TRIAGE_WORKFLOW, TriageInput
from stanch.policy import load_policy
from stanch.settings import Settings
from stanch.temporal_client import connect
from tests.helpers import Incidents, audit_rows, chat_messages, http_client
from tests.stack import agent, brief_state, eventually, hand_over, result_of, stanch_cli, terminate_running

pytestmark = pytest.mark.e2e


def open_triage(settings: Settings, agent_id: str) -> TriageInput:
    """The triage incident the intake opens for an `AgentHallucination` without its `agent` label."""

    async def start() -> TriageInput:
        incidents = Incidents(await connect(settings), settings.task_queue, load_policy(settings.config))
        _, triage = await incidents.agent_hallucination_triage(
            service=agent_id,
            summary=f"{agent_id} promised a refund it cannot give",
            workflow_id="incident-triage-agent-hallucination-AgentHallucination-labels.agent-{fingerprint}",
        )
        return triage

    return asyncio.run(start())


def status(settings: Settings, workflow_id: str) -> WorkflowExecutionStatus | None:
    async def describe() -> WorkflowExecutionStatus | None:
        return (await (await connect(settings)).get_workflow_handle(workflow_id).describe()).status

    return asyncio.run(describe())


def test_stanch_triage_hands_a_triage_incident_to_its_runbook_which_pauses_the_agent(stack: Settings) -> None:
    agent_id = f"triage-bot-{uuid.uuid4().hex[:6]}"
    http_client.put(
        f"{stack.platform_url}/agents/{agent_id}", json={"versions": ["v1", "v2"]}
    ).raise_for_status()
    triage = open_triage(stack, agent_id)
    child_id = triage.runbook_incident_ids["agent_emergency_stop"]
    try:
        eventually(lambda: brief_state(stack, triage.incident_id) == "awaiting_triage", "the triage to wait")
        pages = chat_messages(stack.platform_url, triage.incident_id)
        assert [p["channel"] for p in pages] == ["on-call"]
        assert "labels.agent" in pages[0]["text"] and "agent-hallucination" in pages[0]["text"]

        refused = stanch_cli(
            stack, "triage", triage.incident_id, "--runbook", "agent_emergency_stop", "--by", "bob"
        )
        assert refused.returncode == 1 and "target.agent_id: Field required" in refused.stderr

        done = hand_over(stack, triage.incident_id, agent_id, by="bob")
        assert done.returncode == 0, done.stderr
        assert f"as {child_id} (by bob)" in done.stdout

        assert result_of(stack, triage.incident_id).final_state == "handed_over"
        eventually(lambda: agent(stack, agent_id)["state"] == "paused", "the agent to be paused")
        eventually(
            lambda: brief_state(stack, child_id) == "awaiting_approval", "the runbook's approval request"
        )
        assert status(stack, child_id) == WorkflowExecutionStatus.RUNNING  # outlives its triage incident
        steps = [row["step_key"] for row in audit_rows(stack, triage.incident_id)]
        assert steps == ["page", "triaged", "handed-over", "closed"]

        approved = stanch_cli(stack, "approve", child_id, "rollback", "--as", "alice")
        assert approved.returncode == 0, approved.stderr
        assert result_of(stack, child_id).final_state == "rolled_back"
        assert agent(stack, agent_id)["version"] == "v1"
    finally:
        for workflow_id in (triage.incident_id, child_id):
            with contextlib.suppress(RPCError):  # never started: nothing to clean up
                terminate_running(stack, [workflow_id])


def test_the_readme_tour_an_alert_without_its_label_is_triaged_then_handed_over_from_the_cli(
    stack: Settings,
) -> None:
    """What the README's tour does: `stanch fire --without agent`, read the brief, `stanch triage`."""
    agent_id = f"tour-bot-{uuid.uuid4().hex[:6]}"
    http_client.put(
        f"{stack.platform_url}/agents/{agent_id}", json={"versions": ["v1", "v2"]}
    ).raise_for_status()
    fired = stanch_cli(stack, "fire", "agent-hallucination", "--agent", agent_id, "--without", "agent")
    assert fired.returncode == 0, fired.stderr
    [entry] = json.loads(fired.stdout)["incidents"]
    assert entry["action"] == "triage" and entry["runbook"] == TRIAGE_WORKFLOW
    triage_id = entry["workflow_id"]
    assert triage_id.startswith("incident-triage-agent-hallucination-AgentHallucination")
    child_id = ""
    try:
        eventually(lambda: brief_state(stack, triage_id) == "awaiting_triage", "the triage to wait")
        brief = stanch_cli(stack, "brief", triage_id)
        assert brief.returncode == 0, brief.stderr
        assert "labels.agent" in brief.stdout and "stanch triage" in brief.stdout

        done = hand_over(stack, triage_id, agent_id, by="bob")
        assert done.returncode == 0, done.stderr
        child_id = done.stdout.split(" as ", 1)[1].split()[0]
        eventually(lambda: agent(stack, agent_id)["state"] == "paused", "the agent to be paused")
        assert result_of(stack, triage_id).final_state == "handed_over"
    finally:
        for workflow_id in (triage_id, child_id):
            if workflow_id:
                with contextlib.suppress(RPCError):
                    terminate_running(stack, [workflow_id])
