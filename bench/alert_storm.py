"""Alert storm: N alerts over K distinct keys, posted as fast as the intake takes them. Prints figures.

Run against a running stack (`make dev`, or `stanch dev`), with the same STANCH_* settings:

    .venv/bin/python bench/alert_storm.py --alerts 2000 --keys 200

What it prints:
  - accepted alerts/s: 202 answers per second of wall time, from the first POST to the last answer;
  - incidents opened: runs the Temporal server holds for the storm's keys (must equal --keys);
  - POST → first activity: per incident, from sending the POST that opened it to the start time of the
    runbook's first activity (the first ActivityTaskStarted event in the workflow's history), p50/p99.

Every alert is a real Alertmanager v4 body for the `agent-hallucination` route of the example policy; each
key gets its own sandbox agent, so the runbook acts for real. The incidents are terminated at the end
(they would escalate in 30 minutes otherwise) unless --keep is given.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.service import RPCError

from stanch.samples import alertmanager_body
from stanch.settings import Settings, load_settings_or_exit
from stanch.temporal_client import connect

ROUTE = "agent-hallucination"  # the example policy's route for AgentHallucination alerts
MAX_RETRIES = 3


@dataclass
class Delivery:
    key: int
    sent_at: float  # wall clock, comparable with the server's event times on the same machine
    answered_at: float
    status: int
    action: str | None
    workflow_id: str | None
    retries: int


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


async def create_agents(settings: Settings, agents: list[str]) -> None:
    async with httpx.AsyncClient(base_url=settings.platform_url, timeout=30) as sandbox:
        limit = asyncio.Semaphore(32)

        async def one(agent_id: str) -> None:
            async with limit:
                response = await sandbox.put(f"/agents/{agent_id}", json={"versions": ["v1", "v2", "v3"]})
                response.raise_for_status()

        await asyncio.gather(*(one(agent_id) for agent_id in agents))


async def storm(settings: Settings, order: list[int], agents: list[str], concurrency: int) -> list[Delivery]:
    url = f"http://{settings.host}:{settings.intake_port}/alerts/alertmanager"
    headers = {}
    if settings.intake_token:
        headers["Authorization"] = f"Bearer {settings.intake_token.get_secret_value()}"
    bodies = [
        alertmanager_body(
            "AgentHallucination",
            {"agent": agent, "customer": "acme", "service": "support"},
            f"storm: agent {agent} misbehaves",
            fingerprint=agent,
        )
        for agent in agents
    ]
    limit = asyncio.Semaphore(concurrency)
    # Idle connections are dropped before uvicorn's 5 s keep-alive would close them under a request.
    limits = httpx.Limits(
        max_connections=concurrency, max_keepalive_connections=concurrency, keepalive_expiry=2
    )
    async with httpx.AsyncClient(timeout=60, limits=limits, headers=headers) as http:

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


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--alerts", type=int, default=2000, help="alerts to post (default 2000)")
    parser.add_argument("--keys", type=int, default=200, help="distinct dedupe keys (default 200)")
    parser.add_argument("--concurrency", type=int, default=64, help="POSTs in flight (default 64)")
    parser.add_argument("--wait", type=float, default=180, help="seconds to wait for first activities")
    parser.add_argument("--keep", action="store_true", help="leave the storm's incidents running")
    args = parser.parse_args()
    if args.keys < 1 or args.alerts < args.keys:
        parser.error("need --alerts >= --keys >= 1, so every key fires at least once")

    settings = load_settings_or_exit()
    client = await connect(settings)
    run = uuid.uuid4().hex[:6]
    agents = [f"storm-{run}-{key:04d}" for key in range(args.keys)]
    # Every key once, then the repeats, all shuffled: keys open in random order, repeats race the opening.
    order = [index % args.keys for index in range(args.alerts)]
    random.Random(run).shuffle(order)

    await create_agents(settings, agents)
    started_at = time.time()
    deliveries = await storm(settings, order, agents, args.concurrency)
    finished_at = time.time()

    accepted = [d for d in deliveries if d.status == 202]
    refused: dict[int, int] = {}
    for delivery in deliveries:
        if delivery.status != 202:
            refused[delivery.status] = refused.get(delivery.status, 0) + 1
    openers = {d.workflow_id: d for d in accepted if d.action == "started" and d.workflow_id}
    workflow_ids = [f"incident-{ROUTE}-{agent}" for agent in agents]
    await asyncio.sleep(1)  # visibility is written just after the start; let the last ones land
    runs = await asyncio.gather(*(runs_of(client, workflow_id) for workflow_id in workflow_ids))

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
    print(f"alerts posted            {len(deliveries)} over {args.keys} keys, {args.concurrency} in flight")
    print(f"accepted (202)           {len(accepted)}   not accepted: {refused or 'none'}")
    print(f"accepted alerts/s        {len(accepted) / elapsed:.0f}   ({elapsed:.2f} s wall)")
    answer_ms = [(d.answered_at - d.sent_at) * 1000 for d in accepted]
    if answer_ms:
        print(
            f"POST → 202               p50 {statistics.median(answer_ms):.0f} ms   "
            f"p99 {percentile(answer_ms, 0.99):.0f} ms   retried: {sum(d.retries for d in deliveries)}"
        )
    print(f"answers 'started'        {len(openers)}   (must equal keys: {args.keys})")
    print(f"incidents opened         {sum(runs)} runs on the server for {sum(1 for r in runs if r)} keys")
    if latencies:
        print(
            f"POST → first activity    p50 {statistics.median(latencies):.0f} ms   "
            f"p99 {percentile(latencies, 0.99):.0f} ms   max {max(latencies):.0f} ms   "
            f"({len(latencies)} of {len(openers)} incidents)"
        )
    else:
        print("POST → first activity    no activity started; is the worker running?")

    if not args.keep:

        async def terminate(workflow_id: str) -> None:
            try:
                await client.get_workflow_handle(workflow_id).terminate("alert_storm benchmark done")
            except RPCError:
                pass  # already closed

        await asyncio.gather(*(terminate(workflow_id) for workflow_id in workflow_ids))
    ok = len(openers) == args.keys and sum(runs) == args.keys
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    asyncio.run(main())
