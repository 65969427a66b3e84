"""Worker Versioning on a real dev server (issue 16): two versions of the worker side by side, an incident
parked on the old one finishes there while new incidents take the new one, a long-lived workflow (the
guardrail) moves to the new one, and the old version drains.

Both versions run in this process (the same code under two build ids: which build ran each workflow task
is what the server records, and what this proves), on a dev server of this module's own whose drainage
check runs every second instead of every few minutes (DRAINAGE_CONFIG)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import timedelta
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType, VersioningBehavior
from temporalio.client import Client, WorkflowHandle
from temporalio.common import WorkerDeploymentVersion
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from schemas.approvals import ApprovalAnswer
from schemas.briefs import Brief
from schemas.guardrail import (
    CHECK_UPDATE,
    GUARDRAIL_WORKFLOW,
    ActionCheck,
    GuardrailInput,
    Risk,
    Verdict,
    guardrail_workflow_id,
)
from stanch.deployments import become_current_if_first, describe_deployment
from stanch.settings import Settings, get_settings
from tests.helpers import Incidents, agent, cli, new_agent, until_state
from tests.helpers_intake import start_dev_server
from workers.worker import activity_implementations, build_worker

# Slow tier (`make test` runs it, `make test-fast` does not): a dev server and two worker versions of its own (~9 s).
pytestmark = pytest.mark.slow

# The server refreshes a draining version's status by counting its open pinned workflows in visibility,
# after a grace period for visibility to catch up; both default to minutes.
DRAINAGE_CONFIG = [
    "--dynamic-config-value",
    'matching.wv.VersionDrainageStatusRefreshInterval="1s"',
    "--dynamic-config-value",
    'matching.wv.VersionDrainageStatusVisibilityGracePeriod="1s"',
]


@pytest.fixture(scope="module")
async def versioned_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await start_dev_server(extra_args=DRAINAGE_CONFIG)
    yield env
    await env.shutdown()


async def build_ids_that_ran(client: Client, handle: WorkflowHandle[Any, Any]) -> list[str]:
    """The build id of the worker that completed each of the workflow's tasks, from its history."""
    history = await client.get_workflow_handle(handle.id).fetch_history()
    return [
        event.workflow_task_completed_event_attributes.deployment_version.build_id
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
    ]


async def versioning_of(handle: WorkflowHandle[Any, Any]) -> tuple[str, int]:
    info = (await handle.describe()).raw_description.workflow_execution_info.versioning_info
    return info.deployment_version.build_id, info.behavior


async def until_drained(client: Client, deployment: str, build_id: str) -> str:
    status = ""
    for _ in range(200):
        state = await describe_deployment(client, deployment)
        version = state.version(build_id) if state else None
        status = version.status if version else "missing"
        if status == "drained":
            return status
        await asyncio.sleep(0.1)
    return status


async def test_a_parked_incident_finishes_on_its_version_while_new_ones_and_the_guardrail_take_the_new(
    versioned_env: WorkflowEnvironment, settings: Settings, policy: Any
) -> None:
    client = versioned_env.client
    task_queue = f"versions-{uuid.uuid4().hex[:8]}"
    deployment = f"stanch-{uuid.uuid4().hex[:8]}"
    v1 = WorkerDeploymentVersion(deployment_name=deployment, build_id="v1")
    v2 = WorkerDeploymentVersion(deployment_name=deployment, build_id="v2")
    worker_settings = settings.model_copy(update={"task_queue": task_queue})
    incidents = Incidents(client, task_queue, policy)
    get_settings.cache_clear()
    env = {  # `stanch deployment ...` as an operator runs it against this server
        "STANCH_TEMPORAL_ADDRESS": client.service_client.config.target_host,
        "STANCH_NAMESPACE": client.namespace,
        "STANCH_DEPLOYMENT_NAME": deployment,
    }
    sandbox = settings.platform_url

    async with activity_implementations(worker_settings, client) as activities, AsyncExitStack() as old:
        await old.enter_async_context(build_worker(client, task_queue, activities, deployment=v1))
        # A fresh deployment: its first version makes itself current, as `stanch worker` does at start.
        assert await become_current_if_first(client, v1)
        parked_agent = new_agent(sandbox)
        parked = await incidents.agent_emergency_stop(parked_agent)
        await until_state(parked, "awaiting_approval")
        assert await versioning_of(parked) == ("v1", VersioningBehavior.VERSIONING_BEHAVIOR_PINNED)
        # A long-lived workflow (workflows/long_lived.py) starts on v1 too, but is not pinned to it.
        subsystem = f"versions-{uuid.uuid4().hex[:8]}"
        guardrail = await client.start_workflow(
            GUARDRAIL_WORKFLOW,
            GuardrailInput(subsystem=subsystem),
            id=guardrail_workflow_id(subsystem),
            task_queue=task_queue,
        )
        await guardrail.query("state")  # answered once its first task has run
        assert await versioning_of(guardrail) == ("v1", VersioningBehavior.VERSIONING_BEHAVIOR_AUTO_UPGRADE)

        # The new build starts beside the old one and is made current; only a promote moves the current.
        async with build_worker(client, task_queue, activities, deployment=v2):
            assert not await become_current_if_first(client, v2)
            promoted = await cli(["deployment", "promote", "v2"], env)
            assert promoted.exit_code == 0, promoted.output
            assert f"{deployment}.v2 is current" in promoted.output
            state = await describe_deployment(client, deployment)
            assert state is not None and state.current_build_id == "v2"
            assert (await cli(["deployment", "drained", "v1"], env)).exit_code == 1  # draining: keep it

            # The guardrail's next task after the promote runs on v2, and so do all after it.
            ask = ActionCheck(
                requested_by="versions-test",
                idempotency_key=f"{subsystem}/1",
                action="pause",
                kind="pause",
                risk=Risk.low,
            )
            verdict = await guardrail.execute_update(CHECK_UPDATE, ask, result_type=Verdict)
            assert (verdict.subsystem, verdict.idempotency_key) == (subsystem, ask.idempotency_key)
            ran = await build_ids_that_ran(client, guardrail)
            assert ran[0] == "v1" and ran[-1] == "v2", ran
            assert await versioning_of(guardrail) == (
                "v2",
                VersioningBehavior.VERSIONING_BEHAVIOR_AUTO_UPGRADE,
            )

            new_agent_id = new_agent(sandbox)
            new = await incidents.agent_emergency_stop(new_agent_id)
            await until_state(new, "awaiting_approval")

            # The parked incident is approved now, long after v2 became current: it finishes on v1.
            await parked.signal("approve", ApprovalAnswer(approver="alice", action="rollback", comment="ok"))
            assert (await parked.result()).final_state == "rolled_back"
            await new.signal("approve", ApprovalAnswer(approver="bob", action="rollback", comment="ok"))
            assert (await new.result()).final_state == "rolled_back"

            assert agent(sandbox, parked_agent)["version"] == "v2"  # the agent's own version, rolled back
            assert set(await build_ids_that_ran(client, parked)) == {"v1"}
            assert set(await build_ids_that_ran(client, new)) == {"v2"}
            assert await versioning_of(new) == ("v2", VersioningBehavior.VERSIONING_BEHAVIOR_PINNED)

            # With its last pinned incident closed, v1 drains, the guardrail still running (on v2): its
            # workers may stop.
            assert await until_drained(client, deployment, "v1") == "drained"
            drained = await cli(["deployment", "drained", "v1"], env)
            assert (drained.exit_code, drained.output.strip()) == (0, "v1: drained")
            listed = await cli(["deployment", "status"], env)
            assert f"deployment {deployment}: current v2" in listed.output
            assert {tuple(line.split()[:2]) for line in listed.output.splitlines()[1:]} == {
                ("v1", "drained"),
                ("v2", "current"),
            }

            # Once v1's workers stop, a query on an incident closed on v1 finds no worker to answer it
            # (docs/deployment.md: keep an old version a while if its closed incidents' briefs matter).
            await old.aclose()
            with pytest.raises(RPCError):
                await parked.query("brief", rpc_timeout=timedelta(seconds=1))
            assert (await new.query("brief", result_type=Brief)).state == "rolled_back"
            await guardrail.terminate("test over")
