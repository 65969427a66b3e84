"""Temporal Worker Versioning for Stanch's workers (issue 16): which version a worker is, which version is
current, and whether an old version has drained.

A worker with `STANCH_BUILD_ID` set is the version `<STANCH_DEPLOYMENT_NAME>.<build id>` of one worker
deployment. Incidents are PINNED to the version they started on (the worker's default behaviour), so a
parked incident finishes on the code it started with. The long-lived workflows (workflows/long_lived.py:
the guardrail, the daily report, the dead man's switch, triage, the post-mortem) are AUTO_UPGRADE: a
versioned worker registers copies of them that say so, and they move to each new current version at their
next task. No workflow's own `@workflow.defn` names a behaviour: an unversioned worker (make dev, the
tests) would have the server refuse its tasks. New workflows go to the deployment's *current* version,
which changes only when someone (or the first worker of a fresh deployment) sets it.

The SDK has no client API for deployments yet: these are the WorkflowService calls the `temporal worker
deployment` commands make, on the client's public `workflow_service`.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from google.protobuf.timestamp_pb2 import Timestamp
from pydantic import BaseModel
from temporalio.api.enums.v1 import (
    RoutingConfigUpdateState,
    VersionDrainageStatus,
    WorkerDeploymentVersionStatus,
)
from temporalio.api.workflowservice.v1 import (
    DescribeWorkerDeploymentRequest,
    SetWorkerDeploymentCurrentVersionRequest,
)
from temporalio.client import Client
from temporalio.common import VersioningBehavior, WorkerDeploymentVersion
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import WorkerDeploymentConfig

from stanch.settings import Settings

RPC_TIMEOUT = timedelta(seconds=10)
# How long `promote` waits for the new version's workers to poll before giving up (they register it).
POLLERS_WAIT = timedelta(seconds=60)


def deployment_version(settings: Settings) -> WorkerDeploymentVersion | None:
    """The version this worker is, or None for an unversioned worker (no `STANCH_BUILD_ID`)."""
    if settings.build_id is None:
        return None
    return WorkerDeploymentVersion(deployment_name=settings.deployment_name, build_id=settings.build_id)


def deployment_config(version: WorkerDeploymentVersion) -> WorkerDeploymentConfig:
    """Versioning on, every workflow PINNED unless its definition says otherwise (only the long-lived
    copies do, workflows/long_lived.py): no runbook needs to name a behaviour, and one that forgets is
    pinned, the safe side (it never meets code it did not start on; at worst its old version runs longer)."""
    return WorkerDeploymentConfig(
        version=version, use_worker_versioning=True, default_versioning_behavior=VersioningBehavior.PINNED
    )


class VersionState(BaseModel):
    build_id: str
    # inactive (polled, never current), current, ramping, draining (pinned workflows still open on it),
    # drained (none left: its workers may stop), created.
    status: str
    drainage_checked_at: datetime | None = None


class DeploymentState(BaseModel):
    deployment_name: str
    # None: no version was ever made current (new workflows go to unversioned workers, if any).
    current_build_id: str | None
    # False while the server still hands a routing change to its task queues: until then new workflows
    # may still start on the version that was current before.
    routing_settled: bool
    versions: list[VersionState]

    def version(self, build_id: str) -> VersionState | None:
        return next((version for version in self.versions if version.build_id == build_id), None)


def _status_name(status: WorkerDeploymentVersionStatus.ValueType) -> str:
    return (
        WorkerDeploymentVersionStatus.Name(status).removeprefix("WORKER_DEPLOYMENT_VERSION_STATUS_").lower()
    )


def _time(stamp: Timestamp) -> datetime | None:
    return stamp.ToDatetime(tzinfo=UTC) if stamp.seconds or stamp.nanos else None


async def describe_deployment(client: Client, deployment_name: str) -> DeploymentState | None:
    """The deployment's current version and every version's status; None if no versioned worker of it ever
    polled this namespace."""
    try:
        response = await client.workflow_service.describe_worker_deployment(
            DescribeWorkerDeploymentRequest(namespace=client.namespace, deployment_name=deployment_name),
            timeout=RPC_TIMEOUT,
        )
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            return None
        raise
    info = response.worker_deployment_info
    current = info.routing_config.current_deployment_version.build_id or None
    versions = []
    for summary in info.version_summaries:
        status = _status_name(summary.status)
        drainage = summary.drainage_info
        # Drainage refines a version that left routing; one promoted again is current whatever it last was.
        if status not in ("current", "ramping"):
            if drainage.status == VersionDrainageStatus.VERSION_DRAINAGE_STATUS_DRAINED:
                status = "drained"
            elif drainage.status == VersionDrainageStatus.VERSION_DRAINAGE_STATUS_DRAINING:
                status = "draining"
        versions.append(
            VersionState(
                build_id=summary.deployment_version.build_id,
                status=status,
                drainage_checked_at=_time(drainage.last_checked_time),
            )
        )
    settled = (
        info.routing_config_update_state != RoutingConfigUpdateState.ROUTING_CONFIG_UPDATE_STATE_IN_PROGRESS
    )
    return DeploymentState(
        deployment_name=deployment_name, current_build_id=current, routing_settled=settled, versions=versions
    )


async def set_current_version(
    client: Client, version: WorkerDeploymentVersion, *, wait_for_pollers: timedelta = POLLERS_WAIT
) -> None:
    """Make `version` current: new incidents start on it, AUTO_UPGRADE workflows (the long-lived ones) move
    to it at their next task; incidents pinned to an older version stay there. Waits for the version's workers to poll first
    (the server knows a version only once they have), so a deploy script can call it right after starting
    them, and returns once the task queues route by it. What `temporal worker deployment
    set-current-version` does, with the waits on either side."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_for_pollers.total_seconds()
    while True:
        state = await describe_deployment(client, version.deployment_name)
        if state is not None and state.current_build_id == version.build_id:
            if state.routing_settled or loop.time() > deadline:
                return
        elif state is not None and state.version(version.build_id) is not None:
            try:
                await client.workflow_service.set_worker_deployment_current_version(
                    SetWorkerDeploymentCurrentVersionRequest(
                        namespace=client.namespace,
                        deployment_name=version.deployment_name,
                        build_id=version.build_id,
                        identity=client.identity,
                    ),
                    timeout=RPC_TIMEOUT,
                )
                continue  # then wait for the task queues to take the change
            except RPCError as error:
                # The server refuses while the new version has not yet polled every task queue the current
                # one serves (workflow and activity): those would be left unversioned. Its workers poll
                # them within moments of starting; a version missing one for a minute lacks workers.
                if error.status != RPCStatusCode.FAILED_PRECONDITION or loop.time() > deadline:
                    raise
        elif loop.time() > deadline:
            raise LookupError(
                f"no worker of version {version.to_canonical_string()} has polled in {wait_for_pollers}: "
                "start its workers first"
            )
        await asyncio.sleep(0.2)


async def become_current_if_first(client: Client, version: WorkerDeploymentVersion) -> bool:
    """A fresh deployment has no current version, so nothing would take new incidents until someone set
    one: its first worker sets its own version current. Never once a version is current — a later build
    waits for `stanch deployment promote`, or a deploy could move new incidents onto untried code."""
    state = await describe_deployment(client, version.deployment_name)
    if state is not None and state.current_build_id is not None:
        return False
    await set_current_version(client, version)
    return True
