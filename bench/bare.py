"""The bare Temporal workflow the runbook overhead benchmark compares against, and the worker that runs it.

Same shape as the agent emergency stop's happy path — `before` activities, one `approve` signal, `after`
activities — with trivial activities, the SDK's default converter, no search attributes, no brief, no
audit, no HTTP. Run by its own worker process on its own task queue (bench/overhead.py starts it):

    python -m bench.bare --task-queue <queue>       # STANCH_TEMPORAL_ADDRESS / STANCH_NAMESPACE apply
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import time
from dataclasses import dataclass
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.worker import Worker

WORKFLOW_NAME = "bench_bare_incident"
FIRST_ACTION_WORKFLOW = "bench_bare_first_action"
ACTIVITY_TIMEOUT = timedelta(seconds=30)


@dataclass
class Shape:
    before: int  # activities before the approval signal
    after: int  # activities after it


@activity.defn(name="bench_bare_step")
async def step(name: str) -> str:
    return name


@activity.defn(name="bench_bare_clock")
async def clock() -> float:
    """The wall time the activity ran at: the bare counterpart of the sandbox stamping the pause call."""
    return time.time()


@workflow.defn(name=FIRST_ACTION_WORKFLOW)
class BareFirstAction:
    """Start → first activity and nothing else: bench/first_action.py's bare reference."""

    @workflow.run
    async def run(self) -> float:
        return await workflow.execute_activity(clock, start_to_close_timeout=ACTIVITY_TIMEOUT)


@workflow.defn(name=WORKFLOW_NAME)
class BareIncident:
    def __init__(self) -> None:
        self._approved = False

    @workflow.signal
    def approve(self, approver: str) -> None:
        self._approved = True

    @workflow.run
    async def run(self, shape: Shape) -> str:
        for index in range(shape.before):
            await workflow.execute_activity(step, f"before-{index}", start_to_close_timeout=ACTIVITY_TIMEOUT)
        await workflow.wait_condition(lambda: self._approved)
        for index in range(shape.after):
            await workflow.execute_activity(step, f"after-{index}", start_to_close_timeout=ACTIVITY_TIMEOUT)
        return "rolled_back"


async def run_worker(address: str, namespace: str, task_queue: str) -> None:
    client = await Client.connect(address, namespace=namespace)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[BareIncident, BareFirstAction],
        activities=[step, clock],
        # The runbook worker's cache (workers/worker.py), so bench/parked.py compares parked workflows alike.
        max_cached_workflows=2000,
    ):
        print(f"bare worker polling {task_queue!r} at {address}", flush=True)
        await stop.wait()


def main() -> None:
    from stanch.settings import load_settings_or_exit

    parser = argparse.ArgumentParser(description="Run the bare benchmark workflow's worker.")
    parser.add_argument("--task-queue", required=True)
    args = parser.parse_args()
    settings = load_settings_or_exit()
    asyncio.run(run_worker(settings.temporal_address, settings.namespace, args.task_queue))


if __name__ == "__main__":
    main()
