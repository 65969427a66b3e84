"""`stanch keys` (issue 13 §8): `list` prints the policy's keys as `ssh-keygen -lf` does, demo ones marked;
`sync` sends the policy's keyring to every running incident and guardrail — and to nothing else — in one
visibility list, after which a guardrail refuses a key the policy no longer holds and takes the new one.
On an SDK-started dev server (the time-skipping server has no visibility store), with the real guardrail,
activities and Postgres, and a probe workflow that records what it was sent."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.testing import WorkflowEnvironment

from activities.guardrail import GuardrailActivities
from schemas.guardrail import (
    KILL_SWITCH_UPDATE,
    ActionCheck,
    GuardrailRequest,
    GuardrailState,
    KillSwitchMode,
    Risk,
    guardrail_workflow_id,
)
from schemas.signatures import Keyring
from stanch.ops.keys import running_holders_query
from stanch.policy import load_policy
from stanch.settings import REPO_ROOT, Settings, get_settings
from stanch.trust import TRUST_DEMO_KEYS
from tests.helpers import Running, cli
from tests.helpers_keys import key_pair, policy_with_keys, signed_kill_switch_change
from tests.probes.keys_probe import KeysProbe, KeysProbeInput, KeysReceived
from workers.worker import activity_implementations, build_worker
from workflows.steps.incident import RUNBOOK

DEV_POLICY = REPO_ROOT / "config" / "dev.toml"
DEV_KEYS = REPO_ROOT / "config" / "dev-keys"


# ---- list ------------------------------------------------------------------------------------------------


def ssh_keygen_fingerprint(public_key_file: Path) -> str:
    keygen = shutil.which("ssh-keygen")
    if keygen is None:
        pytest.skip("ssh-keygen is not installed")
    return subprocess.run(
        [keygen, "-lf", str(public_key_file)], capture_output=True, text=True, check=True
    ).stdout.strip()


async def test_keys_list_prints_each_key_as_ssh_keygen_does_and_marks_the_demo_ones(tmp_path: Path) -> None:
    get_settings.cache_clear()
    result = await cli(["keys", "list"], {"STANCH_CONFIG": str(DEV_POLICY)})
    assert result.exit_code == 0, result.output
    lines = [line.strip() for line in result.output.splitlines()]
    for person in ("alice", "bob", "carol", "dave", "erin"):
        at = lines.index(f"{person} (demo keys: trusted only by stanch dev and the tests)")
        assert lines[at + 1] == ssh_keygen_fingerprint(DEV_KEYS / f"{person}.pub")

    # A person's own key with no comment, and a second key: both as ssh-keygen prints them, not demo.
    _, plain = key_pair()
    _, laptop = key_pair("erin@laptop")
    policy = policy_with_keys(tmp_path, {"erin": [plain, laptop]})
    get_settings.cache_clear()
    result = await cli(["keys", "list"], {"STANCH_CONFIG": str(policy)})
    assert result.exit_code == 0, result.output
    lines = [line.strip() for line in result.output.splitlines()]
    at = lines.index("erin")
    for offset, line in enumerate((plain, laptop), start=1):
        (tmp_path / "key.pub").write_text(line + "\n")
        assert lines[at + offset] == ssh_keygen_fingerprint(tmp_path / "key.pub")
    assert lines[at + 1].endswith(" no comment (ED25519)")


# ---- sync ------------------------------------------------------------------------------------------------


@pytest.fixture
async def dev_stanch(dev_env: WorkflowEnvironment, settings: Settings) -> AsyncIterator[Running]:
    task_queue = f"keys-{uuid.uuid4().hex[:8]}"
    worker_settings = settings.model_copy(update={"task_queue": task_queue})
    async with activity_implementations(worker_settings, dev_env.client) as activities:
        async with build_worker(dev_env.client, task_queue, activities, extra_workflows=[KeysProbe]):
            yield Running(dev_env, dev_env.client, task_queue, settings)
            # Each test counts what `keys sync` reaches on this server: leave nothing running for the next.
            async for execution in dev_env.client.list_workflows("ExecutionStatus = 'Running'"):
                await dev_env.client.get_workflow_handle(execution.id).terminate(reason="test cleanup")


def cli_env(client: Client, config: Path) -> dict[str, str]:
    get_settings.cache_clear()
    return {
        "STANCH_TEMPORAL_ADDRESS": client.service_client.config.target_host,
        "STANCH_NAMESPACE": client.namespace,
        "STANCH_CONFIG": str(config),
    }


async def start_probe(
    stanch: Running, *, listed_as_incident: bool = True, finish_at_once: bool = False
) -> WorkflowHandle[KeysProbe, KeysReceived]:
    attributes = [SearchAttributePair(RUNBOOK, "keys_probe")] if listed_as_incident else []
    return await stanch.client.start_workflow(
        KeysProbe.run,
        KeysProbeInput(finish_at_once=finish_at_once),
        id=f"incident-keys-{uuid.uuid4().hex[:8]}",
        task_queue=stanch.task_queue,
        search_attributes=TypedSearchAttributes(attributes),
    )


async def start_guardrail(stanch: Running, keyring: Keyring) -> str:
    """A guardrail as the worker's ask activity starts it, checking kill-switch changes against `keyring`."""
    subsystem = f"gw-{uuid.uuid4().hex[:8]}"
    asker = GuardrailActivities(stanch.client, stanch.task_queue, signatures="destructive", keyring=keyring)
    await asker.ask(
        GuardrailRequest(
            subsystem=subsystem,
            check=ActionCheck(
                requested_by="incident-test",
                idempotency_key=f"incident-test/run/{uuid.uuid4().hex[:8]}",
                action="restart the gateway",
                kind="restart",
                risk=Risk.medium,
                reason="memory high",
            ),
        )
    )
    return subsystem


async def listed(client: Client, running: set[str], ended: set[str]) -> None:
    """Visibility is eventually consistent: wait (bounded) until it lists what `keys sync` will read."""
    deadline = time.monotonic() + 20
    while True:
        shown = {execution.id async for execution in client.list_workflows(running_holders_query())}
        if running <= shown and not ended & shown:
            return
        assert time.monotonic() < deadline, f"visibility lists {shown}, not {running}"
        await asyncio.sleep(0.2)


async def signals_received(handle: WorkflowHandle[Any, Any]) -> list[str]:
    history = await handle.fetch_history()
    return [
        event.workflow_execution_signaled_event_attributes.signal_name
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
    ]


async def test_keys_sync_sends_the_policys_keyring_to_every_running_incident_and_guardrail_and_nothing_else(
    dev_stanch: Running, tmp_path: Path
) -> None:
    client = dev_stanch.client
    old, old_line = key_pair("alice@old-laptop")
    new, new_line = key_pair("alice@new-laptop")
    policy = policy_with_keys(tmp_path, {"alice": [new_line]})

    incidents = [await start_probe(dev_stanch), await start_probe(dev_stanch)]
    ended = await start_probe(dev_stanch, finish_at_once=True)
    await ended.result()
    bystander = await start_probe(dev_stanch, listed_as_incident=False)
    subsystem = await start_guardrail(dev_stanch, Keyring(people={"alice": [old_line]}))
    guardrail = client.get_workflow_handle(guardrail_workflow_id(subsystem))
    await listed(client, {*(handle.id for handle in incidents), guardrail.id}, {ended.id})

    # Before: the guardrail knows only alice's old key.
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        change = await signed_kill_switch_change(client, subsystem, "alice", new)
        await guardrail.execute_update(KILL_SWITCH_UPDATE, change, result_type=GuardrailState)
    assert "is not one of alice's keys" in str(refused.value.cause)

    result = await cli(["keys", "sync"], cli_env(client, policy))
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        f"keyring of {policy}: 1 person, 0 services, 1 key",
        "keyring sent to 2 running incidents and 1 guardrail",
    ]

    expected = load_policy(policy).keyring()
    for handle in incidents:
        received = await handle.query(KeysProbe.get_received)
        assert received.keyrings == [expected]
    assert await signals_received(ended) == []
    assert await signals_received(bystander) == []

    # After: the key removed from the policy is refused, the one added to it is taken.
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        change = await signed_kill_switch_change(client, subsystem, "alice", old)
        await guardrail.execute_update(KILL_SWITCH_UPDATE, change, result_type=GuardrailState)
    assert "is not one of alice's keys" in str(refused.value.cause)
    change = await signed_kill_switch_change(client, subsystem, "alice", new)
    state = await guardrail.execute_update(KILL_SWITCH_UPDATE, change, result_type=GuardrailState)
    assert state.mode is KillSwitchMode.off


async def test_keys_sync_refuses_to_send_demo_keys_outside_the_dev_stack(dev_stanch: Running) -> None:
    incident = await start_probe(dev_stanch)
    await listed(dev_stanch.client, {incident.id}, set())
    # An operator's shell (the tests trust demo keys for themselves: conftest.py); only "1" trusts them.
    env = cli_env(dev_stanch.client, DEV_POLICY) | {TRUST_DEMO_KEYS: ""}

    result = await cli(["keys", "sync"], env)
    assert result.exit_code == 2, result.output
    [line] = result.output.splitlines()
    assert line.startswith(
        f"stanch: policy file {DEV_POLICY}: alice, bob, carol, dave, erin and approvals.services.console sign with demo keys"
    )
    assert line.endswith("against the dev stack, load its environment: set -a; . .stanch/dev.env; set +a")
    assert await signals_received(incident) == []

    # What the dev stack's environment file says: then the demo keys go to the dev stack's incidents.
    result = await cli(["keys", "sync"], env | {TRUST_DEMO_KEYS: "1"})
    assert result.exit_code == 0, result.output
    assert "keyring sent to 1 running incident and 0 guardrails" in result.output
    assert (await incident.query(KeysProbe.get_received)).keyrings == [load_policy(DEV_POLICY).keyring()]
