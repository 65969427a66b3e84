"""End to end on the real stack, one agent's whole life: `stanch fire`-style Alertmanager requests go in over
HTTP to onboard it, upgrade it and terminate it; people approve with the `temporal` and `stanch` CLIs."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pytest

from stanch.settings import REPO_ROOT, Settings
from tests.helpers import audit_rows, http_client
from tests.stack import agent, awaiting, eventually, fire, result_of, stanch_cli, temporal_signal

pytestmark = pytest.mark.e2e

BIN = Path(sys.executable).parent


def until_asked(settings: Settings, workflow_id: str, action: str) -> None:
    eventually(lambda: f"'{action}'" in awaiting(settings, workflow_id), f"the {action} approval request")


def test_agent_is_onboarded_upgraded_and_terminated_through_the_intake(stack: Settings) -> None:
    agent_id = f"e2e-lifecycle-{uuid.uuid4().hex[:6]}"
    sandbox = stack.platform_url

    # Onboarding: three approvals, the first with the temporal CLI, the others with stanch.
    onboarding = fire(stack, "agent-onboarding", agent_id)
    until_asked(stack, onboarding, "approve-scope")
    temporal_signal(
        stack,
        onboarding,
        "approve",
        {"approver": "erin", "action": "approve-scope"},
        identity="erin@laptop",
    )
    for action in ("approve-job-description", "approve-capabilities"):
        until_asked(stack, onboarding, action)
        approved = stanch_cli(stack, "approve", onboarding, action, "--as", "erin")
        assert approved.returncode == 0, approved.stderr
    assert result_of(stack, onboarding).final_state == "operational"
    assert (agent(stack, agent_id)["state"], agent(stack, agent_id)["version"]) == ("active", "v1")
    steps = [row["step_key"] for row in audit_rows(stack, onboarding)]
    assert steps[-6:] == ["health-check", "deployed", "gold-set-1", "activate", "operational", "closed"]

    # Upgrade to the sample's v4: snapshot, apply, gold set, then the owner validates.
    http_client.put(
        f"{sandbox}/agents/{agent_id}/lifecycle",
        json={"memory": ["invoices are due in 30 days"], "version_configs": {"v4": {"model": "large"}}},
    ).raise_for_status()
    upgrade = fire(stack, "agent-upgrade", agent_id)
    until_asked(stack, upgrade, "validate-upgrade")
    approved = stanch_cli(stack, "approve", upgrade, "validate-upgrade", "--as", "erin", "--comment", "good")
    assert approved.returncode == 0, approved.stderr
    assert result_of(stack, upgrade).final_state == "upgraded"
    assert agent(stack, agent_id)["version"] == "v4"
    assert [row["step_key"] for row in audit_rows(stack, upgrade)][:4] == [
        "identify-changes",
        "snapshot",
        "apply",
        "gold-set",
    ]

    # Termination: archive first, then the destructive part.
    http_client.put(
        f"{sandbox}/agents/{agent_id}/lifecycle",
        json={"tokens": ["tok-1"], "secrets": ["CRM_KEY"], "dependents": [f"{agent_id}-router"]},
    ).raise_for_status()
    termination = fire(stack, "agent-termination", agent_id)
    until_asked(stack, termination, "terminate")
    # A termination is destructive: the shipped policy needs it signed, as dave signs with his key.
    dave_signs = ("--key", str(REPO_ROOT / "config" / "dev-keys" / "dave"), "--yes")
    refused = stanch_cli(stack, "approve", termination, "terminate", "--as", "mallory")
    assert refused.returncode == 1 and "may not decide" in refused.stderr
    approved = stanch_cli(
        stack, "approve", termination, "terminate", "--as", "dave", "--comment", "replaced", *dave_signs
    )
    assert approved.returncode == 0, approved.stderr
    assert result_of(stack, termination).final_state == "terminated"

    assert agent(stack, agent_id)["state"] == "terminated"
    held = http_client.get(f"{sandbox}/agents/{agent_id}/lifecycle").json()
    assert (held["tokens"], held["secrets"]) == ([], [])
    assert held["retention_until"] and held["archives"][f"{agent_id}-archive-1"]["memory"]
    router = http_client.get(f"{sandbox}/agents/{agent_id}-router/lifecycle").json()
    assert [notice["from_agent"] for notice in router["notices"]] == [agent_id]
    rows = audit_rows(stack, termination)
    steps = [row["step_key"] for row in rows]
    assert steps.index("verify-archive") < steps.index("terminate") < steps.index("delete-secrets")
    assert steps[-2:] == [f"inform-{agent_id}-router", "closed"]
    log = next(row for row in rows if row["step_key"] == "termination-log")
    assert (log["actor"], log["outcome"]) == ("dave", "terminated") and "replaced" in log["reason"]
