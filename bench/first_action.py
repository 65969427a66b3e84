"""Alert to first action: from the POST of an alert to its pause request reaching the sandbox platform.

    .venv/bin/python -m bench.first_action [--idle 50] [--probes 40] [--storm-alerts 2000] [--running]

The start is the client's clock just before it sends the POST; the end is the `at` of the sandbox's call
log record for `POST /agents/<agent>/pause` (the sandbox stamps it as it answers; same machine, same
clock). Every alert is a real Alertmanager body for its own sandbox agent.

  - idle: alerts one by one; the next is sent once the previous incident awaits approval (nothing else
    in flight);
  - storm: the background storm of bench/alert_storm.py (--storm-alerts over --storm-keys keys,
    --storm-concurrency POSTs in flight) runs while probe alerts, each a new key, are sent every
    --probe-interval seconds; the storm's own openers are measured the same way.

Prints p50/p95/p99/max for each, POST → 202 for the probes, the share of a core each process used during
the storm, and where the time went: each idle alert's and probe's POST → pause split at the history's
first WorkflowExecutionStarted, WorkflowTaskStarted, ActivityTaskScheduled and ActivityTaskStarted (the
pause is the runbook's first activity). All incidents are terminated at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from dataclasses import dataclass
from datetime import UTC

import httpx
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from bench import common
from bench.alert_storm import storm, storm_order
from bench.common import Stack, fail, note
from stanch.ops.samples import alertmanager_body
from stanch.settings import Settings
from stanch.temporal_client import connect


@dataclass
class Sample:
    sent: float  # wall clock just before the POST
    paused: float  # wall clock of the sandbox's record of the pause request

    @property
    def millis(self) -> float:
        return (self.paused - self.sent) * 1000


SEGMENTS = (
    "POST → workflow started (intake, signal-with-start)",
    "started → first workflow task picked up",
    "workflow task → pause activity scheduled",
    "pause scheduled → picked up by the worker",
    "pause picked up → request at the sandbox",
)


async def breakdown(client: Client, samples: dict[str, Sample]) -> dict[str, list[float]]:
    """Split each POST → pause into its steps by the times the server recorded in the history."""
    parts: dict[str, list[float]] = {segment: [] for segment in SEGMENTS}
    for agent_id, sample in samples.items():
        handle = client.get_workflow_handle(common.incident_id(agent_id))
        marks: dict[int, float] = {}
        async for event in handle.fetch_history_events():
            kind = event.event_type
            if kind in FIRSTS and kind not in marks:
                marks[kind] = event.event_time.ToDatetime(tzinfo=UTC).timestamp()
            if EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED in marks:
                break
        times = [sample.sent, *(marks.get(kind) for kind in FIRSTS), sample.paused]
        if any(at is None for at in times):
            fail(f"the history of {handle.id} lacks the events up to its first activity")
        for segment, start, end in zip(SEGMENTS, times, times[1:], strict=False):
            assert start is not None and end is not None
            parts[segment].append((end - start) * 1000)
    return parts


# The first of each, in order: the pause is the runbook's first activity.
FIRSTS = (
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED,
    EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED,
    EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED,
    EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED,
)


def alert(agent_id: str) -> dict[str, object]:
    return alertmanager_body(
        "AgentHallucination",
        {"agent": agent_id, "customer": "acme", "service": "support"},
        f"bench: agent {agent_id} misbehaves",
        fingerprint=agent_id,
    )


async def post(http: httpx.AsyncClient, settings: Settings, agent_id: str) -> tuple[float, float]:
    """(wall time just before sending, seconds until the 202)."""
    sent = time.time()
    response = await http.post(common.intake_url(settings), json=alert(agent_id))
    answered = time.time() - sent
    if response.status_code != 202:
        fail(f"the intake answered {response.status_code} for {agent_id}: {response.text[:200]}")
    [incident] = response.json()["incidents"]
    if incident["action"] != "started":
        fail(f"the alert for {agent_id} did not open an incident: {incident['action']}")
    return sent, answered


async def paused_at(
    sandbox: httpx.AsyncClient, prefix: str, agents: list[str], within: float
) -> dict[str, float]:
    """Wall time of each agent's first pause call, waiting (bounded) until every one of them has one."""
    found: dict[str, float] = {}

    async def all_paused() -> bool:
        calls = await common.pause_calls(sandbox, prefix)
        found.update({agent: at.timestamp() for agent, at in calls.items()})
        return all(agent in found for agent in agents)

    try:
        await common.poll(all_paused, within=within, what="every pause", interval=0.5)
    except common.BenchFailure:
        missing = [agent for agent in agents if agent not in found]
        fail(f"{len(missing)} of {len(agents)} agents were never paused (first: {missing[0]})")
    return found


async def idle_run(
    settings: Settings, args: argparse.Namespace, agents: list[str], client_ids: list[str]
) -> dict[str, Sample]:
    client = await connect(settings)
    samples = {}
    async with (
        httpx.AsyncClient(timeout=30, headers=common.intake_headers(settings), trust_env=False) as http,
        common.sandbox_client(settings) as sandbox,
    ):
        for agent_id in agents:
            sent, _ = await post(http, settings, agent_id)
            client_ids.append(common.incident_id(agent_id))
            pauses: dict[str, float] = {}

            async def paused(agent_id: str = agent_id, pauses: dict[str, float] = pauses) -> bool:
                calls = await common.pause_calls(sandbox, f"/agents/{agent_id}/pause")
                pauses.update({agent: at.timestamp() for agent, at in calls.items()})
                return agent_id in pauses

            await common.poll(paused, within=args.timeout, what=f"the pause of {agent_id}", interval=0.01)
            samples[agent_id] = Sample(sent, pauses[agent_id])

            async def settled(agent_id: str = agent_id) -> bool:
                return await common.search_state(client, common.incident_id(agent_id)) == "awaiting_approval"

            await common.poll(settled, within=args.timeout, what=f"{agent_id} awaiting approval")
    return samples


async def storm_run(
    settings: Settings, args: argparse.Namespace, run: str, client_ids: list[str]
) -> tuple[dict[str, Sample], list[float], list[float], int, float]:
    """(probes, probe POST→202 ms, storm openers' latencies ms, probes sent mid-storm, storm seconds)."""
    storm_agents = [f"fa-{run}-storm-{key:04d}" for key in range(args.storm_keys)]
    probes = [f"fa-{run}-probe-{index:04d}" for index in range(args.probes)]
    client_ids += [common.incident_id(agent) for agent in storm_agents + probes]
    await common.create_agents(settings, storm_agents + probes)

    began = time.monotonic()
    storming = asyncio.create_task(
        storm(
            settings,
            storm_order(args.storm_alerts, args.storm_keys, run),
            storm_agents,
            args.storm_concurrency,
        )
    )
    sent: dict[str, float] = {}
    answered: list[float] = []
    mid_storm = 0
    async with httpx.AsyncClient(
        timeout=60, headers=common.intake_headers(settings), trust_env=False
    ) as http:

        async def probe(agent_id: str) -> None:
            at, answer = await post(http, settings, agent_id)
            sent[agent_id] = at
            answered.append(answer * 1000)

        probing = []
        for agent_id in probes:
            # The probe's own POST must not wait for the one before it: a slow answer is part of the figure.
            await asyncio.sleep(args.probe_interval)
            mid_storm += not storming.done()
            probing.append(asyncio.create_task(probe(agent_id)))
        deliveries = await storming
        storm_seconds = time.monotonic() - began
        await asyncio.gather(*probing)

    refused = [d for d in deliveries if d.status != 202]
    if refused:
        fail(f"the intake refused {len(refused)} storm alerts (first: status {refused[0].status})")
    openers = {storm_agents[d.key]: d.sent_at for d in deliveries if d.action == "started"}
    if len(openers) != args.storm_keys:
        fail(f"the storm's {args.storm_keys} keys opened {len(openers)} incidents")
    async with common.sandbox_client(settings) as sandbox:
        paused = await paused_at(sandbox, f"/agents/fa-{run}-", probes + list(openers), args.timeout)
    storm_ms = [(paused[agent] - at) * 1000 for agent, at in openers.items()]
    samples = {agent: Sample(sent[agent], paused[agent]) for agent in probes}
    return samples, answered, storm_ms, mid_storm, storm_seconds


async def body(args: argparse.Namespace, stack: Stack) -> None:
    settings = stack.settings
    run = common.run_id()
    client = await connect(settings)
    common.print_header(
        "alert to first action (POST → pause request at the sandbox)",
        stack,
        f"idle: {args.idle} alerts one by one; storm: {args.storm_alerts} alerts over {args.storm_keys} keys, "
        f"{args.storm_concurrency} in flight, with {args.probes} probes every {args.probe_interval * 1000:.0f} ms",
    )
    started: list[str] = []
    try:
        idle_agents = [f"fa-{run}-idle-{index:04d}" for index in range(args.idle)]
        await common.create_agents(settings, idle_agents)
        note(f"idle: {args.idle} alerts one by one")
        idle = await idle_run(settings, args, idle_agents, started)
        note(f"storm: {args.storm_alerts} alerts, {args.probes} probes")
        meter = common.CpuMeter(stack.pids())
        meter.start()
        probes, answer_ms, storm_ms, mid_storm, storm_seconds = await storm_run(settings, args, run, started)
        meter.stop()
        note("reading the probes' histories for the breakdown")
        idle_parts = await breakdown(client, idle)
        probe_parts = await breakdown(client, probes)

        print(common.latency_line("idle", [sample.millis for sample in idle.values()]))
        print(common.latency_line("storm: probes", [sample.millis for sample in probes.values()]))
        print(common.latency_line("storm: probes POST → 202", answer_ms))
        print(common.latency_line("storm: its own incidents", storm_ms))
        print(
            f"storm posting took {storm_seconds:.1f} s ({args.storm_alerts / storm_seconds:.0f} alerts/s); "
            f"{mid_storm} of {args.probes} probes were sent before it finished"
        )
        print(
            f"CPU during the storm, until every incident was paused ({meter.wall:.0f} s), share of one core:"
        )
        print(f"  {meter.busy()}")
        print("where the time goes, p50 / p95 ms (from each incident's history; idle | storm probes):")
        for segment in SEGMENTS:
            print(
                f"  {segment:<44} {statistics.median(idle_parts[segment]):6.0f} / "
                f"{common.percentile(idle_parts[segment], 0.95):6.0f}   | "
                f"{statistics.median(probe_parts[segment]):6.0f} / "
                f"{common.percentile(probe_parts[segment], 0.95):6.0f}"
            )
        if mid_storm < args.probes:
            note("some probes went out after the storm's last POST: raise --storm-alerts or lower --probes")
    finally:
        note(f"terminating {len(started)} incidents")
        await common.terminate_all(client, started, "bench first_action done")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--idle", type=int, default=50, help="idle alerts, one by one (default 50)")
    parser.add_argument("--probes", type=int, default=40, help="probe alerts during the storm (default 40)")
    parser.add_argument(
        "--probe-interval", type=float, default=0.5, help="seconds between probes (default 0.5)"
    )
    parser.add_argument("--storm-alerts", type=int, default=2000, help="storm alerts (default 2000)")
    parser.add_argument("--storm-keys", type=int, default=200, help="storm dedupe keys (default 200)")
    parser.add_argument("--storm-concurrency", type=int, default=64, help="storm POSTs in flight")
    parser.add_argument("--timeout", type=float, default=300, help="seconds to wait for a pause")

    def check(args: argparse.Namespace) -> str | None:
        if min(args.idle, args.probes, args.storm_keys) < 1 or args.storm_alerts < args.storm_keys:
            return "need --idle, --probes >= 1 and --storm-alerts >= --storm-keys >= 1"
        return None

    common.main("first_action", parser, body, check)


if __name__ == "__main__":
    main()
