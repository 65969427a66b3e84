"""The Temporal worker: runs every runbook and the activities they call."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx
from psycopg_pool import AsyncConnectionPool
from temporalio.client import Client
from temporalio.worker import Worker

from activities.audit import AuditActivities
from activities.guardrail import GuardrailActivities
from activities.notify import NotifyActivities
from activities.platform import PlatformActivities
from stanch.policy import PolicyError, load_policy_or_exit
from stanch.settings import Settings, load_settings_or_exit
from stanch.temporal_client import connect
from workflows.registry import WORKFLOWS

log = logging.getLogger("stanch.worker")


@contextlib.asynccontextmanager
async def activity_implementations(settings: Settings, client: Client) -> AsyncIterator[Sequence[Any]]:
    """The activity objects, with the clients they share, open for as long as the worker runs."""
    async with (
        httpx.AsyncClient(base_url=settings.platform_url, timeout=20.0) as platform_http,
        httpx.AsyncClient(timeout=20.0) as notify_http,
        AsyncConnectionPool(settings.database_url, min_size=1, max_size=8, open=False) as pool,
    ):
        platform = PlatformActivities(platform_http)
        notify = notify_activities(settings, notify_http, pool)
        audit = AuditActivities(pool)
        # Guardrails run on this worker's own task queue; runbooks reach them through this activity.
        guardrail = GuardrailActivities(client, settings.task_queue)
        yield [
            platform.pause_agent,
            platform.rollback_agent,
            notify.send_notification,
            audit.write_audit,
            guardrail.ask,
        ]


def notify_activities(
    settings: Settings, http: httpx.AsyncClient, pool: AsyncConnectionPool
) -> NotifyActivities:
    """Channels from the policy, secrets from the environment; either missing stops the worker in one line."""
    policy = load_policy_or_exit(settings.config)
    try:
        return NotifyActivities.from_policy(policy, settings, http, pool)
    except PolicyError as error:
        print(f"stanch: policy file {settings.config}: {error}", file=sys.stderr)
        raise SystemExit(2) from None


def build_worker(
    client: Client, task_queue: str, activities: Sequence[Any], extra_workflows: Sequence[type] = ()
) -> Worker:
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[*WORKFLOWS, *extra_workflows],
        activities=list(activities),
        # Parked incidents cost ~70 KB each in cache; beyond this they are replayed from history on demand.
        max_cached_workflows=2000,
    )


async def run_worker(settings: Settings) -> None:
    client = await connect(settings)
    async with activity_implementations(settings, client) as activities:
        worker = build_worker(client, settings.task_queue, activities)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        async with worker:
            print(
                f"worker started on task queue {settings.task_queue!r} at {settings.temporal_address}",
                flush=True,
            )
            await stop.wait()
        print("worker stopped", flush=True)


def main() -> None:
    settings = load_settings_or_exit()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    asyncio.run(run_worker(settings))
