"""Alert to first action: from the POST of an alert to its pause request reaching the sandbox platform.

    .venv/bin/python -m bench.first_action            # storm of 600 alerts over 60 keys (~3 min)
    .venv/bin/python -m bench.first_action --full     # issue 15's storm: 2,000 alerts over 200 keys

The start is the client's clock just before it sends the POST; the end is the `at` of the sandbox's call
log record for `POST /agents/<agent>/pause` (the sandbox stamps it as it answers; same machine, same
clock). Every alert is a real Alertmanager body for its own sandbox agent.

  - idle: alerts one by one; the next is sent once the previous incident awaits approval (nothing else
    in flight);
  - storm: the background storm of bench/alert_storm.py (--storm-alerts over --storm-keys keys,
    --storm-concurrency POSTs in flight) runs while probe alerts, each a new key, are sent every
    --probe-interval seconds; the storm's own openers are measured the same way.

The storm's alerts and the probes are P3 (the benchmark's own route `bench-p3` to the emergency stop);
P0 probes (`bench-p0`, the same runbook) go out between them. The bare reference, measured on the same
server in the same run, idle and under the same storm: bench/bare.py's start → first activity workflow
(start_workflow → the activity's own clock), its own worker process and task queue.

Prints p50/p95/p99/max for each, the ratios of issue 15 (storm / idle, P0 in storm / idle, idle / bare
idle), POST → 202 for the probes, the share of a core each process used during
the storm, and where the time went: each idle alert's and probe's POST → pause split at the history's
first WorkflowExecutionStarted, WorkflowTaskStarted, ActivityTaskScheduled and ActivityTaskStarted (the
pause is the runbook's first activity). All incidents are terminated at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, timedelta
from pathlib import Path

import httpx
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.service import RPCError

from bench import bare, common
from bench.alert_storm import MAX_RETRIES, RETRY_PAUSE, Delivery, storm, storm_order
from bench.common import Stack, fail, note
from bench.overhead import start_bare_worker
from schemas.briefs import Timeline
from stanch.ops.samples import alertmanager_body
from stanch.settings import Settings
from stanch.temporal_client import connect

# The benchmark's own routes to the emergency stop, one per severity it compares (added to the policy of
# the private stack; a --running stack needs them in its policy).
ROUTES = {
    "P3": ("bench-p3", "BenchAgentMisbehavesP3"),
    "P0": ("bench-p0", "BenchAgentMisbehavesP0"),
}
BENCH_ROUTES = "".join(
    f"""
[[routes]]
name = "{route}"
runbook = "agent_emergency_stop"
severity = "{severity}"
match = {{ alertname = "{alertname}" }}
dedupe_by = "fingerprint"
target_labels = {{ agent_id = "agent" }}
optional_target_labels = {{ customer = "customer" }}
"""
    for severity, (route, alertname) in ROUTES.items()
)


def with_bench_routes(settings: Settings) -> Settings:
    """The private stack's settings with a policy file that is the usual one plus the benchmark's routes."""
    policy = settings.home / "bench-policy.toml"
    policy.write_text(settings.config.read_text() + BENCH_ROUTES)
    return settings.model_copy(update={"config": policy})


def incident_of(agent_id: str, severity: str = "P3") -> str:
    return common.incident_id(agent_id, ROUTES[severity][0])


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
        handle = client.get_workflow_handle(incident_of(agent_id))
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


def alert(agent_id: str, severity: str = "P3") -> dict[str, object]:
    return alertmanager_body(
        ROUTES[severity][1],
        {"agent": agent_id, "customer": "acme", "service": "support"},
        f"bench: agent {agent_id} misbehaves",
        fingerprint=agent_id,
    )


async def post(
    http: httpx.AsyncClient, settings: Settings, agent_id: str, severity: str = "P3"
) -> tuple[float, float]:
    """(wall time just before sending, seconds until the 202)."""
    sent = time.time()
    # A 503 (Temporal slow to answer) is retried like Alertmanager would; the wait is part of the figure.
    for retries in range(MAX_RETRIES + 1):
        response = await http.post(common.intake_url(settings), json=alert(agent_id, severity))
        if response.status_code < 500 or retries == MAX_RETRIES:
            break
        await asyncio.sleep(RETRY_PAUSE * (retries + 1))
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
            client_ids.append(incident_of(agent_id))
            pauses: dict[str, float] = {}

            async def paused(agent_id: str = agent_id, pauses: dict[str, float] = pauses) -> bool:
                calls = await common.pause_calls(sandbox, f"/agents/{agent_id}/pause")
                pauses.update({agent: at.timestamp() for agent, at in calls.items()})
                return agent_id in pauses

            await common.poll(paused, within=args.timeout, what=f"the pause of {agent_id}", interval=0.01)
            samples[agent_id] = Sample(sent, pauses[agent_id])

            async def settled(agent_id: str = agent_id) -> bool:
                return await common.search_state(client, incident_of(agent_id)) == "awaiting_approval"

            await common.poll(settled, within=args.timeout, what=f"{agent_id} awaiting approval")
    return samples


async def bare_first_action(client: Client, task_queue: str, workflow_id: str) -> float:
    """Milliseconds from just before start_workflow to the bare workflow's first activity running."""
    sent = time.time()
    ran: float = await client.execute_workflow(
        bare.FIRST_ACTION_WORKFLOW, id=workflow_id, task_queue=task_queue, result_type=float
    )
    return (ran - sent) * 1000


async def bare_idle_run(client: Client, task_queue: str, run: str, count: int) -> list[float]:
    return [await bare_first_action(client, task_queue, f"fa-{run}-bare-idle-{i:04d}") for i in range(count)]


@dataclass
class StormResult:
    probes: dict[str, Sample]  # P3 probes: a new incident of the storm's own severity
    urgent: dict[str, Sample]  # P0 probes
    bare_ms: list[float]  # bare start → first activity, sent between the probes
    answer_ms: list[float]  # probes' POST → 202
    storm_ms: list[float]  # the storm's own openers
    mid_storm: int
    seconds: float
    deliveries: int
    retried: int  # storm alerts the intake first answered 503
    signals: int  # signals that carried the storm's alerts into its incidents


async def storm_run(
    settings: Settings,
    args: argparse.Namespace,
    run: str,
    client_ids: list[str],
    bare_client: Client,
    bare_queue: str,
) -> StormResult:
    storm_agents = [f"fa-{run}-storm-{key:04d}" for key in range(args.storm_keys)]
    probes = [f"fa-{run}-probe-{index:04d}" for index in range(args.probes)]
    urgent = [f"fa-{run}-p0-{index:04d}" for index in range(args.probes)]
    client_ids += [incident_of(agent) for agent in storm_agents + probes]
    client_ids += [incident_of(agent, "P0") for agent in urgent]
    await common.create_agents(settings, storm_agents + probes + urgent)

    began = time.monotonic()
    storming = asyncio.create_task(
        storm(
            settings,
            storm_order(args.storm_alerts, args.storm_keys, run),
            storm_agents,
            args.storm_concurrency,
            alertname=ROUTES["P3"][1],
        )
    )
    sent: dict[str, float] = {}
    answered: list[float] = []
    mid_storm = 0
    # Idle connections are dropped before uvicorn's 5 s keep-alive would close them under a request.
    async with httpx.AsyncClient(
        timeout=60,
        headers=common.intake_headers(settings),
        trust_env=False,
        limits=httpx.Limits(keepalive_expiry=2),
    ) as http:

        async def probe(agent_id: str, severity: str) -> None:
            at, answer = await post(http, settings, agent_id, severity)
            sent[agent_id] = at
            answered.append(answer * 1000)

        bare_ms: list[float] = []

        async def bare_probe(index: int) -> None:
            bare_ms.append(
                await bare_first_action(bare_client, bare_queue, f"fa-{run}-bare-storm-{index:04d}")
            )

        probing = []
        for index, (agent_id, p0) in enumerate(zip(probes, urgent, strict=True)):
            # A probe's POST must not wait for the one before it: a slow answer is part of the figure. P3,
            # bare and P0 probes take turns, a third of the interval apart.
            await asyncio.sleep(args.probe_interval / 3)
            mid_storm += not storming.done()
            probing.append(asyncio.create_task(probe(agent_id, "P3")))
            await asyncio.sleep(args.probe_interval / 3)
            probing.append(asyncio.create_task(bare_probe(index)))
            await asyncio.sleep(args.probe_interval / 3)
            probing.append(asyncio.create_task(probe(p0, "P0")))
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
        paused = await paused_at(sandbox, f"/agents/fa-{run}-", probes + urgent + list(openers), args.timeout)
    signals = await every_repeat_counted(settings, storm_agents, deliveries, args.timeout)
    return StormResult(
        probes={agent: Sample(sent[agent], paused[agent]) for agent in probes},
        urgent={agent: Sample(sent[agent], paused[agent]) for agent in urgent},
        bare_ms=bare_ms,
        answer_ms=answered,
        storm_ms=[(paused[agent] - at) * 1000 for agent, at in openers.items()],
        mid_storm=mid_storm,
        seconds=storm_seconds,
        deliveries=len(deliveries),
        retried=sum(1 for delivery in deliveries if delivery.retries),
        signals=signals,
    )


async def every_repeat_counted(
    settings: Settings, agents: list[str], deliveries: list[Delivery], within: float
) -> int:
    """Exactly one run per key, and every alert the intake accepted counted in it (its timeline): at least
    once, and more only by the sender's retries after a 503 (an attempt Temporal took although its answer
    came too late is delivered again, as with Alertmanager). Returns how many signals carried the storm's
    alerts into Temporal (fewer than alerts: coalesced)."""
    client = await connect(settings)
    signals = 0
    expected = {agent: 0 for agent in agents}
    retried = {agent: 0 for agent in agents}
    for delivery in deliveries:
        expected[agents[delivery.key]] += 1
        retried[agents[delivery.key]] += delivery.retries

    async def counted(agent: str) -> None:
        workflow_id = incident_of(agent)
        runs = (await client.count_workflows(f"WorkflowId = '{workflow_id}'")).count
        if runs != 1:
            fail(f"{workflow_id} has {runs} runs; one incident per key was expected")
        handle = client.get_workflow_handle(workflow_id)
        entries = 0

        async def all_in() -> bool:
            nonlocal entries
            try:
                timeline = await handle.query(
                    "timeline", result_type=Timeline, rpc_timeout=timedelta(seconds=30)
                )
            except RPCError:  # a worker still busy with the storm answers late: ask again
                return False
            entries = sum(1 for entry in timeline.entries if entry.kind == "alert")
            return entries >= expected[agent]

        try:
            await common.poll(all_in, within=within, what=f"every alert of {agent}", interval=0.5)
        except common.BenchFailure:
            fail(f"{workflow_id} counted {entries} of its {expected[agent]} alerts")
        if not expected[agent] <= entries <= expected[agent] + retried[agent]:
            fail(
                f"{workflow_id} counted {entries} alerts, {expected[agent]} were accepted "
                f"({retried[agent]} retries)"
            )
        nonlocal signals
        async for event in handle.fetch_history_events():
            signals += event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED

    limit = asyncio.Semaphore(4)

    async def bounded(agent: str) -> None:
        async with limit:
            await counted(agent)

    await asyncio.gather(*(bounded(agent) for agent in agents))
    return signals


async def body(args: argparse.Namespace, stack: Stack) -> None:
    settings = stack.settings
    run = common.run_id()
    client = await connect(settings)
    bare_client = await Client.connect(settings.temporal_address, namespace=settings.namespace)
    bare_queue = f"bench-bare-{run}"
    common.print_header(
        "alert to first action (POST → pause request at the sandbox) vs bare start → first activity",
        stack,
        f"idle: {args.idle} alerts one by one; storm: {args.storm_alerts} P3 alerts over {args.storm_keys} "
        f"keys, {args.storm_concurrency} in flight, with {args.probes} P3, {args.probes} P0 and "
        f"{args.probes} bare probes every {args.probe_interval * 1000:.0f} ms",
    )
    print(f"   command: {' '.join(['python -m bench.first_action', *sys.argv[1:]])}")
    started: list[str] = []
    scratch: tempfile.TemporaryDirectory[str] | None = None
    if stack.home is not None:
        logs = stack.home / "logs"
    else:
        scratch = tempfile.TemporaryDirectory(prefix="stanch-bench-first-action-")
        logs = Path(scratch.name)
    worker = await asyncio.to_thread(start_bare_worker, stack, bare_queue, logs)
    try:
        idle_agents = [f"fa-{run}-idle-{index:04d}" for index in range(args.idle)]
        await common.create_agents(settings, idle_agents)
        note(f"bare idle: {args.idle} starts one by one")
        await bare_first_action(bare_client, bare_queue, f"fa-{run}-bare-warmup")
        bare_idle = await bare_idle_run(bare_client, bare_queue, run, args.idle)
        note(f"idle: {args.idle} alerts one by one")
        idle = await idle_run(settings, args, idle_agents, started)
        note(f"storm: {args.storm_alerts} alerts, {args.probes} probes of each kind")
        meter = common.CpuMeter({**stack.pids(), "bare-worker": worker.pid})
        meter.start()
        result = await storm_run(settings, args, run, started, bare_client, bare_queue)
        meter.stop()
        note("reading the probes' histories for the breakdown")
        idle_parts = await breakdown(client, idle)
        probe_parts = await breakdown(client, result.probes)

        idle_ms = [sample.millis for sample in idle.values()]
        probe_ms = [sample.millis for sample in result.probes.values()]
        urgent_ms = [sample.millis for sample in result.urgent.values()]
        print(common.latency_line("bare idle", bare_idle))
        print(common.latency_line("idle (P3)", idle_ms))
        print(common.latency_line("bare in storm", result.bare_ms))
        print(common.latency_line("storm: P3 probes", probe_ms))
        print(common.latency_line("storm: P0 probes", urgent_ms))
        print(common.latency_line("storm: probes POST → 202", result.answer_ms))
        print(common.latency_line("storm: its own incidents", result.storm_ms))
        p99 = functools.partial(common.percentile, fraction=0.99)
        print("ratios of p99 (issue 15's goals):")
        print(f"  storm P3 probes / idle        {p99(probe_ms) / p99(idle_ms):6.2f}   (goal ≤ 5)")
        print(f"  storm P0 probes / idle        {p99(urgent_ms) / p99(idle_ms):6.2f}   (goal ≤ 2)")
        print(f"  idle / bare idle              {p99(idle_ms) / p99(bare_idle):6.2f}   (goal ≤ 1.3)")
        print(f"  storm P3 probes / bare storm  {p99(probe_ms) / p99(result.bare_ms):6.2f}")
        print(f"  storm P0 probes / bare storm  {p99(urgent_ms) / p99(result.bare_ms):6.2f}")
        print(f"  bare storm / bare idle        {p99(result.bare_ms) / p99(bare_idle):6.2f}")
        print(
            f"storm posting took {result.seconds:.1f} s ({result.deliveries / result.seconds:.0f} alerts/s); "
            f"{result.mid_storm} of {args.probes} probes were sent before it finished"
        )
        print(
            f"storm: {result.deliveries} alerts ({result.retried} retried after a 503) reached Temporal as "
            f"{result.signals} signals; each of the "
            f"{args.storm_keys} keys has one incident, which counted every alert accepted for it (a retried "
            f"one at most once more)"
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
        if result.mid_storm < args.probes:
            note("some probes went out after the storm's last POST: raise --storm-alerts or lower --probes")
    finally:
        note(f"terminating {len(started)} incidents")
        await common.terminate_all(client, started, "bench first_action done")
        await asyncio.to_thread(worker.stop)
        if scratch is not None:
            scratch.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--full", action="store_true", help="issue 15's sizes: 2,000 alerts over 200 keys, 40 probes, 50 idle"
    )
    parser.add_argument("--idle", type=int, help="idle alerts, one by one (default 30; 50 with --full)")
    parser.add_argument(
        "--probes", type=int, help="probes of each kind during the storm (default 20; 40 with --full)"
    )
    parser.add_argument(
        "--probe-interval", type=float, default=0.5, help="seconds between probes of a kind (default 0.5)"
    )
    parser.add_argument("--storm-alerts", type=int, help="storm alerts (default 600; 2,000 with --full)")
    parser.add_argument("--storm-keys", type=int, help="storm dedupe keys (default 60; 200 with --full)")
    parser.add_argument("--storm-concurrency", type=int, default=64, help="storm POSTs in flight")
    parser.add_argument("--timeout", type=float, default=300, help="seconds to wait for a pause")

    def check(args: argparse.Namespace) -> str | None:
        sizes = (50, 40, 2000, 200) if args.full else (30, 20, 600, 60)
        for name, default in zip(("idle", "probes", "storm_alerts", "storm_keys"), sizes, strict=True):
            if getattr(args, name) is None:
                setattr(args, name, default)
        if min(args.idle, args.probes, args.storm_keys) < 1 or args.storm_alerts < args.storm_keys:
            return "need --idle, --probes >= 1 and --storm-alerts >= --storm-keys >= 1"
        return None

    common.main("first_action", parser, body, check, configure=with_bench_routes)


if __name__ == "__main__":
    main()
