"""The Temporal worker: runs every runbook and the activities they call."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import httpx
from psycopg_pool import AsyncConnectionPool
from temporalio.client import Client
from temporalio.common import WorkerDeploymentVersion
from temporalio.plugin import SimplePlugin
from temporalio.runtime import Runtime
from temporalio.service import RPCError
from temporalio.worker import PollerBehaviorSimpleMaximum, Worker

from activities.adapters import AdapterConfigError, AdapterContext
from activities.notify import NotifyActivities
from activities.systems import Systems, check_systems, open_systems
from schemas.targets import check_route_targets
from stanch.deployments import become_current_if_first, deployment_config, deployment_version
from stanch.metrics import WorkerMetrics
from stanch.packs import PackContext, Packs, installed_packs_or_exit
from stanch.policy import Policy, PolicyError, check_roles, check_runbooks, load_policy_or_exit
from stanch.schedules import apply_schedules_or_log
from stanch.settings import Settings, load_settings_or_exit
from stanch.telemetry import setup_tracing_from_env
from stanch.temporal_client import connect, missing_search_attributes
from stanch.tls import default_tls_context
from stanch.trust import refuse_demo_keys_or_exit
from stanch.workflow_runner import SandboxValidatedOnce
from workers.priority import ActivityPriorityFromWorkflow

# Where tests and docs have always found it; it is part of Stanch's pack now.
from workflows.pack import system_activities as system_activities

log = logging.getLogger("stanch.worker")

# The pool retries a lost connection with a backoff that doubles for as long as Postgres is away (up to
# 5 minutes by default), so audit rows landed up to 40 s after a 2-minute outage ended. Giving up early is
# harmless: the next activity that asks for a connection starts a fresh attempt at once.
POOL_RECONNECT_SECONDS = 5.0


@contextlib.asynccontextmanager
async def worker_context(settings: Settings, client: Client) -> AsyncIterator[PackContext]:
    """What every pack's activities share (clients, pool, adapters, metrics), open while the worker runs.
    The policy is read once for all of them."""
    policy = load_policy_or_exit(settings.config)
    async with (
        httpx.AsyncClient(
            base_url=settings.platform_url, timeout=20.0, verify=default_tls_context()
        ) as platform_http,
        httpx.AsyncClient(timeout=20.0, verify=default_tls_context()) as notify_http,
        AsyncConnectionPool(
            settings.database_url,
            min_size=1,
            max_size=8,
            open=False,
            reconnect_timeout=POOL_RECONNECT_SECONDS,
        ) as pool,
        systems_or_exit(settings, policy, platform_http) as systems,
    ):
        yield PackContext(
            settings=settings,
            client=client,
            policy=policy,
            systems=systems,
            pool=pool,
            platform_http=platform_http,
            notify_http=notify_http,
            metrics=worker_metrics(settings, client, policy),
        )


@contextlib.asynccontextmanager
async def activity_implementations(
    settings: Settings, client: Client, packs: Packs | None = None
) -> AsyncIterator[Sequence[Any]]:
    """The activities of every pack (default: the installed ones), open for as long as the worker runs."""
    chosen = installed_packs_or_exit() if packs is None else packs
    async with worker_context(settings, client) as context:
        yield chosen.activities_for(context)


def adapter_context(settings: Settings, platform_http: httpx.AsyncClient | None = None) -> AdapterContext:
    return AdapterContext(
        platform_url=settings.platform_url, platform_http=platform_http, base_dir=settings.config.parent
    )


def systems_fit_or_exit(policy: Policy, settings: Settings) -> None:
    """Refuse to start on a `[systems.<name>]` table that names an unknown adapter or settings it does not
    take: before connecting, in one line naming the key, instead of failing every effect of that system."""
    try:
        check_systems(policy, adapter_context(settings))
    except AdapterConfigError as error:
        print(f"stanch: policy file {settings.config}: {error}", file=sys.stderr)
        raise SystemExit(2) from None


@contextlib.asynccontextmanager
async def systems_or_exit(
    settings: Settings, policy: Policy, platform_http: httpx.AsyncClient
) -> AsyncIterator[Systems]:
    """The adapters `[systems.<name>]` names; an unknown adapter or a bad setting stops the worker in one
    line naming the key, before it polls a task it could not carry out."""
    context = adapter_context(settings, platform_http)
    try:
        opening = open_systems(policy, context)
        systems = await opening.__aenter__()
    except AdapterConfigError as error:
        print(f"stanch: policy file {settings.config}: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    try:
        yield systems
    finally:
        await opening.__aexit__(None, None, None)


def worker_metrics(settings: Settings, client: Client, policy: Policy) -> WorkerMetrics:
    """Stanch's own counters, on the meter of the runtime the client runs on: with STANCH_METRICS_PORT set
    they come out of the same endpoint as the SDK's metrics; without it the meter is a no-op."""
    runtime = client.service_client.config.runtime or Runtime.default()
    routing = policy.notify
    groups: set[str] = set()
    if routing is not None:
        groups = {*routing.P0, *routing.P1, *routing.P2, *routing.P3, *routing.customer, *routing.escalation}
    return WorkerMetrics(
        runtime.metric_meter,
        namespace=settings.namespace,
        task_queue=settings.task_queue,
        groups=sorted(groups),
        channels=sorted(policy.channels),
    )


def notify_activities(
    settings: Settings,
    http: httpx.AsyncClient,
    pool: AsyncConnectionPool,
    metrics: WorkerMetrics | None = None,
) -> NotifyActivities:
    """Channels from the policy, secrets from the environment; either missing stops the worker in one line."""
    policy = load_policy_or_exit(settings.config)
    try:
        return NotifyActivities.from_policy(policy, settings, http, pool, metrics=metrics)
    except PolicyError as error:
        print(f"stanch: policy file {settings.config}: {error}", file=sys.stderr)
        raise SystemExit(2) from None


def routes_fit_targets_or_exit(policy: Policy, path: Path) -> None:
    """Refuse to start on a route whose labels cannot give its runbook a target: every alert it matched
    would otherwise fail the runbook's first step, or go to triage, long after the deploy looked fine."""
    problem = check_route_targets(policy)
    if problem:
        print(f"stanch: policy file {path}: {problem}", file=sys.stderr)
        raise SystemExit(2)


def check_runbooks_or_exit(policy: Policy, path: Path, packs: Packs) -> None:
    """Refuse to start on a route naming a runbook no installed pack has: its incidents would never start."""
    try:
        check_runbooks(policy, set(packs.runbooks))
    except PolicyError as error:
        print(f"stanch: policy file {path}: {error}", file=sys.stderr)
        raise SystemExit(2) from None


def roles_exist_or_exit(policy: Policy, path: Path) -> None:
    """Refuse to start when a role a runbook asks to decide or notifies is missing: its questions would wait
    for nobody and its pages reach only the priority's groups. One line, naming the runbook and the role."""
    try:
        check_roles(policy, installed_packs_or_exit().roles_used())
    except PolicyError as error:
        print(f"stanch: policy file {path}: {error}", file=sys.stderr)
        raise SystemExit(2) from None


# Measured under a storm (bench/README.md, "Alert to first action"): these beat the SDK defaults.
WORKFLOW_TASK_POLLERS = 10
NONSTICKY_TO_STICKY_POLL_RATIO = 1.0


def auto_upgrade_long_lived(packs: Packs) -> SimplePlugin:
    """Last of a versioned worker's plugins, so it sees every pack's workflows: each pack's long-lived ones
    (Stanch's: workflows/long_lived.py) as their AUTO_UPGRADE copies, every other one as it is (PINNED, the
    deployment config's default). An unversioned worker registers the long-lived workflows as they are: a
    server refuses the tasks of one that names a behaviour there."""
    copies = packs.long_lived

    def registered(workflows: Sequence[type] | None) -> list[type]:
        return [copies.get(cls, cls) for cls in workflows or ()]

    return SimplePlugin("stanch.auto-upgrade-long-lived", workflows=registered)


def build_worker(
    client: Client,
    task_queue: str,
    activities: Sequence[Any],
    extra_workflows: Sequence[type] = (),
    *,
    packs: Packs | None = None,
    deployment: WorkerDeploymentVersion | None = None,
) -> Worker:
    """The worker: the packs' workflows come in as their plugins (default: the installed packs), the
    activities as `activity_implementations` built them around this process's shared resources. With
    `deployment`, one version of a worker deployment (stanch/deployments.py): it takes the incidents pinned
    to it and, once current, the new ones; its long-lived workflows move to each new current version.
    Without, an unversioned worker."""
    chosen = installed_packs_or_exit() if packs is None else packs
    return Worker(
        client,
        task_queue=task_queue,
        workflows=list(extra_workflows),
        activities=list(activities),
        plugins=[*chosen, auto_upgrade_long_lived(chosen)] if deployment is not None else list(chosen),
        deployment_config=deployment_config(deployment) if deployment is not None else None,
        # Parked incidents cost ~70 KB each in cache; beyond this they are replayed from history on demand.
        max_cached_workflows=2000,
        # The workflow's priority (the intake's, by severity) named on each of its activities.
        interceptors=[ActivityPriorityFromWorkflow()],
        workflow_runner=SandboxValidatedOnce(),
        # Issue 15: a new incident's first workflow task waits on the normal task queue, every later one
        # on this worker's sticky queue. The SDK's defaults poll with 5 pollers, 20 % of them on the normal
        # queue; under a storm of repeats that one poller was the new incidents' bottleneck.
        workflow_task_poller_behavior=PollerBehaviorSimpleMaximum(WORKFLOW_TASK_POLLERS),
        nonsticky_to_sticky_poll_ratio=NONSTICKY_TO_STICKY_POLL_RATIO,
        # The sticky queue's schedule-to-start stays the SDK's 5 s: a longer one (30 s was tried for the
        # storm) leaves a dead worker's incidents — and queries about them — waiting that long for another
        # worker (tests/e2e/test_chaos_worker_kill.py: "no poller seen for task queue recently").
    )


async def search_attributes_exist_or_exit(client: Client, settings: Settings) -> None:
    """Every workflow upserts Stanch's search attributes; on a namespace without one, each of its workflow
    tasks would fail and retry forever — incidents stuck silently. Refuse to start instead, in one line."""
    missing = await missing_search_attributes(client, settings.namespace)
    if missing:
        print(
            f"stanch: namespace {settings.namespace!r} lacks the search attribute(s) {', '.join(missing)}: "
            "run `stanch migrate`",
            file=sys.stderr,
        )
        raise SystemExit(2)


async def first_version_becomes_current(client: Client, version: WorkerDeploymentVersion) -> None:
    """The first version of a fresh deployment makes itself current (stanch/deployments.py), or no incident
    would start anywhere. Never fatal: a worker that could not do it still serves its pinned incidents, and
    `stanch deployment promote` does it by hand."""
    try:
        if await become_current_if_first(client, version):
            print(f"version {version.to_canonical_string()} is current: the deployment's first", flush=True)
    except (LookupError, RPCError) as error:
        log.warning("could not make %s current: %s", version.to_canonical_string(), error)


async def run_worker(settings: Settings) -> None:
    packs = installed_packs_or_exit()
    # A pack's routes are defaults, after the policy's own; the start-up checks see both.
    policy = packs.policy_with_routes(load_policy_or_exit(settings.config))
    check_runbooks_or_exit(policy, settings.config, packs)
    # The guardrails this worker starts carry the policy's keyring: demo keys only in dev and the tests.
    refuse_demo_keys_or_exit(policy, settings.config)
    routes_fit_targets_or_exit(policy, settings.config)
    roles_exist_or_exit(policy, settings.config)
    systems_fit_or_exit(policy, settings)
    client = await connect(settings)
    await search_attributes_exist_or_exit(client, settings)
    await apply_schedules_or_log(client, settings.task_queue)  # the daily cockpit report; never fatal
    version = deployment_version(settings)
    async with activity_implementations(settings, client, packs) as activities:
        worker = build_worker(client, settings.task_queue, activities, packs=packs, deployment=version)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        async with worker:
            print(
                f"worker started on task queue {settings.task_queue!r} at {settings.temporal_address}"
                + (f" as version {version.to_canonical_string()}" if version else " (unversioned)"),
                flush=True,
            )
            if version is not None:
                await first_version_becomes_current(client, version)
            await stop.wait()
        print("worker stopped", flush=True)


def main() -> None:
    settings = load_settings_or_exit()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    setup_tracing_from_env("stanch-worker")  # before connect(), which adds the tracing interceptor if on
    asyncio.run(run_worker(settings))
