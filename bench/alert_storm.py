"""Alert storm: N alerts over K distinct keys, posted as fast as the intake takes them. Prints figures.

    .venv/bin/python -m bench.alert_storm [--alerts 2000] [--keys 200] [--concurrency 64] [--running]

What it prints:
  - accepted alerts/s: 202 answers per second of wall time, from the first POST to the last answer;
  - incidents opened: runs the Temporal server holds for the storm's keys (must equal --keys);
  - POST → first activity: per incident, from sending the POST that opened it to the start time of the
    runbook's first activity (the first ActivityTaskStarted event in the workflow's history), p50/p99.

Every alert is a real Alertmanager v4 body for the `agent-hallucination` route of the example policy; each
key gets its own sandbox agent, so the runbook acts for real. The incidents are terminated at the end
(they would escalate in 30 minutes otherwise) unless --keep is given. `storm()` is also the background load
of bench/first_action.py.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from bench import common
from bench.common import Stack, fail, note
from stanch.ops.samples import alertmanager_body
from stanch.settings import Settings
from stanch.temporal_client import connect

# Like Alertmanager, a sender retries a connection error or a 5xx (the intake's 503 while Temporal is slow to
# answer) after a pause, for a while; a 4xx is final.
MAX_RETRIES = 8
RETRY_PAUSE = 0.5  # seconds, times the attempt


@dataclass
class Delivery:
    key: int
    sent_at: float  # wall clock, comparable with the server's event times on the same machine
    answered_at: float
    status: int
    action: str | None
    workflow_id: str | None
    retries: int


def storm_order(alerts: int, keys: int, seed: str) -> list[int]:
    """Every key once, then the repeats, all shuffled: keys open in random order, repeats race the opening."""
    order = [index % keys for index in range(alerts)]
    random.Random(seed).shuffle(order)
    return order


async def storm(
    settings: Settings,
    order: list[int],
    agents: list[str],
    concurrency: int,
    alertname: str = "AgentHallucination",
) -> list[Delivery]:
    bodies = [
        alertmanager_body(
            alertname,
            {"agent": agent, "customer": "acme", "service": "support"},
            f"storm: agent {agent} misbehaves",
            fingerprint=agent,
        )
        for agent in agents
    ]
    url = common.intake_url(settings)
    limit = asyncio.Semaphore(concurrency)
    # Idle connections are dropped before uvicorn's 5 s keep-alive would close them under a request.
    limits = httpx.Limits(
        max_connections=concurrency, max_keepalive_connections=concurrency, keepalive_expiry=2
    )
    async with httpx.AsyncClient(
        timeout=60, limits=limits, headers=common.intake_headers(settings), trust_env=False
    ) as http:

        async def post(key: int) -> Delivery:
            async with limit:
                sent_at = time.time()
                # Like Alertmanager: a connection error or a 5xx is retried with the same body.
                for retries in range(MAX_RETRIES + 1):
                    try:
                        response = await http.post(url, json=bodies[key])
                    except httpx.TransportError:
                        if retries == MAX_RETRIES:
                            return Delivery(key, sent_at, time.time(), 0, None, None, retries)
                        continue
                    if response.status_code < 500 or retries == MAX_RETRIES:
                        break
                    await asyncio.sleep(RETRY_PAUSE * (retries + 1))
                answered_at = time.time()
                if response.status_code != 202:
                    return Delivery(key, sent_at, answered_at, response.status_code, None, None, retries)
                [incident] = response.json()["incidents"]
                return Delivery(
                    key, sent_at, answered_at, 202, incident["action"], incident["workflow_id"], retries
                )

        return await asyncio.gather(*(post(key) for key in order))


async def first_activity_started(client: Client, workflow_id: str, deadline: float) -> datetime | None:
    handle = client.get_workflow_handle(workflow_id)
    while time.monotonic() < deadline:
        async for event in handle.fetch_history_events():
            if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
                return event.event_time.ToDatetime(tzinfo=UTC)
        await asyncio.sleep(0.2)
    return None


async def runs_of(client: Client, workflow_id: str) -> int:
    return (await client.count_workflows(f"WorkflowId = '{workflow_id}'")).count


async def body(args: argparse.Namespace, stack: Stack) -> None:
    settings = stack.settings
    client = await connect(settings)
    run = common.run_id()
    agents = [f"storm-{run}-{key:04d}" for key in range(args.keys)]
    workflow_ids = [common.incident_id(agent) for agent in agents]
    common.print_header(
        "alert storm",
        stack,
        f"{args.alerts} alerts over {args.keys} keys, {args.concurrency} POSTs in flight",
    )
    try:
        await common.create_agents(settings, agents)
        note(f"posting {args.alerts} alerts")
        started_at = time.time()
        deliveries = await storm(settings, storm_order(args.alerts, args.keys, run), agents, args.concurrency)
        finished_at = time.time()

        accepted = [d for d in deliveries if d.status == 202]
        refused: dict[int, int] = {}
        for delivery in deliveries:
            if delivery.status != 202:
                refused[delivery.status] = refused.get(delivery.status, 0) + 1
        openers = {d.workflow_id: d for d in accepted if d.action == "started" and d.workflow_id}
        # Visibility is written just after the start; give the last ones a moment to land.
        await asyncio.sleep(1)
        runs = await asyncio.gather(*(runs_of(client, workflow_id) for workflow_id in workflow_ids))

        note("reading first activities from the histories")
        deadline = time.monotonic() + args.wait
        first_started = await asyncio.gather(
            *(first_activity_started(client, workflow_id, deadline) for workflow_id in openers)
        )
        latencies = [
            (started.timestamp() - openers[workflow_id].sent_at) * 1000
            for workflow_id, started in zip(openers, first_started, strict=True)
            if started is not None
        ]

        elapsed = finished_at - started_at
        print(
            f"alerts posted            {len(deliveries)} over {args.keys} keys, {args.concurrency} in flight"
        )
        print(f"accepted (202)           {len(accepted)}   not accepted: {refused or 'none'}")
        print(f"accepted alerts/s        {len(accepted) / elapsed:.0f}   ({elapsed:.2f} s wall)")
        answer_ms = [(d.answered_at - d.sent_at) * 1000 for d in accepted]
        if answer_ms:
            print(
                f"POST → 202               p50 {statistics.median(answer_ms):.0f} ms   "
                f"p99 {common.percentile(answer_ms, 0.99):.0f} ms   "
                f"retried: {sum(d.retries for d in deliveries)}"
            )
        print(f"answers 'started'        {len(openers)}   (must equal keys: {args.keys})")
        print(f"incidents opened         {sum(runs)} runs on the server for {sum(1 for r in runs if r)} keys")
        if latencies:
            print(
                f"POST → first activity    p50 {statistics.median(latencies):.0f} ms   "
                f"p99 {common.percentile(latencies, 0.99):.0f} ms   max {max(latencies):.0f} ms   "
                f"({len(latencies)} of {len(openers)} incidents)"
            )
        if len(openers) != args.keys or sum(runs) != args.keys:
            fail(f"{args.keys} keys opened {len(openers)} incidents ({sum(runs)} runs on the server)")
        if len(latencies) != len(openers):
            fail(f"only {len(latencies)} of {len(openers)} incidents started an activity; is the worker up?")
    finally:
        if not args.keep:
            await common.terminate_all(client, workflow_ids, "alert_storm benchmark done")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--alerts", type=int, default=2000, help="alerts to post (default 2000)")
    parser.add_argument("--keys", type=int, default=200, help="distinct dedupe keys (default 200)")
    parser.add_argument("--concurrency", type=int, default=64, help="POSTs in flight (default 64)")
    parser.add_argument("--wait", type=float, default=180, help="seconds to wait for first activities")
    parser.add_argument("--keep", action="store_true", help="leave the storm's incidents running")

    def check(args: argparse.Namespace) -> str | None:
        if args.keys < 1 or args.alerts < args.keys:
            return "need --alerts >= --keys >= 1, so every key fires at least once"
        return None

    common.main("alert_storm", parser, body, check)


if __name__ == "__main__":
    main()
