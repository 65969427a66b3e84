"""Keys change safely (issue 13 §8), end to end on the real stack (Temporal, Postgres, sandbox, worker, each
its own process): a key removed from the policy is refused by an incident already running as soon as
`stanch keys sync` — the CLI as an operator runs it — has delivered the new keyring, with no wait of any
kind; the key added in its place is accepted and the rollback happens."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from temporalio.client import WorkflowExecutionStatus, WorkflowUpdateFailedError

from schemas.approvals import DecisionOutcome
from schemas.briefs import Timeline
from schemas.incidents import IncidentResult
from schemas.signatures import Keyring
from stanch.ops.devstack import child_environment
from stanch.policy import load_policy
from stanch.settings import Settings
from stanch.signing import parse_public_key
from stanch.temporal_client import connect
from tests.helpers import Incidents, agent, new_agent, until_state
from tests.helpers_keys import key_pair, policy_with_keys, signed_approval

pytestmark = pytest.mark.e2e


async def test_a_decision_signed_with_a_key_removed_from_the_policy_is_refused_once_keys_sync_delivered_it(
    stack: Settings, tmp_path: Path
) -> None:
    client = await connect(stack)
    policy = load_policy(stack.config)
    old, old_line = key_pair("alice@old-laptop")
    new, new_line = key_pair("alice@new-laptop")
    # An incident the intake started while alice's old key was the policy's: signatures required everywhere.
    incident_policy = policy.incident_policy().model_copy(
        update={"signatures": "required", "keyring": Keyring(people={"alice": [old_line]})}
    )
    agent_id = new_agent(stack.platform_url)
    handle = await Incidents(client, stack.task_queue, policy).open(
        "agent_emergency_stop",
        workflow_id=f"incident-keys-{uuid.uuid4().hex[:8]}",
        alertname="AgentHallucination",
        target={"agent_id": agent_id, "customer": "acme"},
        labels={"agent": agent_id, "customer": "acme"},
        service="support",
        incident_policy=incident_policy,
    )
    try:
        await until_state(handle, "awaiting_approval")
        # Alice's new key is not the incident's yet.
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update("decide", await signed_approval(handle, "alice", new))
        assert "is not one of alice's keys" in str(refused.value.cause)

        # The operator replaces alice's key in the policy and sends it to what runs.
        rotated = policy_with_keys(tmp_path, {"alice": [new_line]})
        sync = await asyncio.to_thread(
            subprocess.run,
            [str(Path(sys.executable).parent / "stanch"), "keys", "sync"],
            env={**child_environment(stack), "STANCH_CONFIG": str(rotated)},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert sync.returncode == 0, sync.stderr
        assert "keyring sent to" in sync.stdout and " 0 running incidents" not in sync.stdout

        # At once: the revoked key is refused, and nothing happened to the agent.
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update("decide", await signed_approval(handle, "alice", old))
        assert "is not one of alice's keys" in str(refused.value.cause)
        assert agent(stack.platform_url, agent_id)["version"] == "v3"
        timeline = await handle.query("timeline", result_type=Timeline)
        fingerprint = {line: parse_public_key(line).fingerprint for line in (old_line, new_line)}
        assert (
            f"keyring updated: added alice {fingerprint[new_line]}; revoked alice {fingerprint[old_line]}"
            in [entry.text for entry in timeline.entries]
        )

        # The new key decides.
        outcome = await handle.execute_update(
            "decide", await signed_approval(handle, "alice", new), result_type=DecisionOutcome
        )
        assert outcome.accepted
        result: IncidentResult = await asyncio.wait_for(handle.result(), timeout=60)
        assert result.final_state == "rolled_back"
        assert agent(stack.platform_url, agent_id)["version"] == "v2"
    finally:
        if (await handle.describe()).status is WorkflowExecutionStatus.RUNNING:
            await handle.terminate(reason="test cleanup")
