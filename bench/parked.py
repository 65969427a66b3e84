"""Parked incidents: memory of the worker and the Temporal server, and listing time, with many incidents
waiting for approval.

    .venv/bin/python -m bench.parked [--sizes 1000,5000] [--in-flight 64] [--running --pid worker=PID --pid temporal=PID]

Incidents are started directly with the Temporal client, through the intake's own code path
(`TemporalGateway.open_or_signal`: signal-with-start of the routed Alertmanager alert, no HTTP), each for
its own sandbox agent, so every one runs the real emergency stop runbook (pause, notifications, audit rows)
and parks at its approval gate. At most --in-flight are opened and not yet parked at any time (each is
followed through its history until it asks for approval); --in-flight 0 opens a whole batch at once.
Sizes are cumulative: with 1000,5000, 1,000 are parked and measured, then 4,000 more.

At each size it prints:
  - how long the batch took to park, and until `StanchState='awaiting_approval'` counted all of them;
  - VmRSS (and peak VmHWM) of the worker and the Temporal dev server from /proc/<pid>/status, and their
    growth per parked incident since the idle baseline (the worker caches at most 2,000 workflows:
    `max_cached_workflows` in workers/worker.py);
  - the time to count and to list the incidents awaiting approval via that search attribute
    (client.count_workflows, client.list_workflows, `stanch list`'s query, and the `stanch list --state
    awaiting_approval` CLI process);
  - visibility lag: for the batch's last --lag-probes incidents, opened one at a time, from their mutable
    state saying awaiting_approval (describe) to the visibility query returning them;
  - the bare reference (issue 15, goal 5): as many of bench/bare.py's workflows, of the emergency stop's
    frozen shape (7 activities, then the approval signal), parked on the same server by a bare worker
    process with the same workflow cache, and the growth of its memory per parked workflow: the ratio of
    the runbook worker's growth to the bare worker's is the goal (at most 1.5x).
Every incident and bare workflow is terminated at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client

from bench import bare, common
from bench.common import Stack, fail, note
from bench.overhead import start_bare_worker
from stanch.ops.devstack import child_environment
from stanch.ops.samples import alertmanager_body
from stanch.policy import Policy, load_policy
from stanch.settings import REPO_ROOT, Settings
from stanch.temporal_client import connect
from workers.intake.app import TemporalGateway
from workers.intake.parsers import parse_alertmanager
from workers.intake.routing import route_alert

AWAITING = "StanchState='awaiting_approval'"
# What `stanch list --state awaiting_approval` asks.
OPERATOR_QUERY = f"StanchRunbook IS NOT NULL AND {AWAITING} AND ExecutionStatus = 'Running'"
TIMINGS = 3
# With --in-flight 0, starts go to Temporal this many at a time, nothing waits for them to park.
BURST_STARTS = 32


class Parker:
    """Opens incidents as the intake does, for one run's agents, all under one StanchService value."""

    def __init__(self, settings: Settings, client: Client, policy: Policy, run: str) -> None:
        self.settings = settings
        self.client = client
        self.policy = policy
        self.service = f"bench-parked-{run}"
        self.run = run
        self.gateway = TemporalGateway(settings, client)
        self.started: list[str] = []

    def agent(self, index: int) -> str:
        return f"pk-{self.run}-{index:05d}"

    async def open(self, agent_id: str) -> str:
        body = alertmanager_body(
            "AgentHallucination",
            {"agent": agent_id, "customer": "acme", "service": self.service},
            f"bench: agent {agent_id} misbehaves",
            fingerprint=agent_id,
        )
        [alert] = parse_alertmanager(body)
        routed = route_alert(self.policy, alert, "alerts.0")
        if routed.incident is None:
            fail(f"the policy {self.settings.config} routes no AgentHallucination alert")
        self.started.append(routed.incident.incident_id)
        delivered = await self.gateway.open_or_signal(routed)
        if delivered.action != "started":
            fail(f"the alert for {agent_id} did not open an incident: {delivered}")
        return routed.incident.incident_id

    async def open_many(self, agent_ids: list[str], in_flight: int, within: float) -> None:
        """Open incidents with at most `in_flight` not yet parked; 0 opens them all at once (a burst)."""
        limit = asyncio.Semaphore(in_flight or BURST_STARTS)

        async def one(agent_id: str) -> None:
            async with limit:
                workflow_id = await self.open(agent_id)
                if in_flight:
                    await self.parked(workflow_id, within)

        await asyncio.gather(*(one(agent_id) for agent_id in agent_ids))

    async def parked(self, workflow_id: str, within: float) -> None:
        """Wait until the incident asks for approval, following its history as the server writes it."""
        handle = self.client.get_workflow_handle(workflow_id)
        await common.follow_history(
            handle,
            lambda event: common.sets_state(self.client, event, "awaiting_approval"),
            within,
            "awaiting approval",
        )

    async def count(self, query: str) -> int:
        return (await self.client.count_workflows(f"StanchService='{self.service}' AND {query}")).count


# The emergency stop's happy path as issue 15 froze it: 7 activities before the approval, 4 after.
BARE_SHAPE = bare.Shape(before=7, after=4)


class BareParker:
    """Parks bench/bare.py's workflows on their own task queue, as Parker parks incidents."""

    def __init__(self, client: Client, task_queue: str, run: str) -> None:
        self.client = client
        self.task_queue = task_queue
        self.run = run
        self.started: list[str] = []

    async def park_many(self, first: int, last: int, in_flight: int, within: float) -> None:
        limit = asyncio.Semaphore(in_flight or BURST_STARTS)

        async def one(index: int) -> None:
            async with limit:
                workflow_id = f"bare-pk-{self.run}-{index:05d}"
                handle = await self.client.start_workflow(
                    bare.WORKFLOW_NAME, BARE_SHAPE, id=workflow_id, task_queue=self.task_queue
                )
                self.started.append(workflow_id)
                await common.follow_history(
                    handle, waiting_for_the_signal(), within, "waiting for its signal"
                )

        await asyncio.gather(*(one(index) for index in range(first, last)))


def waiting_for_the_signal() -> Callable[[HistoryEvent], bool]:
    """True at the workflow task that follows the last activity before the signal: the workflow then waits."""
    completed = 0

    def check(event: HistoryEvent) -> bool:
        nonlocal completed
        completed += event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED
        return (
            completed >= BARE_SHAPE.before
            and event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
        )

    return check


async def timed(action: Callable[[], Awaitable[int]]) -> tuple[float, int]:
    """Median seconds of TIMINGS runs of `action`, and what the last one returned."""
    seconds = []
    result = 0
    for _ in range(TIMINGS):
        began = time.monotonic()
        result = await action()
        seconds.append(time.monotonic() - began)
    return statistics.median(seconds), result


async def visibility_lag(parker: Parker, agents: list[str], within: float) -> list[float]:
    """Per incident, ms from describe (mutable state) saying awaiting_approval to the query returning it."""
    lags = []
    for agent_id in agents:
        workflow_id = await parker.open(agent_id)

        async def awaiting(workflow_id: str = workflow_id) -> bool:
            return await common.search_state(parker.client, workflow_id) == "awaiting_approval"

        async def visible(workflow_id: str = workflow_id) -> bool:
            query = f"WorkflowId='{workflow_id}' AND {AWAITING}"
            return (await parker.client.count_workflows(query)).count == 1

        await common.poll(awaiting, within=within, what=f"{workflow_id} awaiting approval", interval=0.01)
        began = time.monotonic()
        await common.poll(
            visible, within=within, what=f"{workflow_id} in the visibility store", interval=0.01
        )
        lags.append((time.monotonic() - began) * 1000)
    return lags


def cli_list(settings: Settings) -> tuple[float, int]:
    began = time.monotonic()
    listed = subprocess.run(
        [str(REPO_ROOT / ".venv" / "bin" / "stanch"), "list", "--state", "awaiting_approval"],
        env=child_environment(settings),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    seconds = time.monotonic() - began
    if listed.returncode != 0:
        fail(f"`stanch list` failed with code {listed.returncode}: {listed.stderr.strip()[-300:]}")
    return seconds, len(listed.stdout.splitlines())


async def report_listing(client: Client, settings: Settings, size: int) -> None:
    async def count() -> int:
        return (await client.count_workflows(AWAITING)).count

    async def listed(query: str) -> int:
        return len([execution async for execution in client.list_workflows(query)])

    count_s, counted = await timed(count)
    list_s, found = await timed(lambda: listed(AWAITING))
    operator_s, operator_found = await timed(lambda: listed(OPERATOR_QUERY))
    cli_s, cli_lines = cli_list(settings)
    for what, seconds, number in (
        ("count_workflows", count_s, counted),
        ("list_workflows", list_s, found),
        ("list (stanch list's query)", operator_s, operator_found),
        ("`stanch list` CLI (process)", cli_s, cli_lines),
    ):
        print(f"{size:<10} {what:<28} {seconds * 1000:8.0f} ms   ({number} incidents)")
        if number < size:
            fail(f"{what} found {number} incidents awaiting approval, fewer than the {size} parked")


def memory(stack: Stack) -> dict[str, tuple[float, float]]:
    readings = {name: common.rss_mb(stack.pid(name)) for name in ("worker", "temporal")}
    return {name: reading for name, reading in readings.items() if reading is not None}


def memory_line(
    now: dict[str, tuple[float, float]], baseline: dict[str, tuple[float, float]], size: int
) -> str:
    if not now:
        return "n/a (no pids)"
    parts = []
    for name, (rss, peak) in now.items():
        grown = f", +{(rss - baseline[name][0]) * 1024 / size:.0f} KB per incident" if size else ""
        parts.append(f"{name} {rss:.0f} MB (peak {peak:.0f}{grown})")
    return "   ".join(parts)


async def body(args: argparse.Namespace, stack: Stack) -> None:
    settings = stack.settings
    client = await connect(settings)
    parker = Parker(settings, client, load_policy(settings.config), common.run_id())
    common.print_header(
        "parked incidents (awaiting approval)",
        stack,
        f"sizes {', '.join(map(str, args.sizes))} (cumulative), started with the client (signal-with-start, "
        f"as the intake), {args.in_flight or 'all'} in flight",
    )
    if stack.devstack is None and not {"worker", "temporal"} <= set(stack.pids()):
        note(
            "memory is not measured: with --running, name the processes with --pid worker=.. --pid temporal=.."
        )
    total = 0
    bare_client = await Client.connect(settings.temporal_address, namespace=settings.namespace)
    scratch = tempfile.TemporaryDirectory(prefix="stanch-bench-parked-")
    bare_worker = await asyncio.to_thread(
        start_bare_worker,
        stack,
        f"bench-bare-{parker.run}",
        stack.home / "logs" if stack.home else Path(scratch.name),
    )
    bare_parker = BareParker(bare_client, f"bench-bare-{parker.run}", parker.run)
    try:
        await asyncio.sleep(2)  # let the stack's start-up settle before the baseline
        baseline = memory(stack)
        bare_baseline = common.rss_mb(bare_worker.pid)
        print(f"{'baseline':<10} memory      {memory_line(baseline, baseline, 0)}")
        for size in args.sizes:
            batch = [parker.agent(index) for index in range(total, size)]
            bulk, probes = batch[: -args.lag_probes], batch[-args.lag_probes :]
            await common.create_agents(settings, batch)
            note(f"{size}: opening {len(bulk)} incidents")
            began = time.monotonic()
            await parker.open_many(bulk, args.in_flight, args.timeout)
            opened_in = time.monotonic() - began
            last_report = 0.0

            async def counted(target: int = total + len(bulk), began: float = began) -> bool:
                nonlocal last_report
                awaiting = await parker.count(AWAITING)
                closed = await parker.count("ExecutionStatus != 'Running'")
                if closed:
                    fail(f"{closed} incidents closed instead of parking (a pause or an audit write failed?)")
                if time.monotonic() - last_report > 30:
                    last_report = time.monotonic()
                    note(f"{awaiting} of {target} awaiting approval after {time.monotonic() - began:.0f} s")
                return awaiting >= target

            await common.poll(counted, within=args.timeout, what=f"{size} incidents parking", interval=0.2)
            visible_in = time.monotonic() - began
            lags = await visibility_lag(parker, probes, args.timeout)
            total = size
            if await parker.count(AWAITING) != size:
                fail(f"the visibility store does not count {size} incidents awaiting approval")

            how = f"at most {args.in_flight} in flight" if args.in_flight else "all at once"
            print(
                f"{size:<10} parking     {len(bulk)} opened {how}: {opened_in:.1f} s"
                + (
                    f" until the last asked for approval, {visible_in:.1f} s"
                    if args.in_flight
                    else f", {visible_in:.1f} s"
                )
                + f" until the query counted all ({len(bulk) / visible_in:.1f} incidents/s); "
                f"+{len(probes)} one by one for the lag"
            )
            now = memory(stack)
            print(f"{size:<10} memory      {memory_line(now, baseline, size)}")
            await report_listing(client, settings, size)
            print(f"{size:<10} {common.latency_line('visibility lag', lags)}")

            note(f"{size}: parking bare workflows up to {size}")
            began = time.monotonic()
            await bare_parker.park_many(len(bare_parker.started), size, args.in_flight, args.timeout)
            bare_now = common.rss_mb(bare_worker.pid)
            if bare_now is None or bare_baseline is None or "worker" not in now:
                note("the bare reference's memory is not measured (no worker pid)")
                continue
            bare_kb = (bare_now[0] - bare_baseline[0]) * 1024 / size
            runbook_kb = (now["worker"][0] - baseline["worker"][0]) * 1024 / size
            print(
                f"{size:<10} bare        {size} parked in {time.monotonic() - began:.1f} s; bare worker "
                f"{bare_now[0]:.0f} MB (peak {bare_now[1]:.0f}), +{bare_kb:.0f} KB per parked workflow"
            )
            print(
                f"{size:<10} ratio       worker memory per parked incident / bare: {runbook_kb:.0f} / "
                f"{bare_kb:.0f} KB = {runbook_kb / bare_kb:.2f}x (goal <= 1.5x)"
            )
    finally:
        note(f"terminating {len(parker.started)} incidents and {len(bare_parker.started)} bare workflows")
        await common.terminate_all(client, parker.started, "bench parked done", concurrency=64)
        await common.terminate_all(bare_client, bare_parker.started, "bench parked done", concurrency=64)
        bare_worker.stop()
        scratch.cleanup()


def sizes(text: str) -> list[int]:
    values = [int(part) for part in text.split(",") if part.strip()]
    if not values or values != sorted(set(values)) or values[0] < 1:
        raise argparse.ArgumentTypeError("increasing sizes, comma-separated, e.g. 1000,5000")
    return values


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=sizes, default=[1000], help="cumulative sizes (default 1000)")
    parser.add_argument(
        "--in-flight",
        type=int,
        default=64,
        help="incidents opened but not yet parked, at most (default 64; 0: open the whole batch at once)",
    )
    parser.add_argument("--lag-probes", type=int, default=10, help="incidents timed for visibility lag")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds a batch may take to park")

    def check(args: argparse.Namespace) -> str | None:
        if args.lag_probes < 1 or args.sizes[0] <= args.lag_probes:
            return "need 1 <= --lag-probes < the first size"
        return None

    common.main("parked", parser, body, check)


if __name__ == "__main__":
    main()
