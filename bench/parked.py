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
    state saying awaiting_approval (describe) to the visibility query returning them.
Every incident is terminated at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import time
from collections.abc import Awaitable, Callable

from temporalio.client import Client

from bench import common
from bench.common import Stack, fail, note
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
    try:
        await asyncio.sleep(2)  # let the stack's start-up settle before the baseline
        baseline = memory(stack)
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
            print(f"{size:<10} memory      {memory_line(memory(stack), baseline, size)}")
            await report_listing(client, settings, size)
            print(f"{size:<10} {common.latency_line('visibility lag', lags)}")
    finally:
        note(f"terminating {len(parker.started)} incidents")
        await common.terminate_all(client, parker.started, "bench parked done", concurrency=64)


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
