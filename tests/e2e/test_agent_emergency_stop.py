"""End to end on the real stack: Temporal dev server, embedded Postgres, sandbox, worker and intake, each
its own process, started as `make dev` starts them. An Alertmanager payload goes in over HTTP; a human
approves with the `temporal` CLI (and, for a second incident, with the `stanch` CLI)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from stanch.ops.devstack import child_environment
from stanch.ops.samples import sample
from stanch.settings import Settings
from tests.helpers import audit_rows, http_client
from tests.stack import agent, applied, brief_state, eventually, post_alert, result_of, temporal_signal

pytestmark = pytest.mark.e2e

OPENING = ["pause", "tell-customer", "tell-oncall", "gate1-requested"]
APPROVED = [*OPENING, "gate1-decision", "rollback", "closed"]
BIN = Path(sys.executable).parent


def test_alertmanager_alert_pauses_agent_and_temporal_cli_approval_rolls_it_back(stack: Settings) -> None:
    response = post_alert(stack, sample("agent-hallucination", agent="support-bot"))
    assert response.status_code == 202, response.text
    [incident] = response.json()["incidents"]
    assert (incident["runbook"], incident["action"]) == ("agent_emergency_stop", "started")
    workflow_id = incident["workflow_id"]

    eventually(lambda: agent(stack, "support-bot")["state"] == "paused", "the agent to be paused")
    eventually(lambda: brief_state(stack, workflow_id) == "awaiting_approval", "the approval request")

    # Monitoring repeats itself: the same body again signals the incident and starts nothing new.
    again = post_alert(stack, sample("agent-hallucination", agent="support-bot"))
    assert again.json()["incidents"][0]["action"] == "signalled"

    temporal_signal(
        stack,
        workflow_id,
        "approve",
        {"approver": "alice", "action": "rollback", "comment": "v3 is bad"},
        identity="alice@laptop",
    )
    result = result_of(stack, workflow_id)

    assert result.final_state == "rolled_back"
    assert result.approval is not None and result.approval.decided_by == "alice"
    assert agent(stack, "support-bot")["version"] == "v2"
    assert applied(stack, "/agents/support-bot/pause") == 1
    assert applied(stack, "/agents/support-bot/rollback") == 1
    assert [row["step_key"] for row in audit_rows(stack, workflow_id)] == APPROVED


def test_stanch_cli_approves_and_audit_verify_passes(stack: Settings) -> None:
    agent_id = "billing-bot"
    http_client.put(
        f"{stack.platform_url}/agents/{agent_id}", json={"versions": ["v7", "v8"]}
    ).raise_for_status()
    response = post_alert(stack, sample("agent-hallucination", agent=agent_id))
    workflow_id = response.json()["incidents"][0]["workflow_id"]
    eventually(lambda: brief_state(stack, workflow_id) == "awaiting_approval", "the approval request")

    def stanch(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BIN / "stanch"), *args],
            env=child_environment(stack),
            capture_output=True,
            text=True,
            timeout=60,
        )

    listed = stanch("list", "--state", "awaiting_approval")
    assert workflow_id in listed.stdout, listed.stderr
    refused = stanch("approve", workflow_id, "rollback", "--as", "mallory")
    assert refused.returncode == 1 and "may not decide" in refused.stderr
    approved = stanch("approve", workflow_id, "rollback", "--as", "bob", "--comment", "rolling back")
    assert approved.returncode == 0, approved.stderr

    assert result_of(stack, workflow_id).final_state == "rolled_back"
    assert agent(stack, agent_id)["version"] == "v7"
    rows = audit_rows(stack, workflow_id)
    assert [row["step_key"] for row in rows] == APPROVED
    verified = stanch("audit", "verify", workflow_id)
    assert verified.returncode == 0 and "intact" in verified.stdout


def test_malformed_alert_opens_a_triage_incident_naming_the_field_and_starts_no_runbook(
    stack: Settings,
) -> None:
    body = sample("agent-hallucination", agent="ghost-bot")
    del body["alerts"][0]["fingerprint"]
    response = post_alert(stack, body)
    # Never a 4xx Alertmanager would drop: a human is paged through a triage incident instead.
    assert response.status_code == 202, response.text
    [entry] = response.json()["incidents"]
    assert (entry["workflow_id"], entry["runbook"], entry["action"]) == (
        "incident-triage-agent-hallucination-AgentHallucination-fingerprint",
        "triage",
        "triage",
    )
    assert applied(stack, "/agents/ghost-bot/pause") == 0


def test_history_from_temporal_workflow_show_replays_and_tells_the_story(
    stack: Settings, tmp_path: Path
) -> None:
    """An auditor's path with the plain `temporal` CLI: its JSON export loads, replays and reads."""
    agent_id = "audit-bot"
    http_client.put(
        f"{stack.platform_url}/agents/{agent_id}", json={"versions": ["v1", "v2"]}
    ).raise_for_status()
    workflow_id = post_alert(stack, sample("agent-hallucination", agent=agent_id)).json()["incidents"][0][
        "workflow_id"
    ]
    eventually(lambda: brief_state(stack, workflow_id) == "awaiting_approval", "the approval request")
    temporal_signal(
        stack, workflow_id, "approve", {"approver": "bob", "action": "rollback", "comment": "seen it"}
    )
    assert result_of(stack, workflow_id).final_state == "rolled_back"

    shown = subprocess.run(
        [
            str(BIN / "temporal"),
            "workflow",
            "show",
            "--address",
            stack.temporal_address,
            "--workflow-id",
            workflow_id,
            "--output",
            "json",
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=30,
    )
    exported = tmp_path / "history.json"
    exported.write_text(shown.stdout)

    def stanch(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BIN / "stanch"), *args],
            env=child_environment(stack),
            capture_output=True,
            text=True,
            timeout=60,
        )

    replayed = stanch("audit", "replay", str(exported))
    assert replayed.returncode == 0 and "1 replayed OK, 0 failed" in replayed.stdout, (
        replayed.stdout + replayed.stderr
    )
    story = stanch("audit", "timeline", str(exported))
    assert story.returncode == 0, story.stderr
    assert "bob" in story.stdout and "seen it" in story.stdout and "rolled_back" in story.stdout
