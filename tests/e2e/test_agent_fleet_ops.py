"""End to end on the real stack for the fleet-operations procedures (seed 004): a security incident and a
handoff to a human, each fired as an Alertmanager alert over HTTP and answered from a terminal, and the
daily cockpit report's schedule applied by the worker and by `stanch schedule apply`."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from stanch.ops.devstack import child_environment
from stanch.ops.samples import sample
from stanch.schedules import DAILY_REPORT_SCHEDULE
from stanch.settings import Settings
from stanch.temporal_client import connect
from tests.helpers import audit_rows, http_client
from tests.stack import agent, applied, brief_state, eventually, post_alert, result_of, temporal_signal

pytestmark = pytest.mark.e2e

BIN = Path(sys.executable).parent


def stanch_cli(stack: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "stanch"), *args], env=child_environment(stack), capture_output=True, text=True, timeout=60
    )


def test_prompt_injection_is_contained_then_fixed_on_temporal_cli_approval(stack: Settings) -> None:
    agent_id = "fleet-e2e-sec-bot"
    http_client.put(
        f"{stack.platform_url}/agents/{agent_id}", json={"versions": ["v4", "v5"]}
    ).raise_for_status()
    response = post_alert(stack, sample("security-p0", agent=agent_id))
    assert response.status_code == 202, response.text
    [incident] = response.json()["incidents"]
    assert (incident["runbook"], incident["action"]) == ("security_incident", "started")
    workflow_id = incident["workflow_id"]

    eventually(lambda: brief_state(stack, workflow_id) == "awaiting_approval", "the remediation request")
    assert agent(stack, agent_id)["state"] == "paused"
    assert applied(stack, f"/agents/{agent_id}/tokens", method="DELETE") == 1

    temporal_signal(
        stack,
        workflow_id,
        "approve",
        {"approver": "alice", "action": "remediate", "comment": "roll back to v4"},
        identity="alice@laptop",
    )
    result = result_of(stack, workflow_id)

    assert result.final_state == "remediated"
    state = agent(stack, agent_id)
    assert (state["state"], state["version"]) == ("paused", "v4")
    assert applied(stack, f"/agents/{agent_id}/gold-set") == 1
    assert [row["step_key"] for row in audit_rows(stack, workflow_id)] == [
        "kill-switch",
        "guardrail-isolate",
        "revoke-tokens",
        "pause",
        "page",
        "collect-evidence",
        "gate1-requested",
        "gate1-decision",
        "guardrail-remediate",
        "remediate",
        "test-fix",
        "post-mortem",
        "closed",
    ]
    postmortems = http_client.get(
        f"{stack.platform_url}/postmortems", params={"incident_id": workflow_id}
    ).json()
    assert len(postmortems) == 1 and postmortems[0]["root_cause"] == "prompt_injection"


def test_handoff_alert_is_decided_with_the_stanch_cli(stack: Settings) -> None:
    agent_id = "fleet-e2e-handoff-bot"
    http_client.put(f"{stack.platform_url}/agents/{agent_id}", json={"versions": ["v1"]}).raise_for_status()
    response = post_alert(stack, sample("escalate-to-human", agent=agent_id))
    assert response.status_code == 202, response.text
    [incident] = response.json()["incidents"]
    assert incident["runbook"] == "escalation_to_human"
    workflow_id = incident["workflow_id"]
    eventually(lambda: brief_state(stack, workflow_id) == "awaiting_approval", "the handoff decision")

    listed = stanch_cli(stack, "list", "--state", "awaiting_approval")
    assert workflow_id in listed.stdout and "P1" in listed.stdout, listed.stderr
    rejected = stanch_cli(
        stack,
        "reject",
        workflow_id,
        "human-takeover",
        "--as",
        "dave",
        "--comment",
        "pause-agent until Monday",
    )
    # Judge the output, not the exit code: the SDK sometimes aborts at interpreter exit (see DESIGN.md).
    assert "human-takeover rejected (by dave)" in rejected.stdout, rejected.stderr

    result = result_of(stack, workflow_id)
    assert result.final_state == "decided"
    desk = http_client.get(f"{stack.platform_url}/handoffs/{workflow_id}").json()
    assert (desk["status"], desk["executed_option"], desk["decided_by"]) == (
        "executed",
        "pause-agent",
        "dave",
    )
    rows = audit_rows(stack, workflow_id)
    assert [row["step_key"] for row in rows] == [
        "handoff-document",
        "notify-human",
        "gate1-requested",
        "gate1-decision",
        "carry-out",
        "closed",
    ]
    assert rows[4]["actor"] == "dave"


def test_daily_report_schedule_exists_once_after_worker_start_and_cli_apply(stack: Settings) -> None:
    first = stanch_cli(stack, "schedule", "apply")
    second = stanch_cli(stack, "schedule", "apply", "--hour", "8")
    # The worker applied it at start, so both CLI runs update the one schedule. (Output, not exit codes:
    # the SDK sometimes aborts at interpreter exit.)
    assert f"{DAILY_REPORT_SCHEDULE}: updated (daily at 07:00 UTC)" in first.stdout, first.stderr
    assert f"{DAILY_REPORT_SCHEDULE}: updated (daily at 08:00 UTC)" in second.stdout, second.stderr

    async def schedule_ids() -> list[str]:
        client = await connect(stack)
        return [listed.id async for listed in await client.list_schedules()]

    assert eventually(lambda: asyncio.run(schedule_ids()) == [DAILY_REPORT_SCHEDULE], "one schedule listed")
