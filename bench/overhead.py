"""Runbook overhead: the agent emergency stop end to end against a bare Temporal workflow of the same shape.

    .venv/bin/python -m bench.overhead [--incidents 100] [--rounds 4] [--concurrency 32] [--approve-with signal|update]

Real path, per incident (each with its own sandbox agent): POST an Alertmanager body to the intake → wait
until the runbook, having paused the agent, asks for approval (the history's search-attribute upsert to
StanchState=awaiting_approval) → approve as an approver from the policy (the `approve` signal, or the
`decide` update with --approve-with update) → wait for the result, which must be `rolled_back`. After the
timed run every agent must show exactly one pause and one rollback on the sandbox.

Bare path, per workflow: start bench/bare.py's workflow (the frozen shape of issue 15, BARE_SHAPE: 7
activities before its one signal and 4 after, as the runbook's happy-path history had when the issue was
measured; trivial activities, default converter, nothing else) on its own task queue, run by its own worker process → wait until it reaches the
same point (its last activity before the signal is scheduled, as the runbook's gate audit write is when it
asks) → signal → wait for the result.

Both paths learn when to approve the same way: they follow the workflow's history with a long poll
(GetWorkflowExecutionHistory wait_new_event), so there is no polling interval in the figures. Both run
against the same dev server in the same run with the same number in flight, in --rounds rounds that
alternate which path goes first (the dev server's SQLite file grows as it goes).

Prints the real history's shape, each round's throughputs, both throughputs over all rounds (incidents
per second of the measured wall time, from each batch's first start to its last result), per-incident
latencies, CPU time per incident of every process, and the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client, WorkflowHandle

from bench import bare, common
from bench.common import Stack, fail, note
from schemas.approvals import ApprovalAnswer, Decision, DecisionOutcome
from schemas.incidents import IncidentResult
from stanch.ops.devstack import child_environment
from stanch.ops.devstack.supervisor import Child
from stanch.ops.devstack.temporal import has_poller
from stanch.ops.samples import alertmanager_body
from stanch.settings import REPO_ROOT, Settings
from stanch.temporal_client import connect

APPROVABLE = "awaiting_approval"
# The bare reference keeps the shape the emergency stop's happy path had when issue 15 measured it
# (2026-11-22: 7 activities before the approval, 4 after). Read from today's history instead, it would
# shrink with every history event the runbook saves, and the ratio could never show the saving.
BARE_SHAPE = bare.Shape(before=7, after=4)
WORKER_READY_SECONDS = 60.0


class RealPath:
    """One emergency stop incident through the intake, approved as soon as it asks."""

    def __init__(
        self,
        settings: Settings,
        client: Client,
        http: httpx.AsyncClient,
        *,
        timeout: float,
        approve_with: str = "signal",
    ) -> None:
        self.settings = settings
        self.client = client
        self.http = http
        self.timeout = timeout
        self.approve_with = approve_with
        self.approver = common.approver(settings)
        self.started: list[str] = []

    async def run(self, agent_id: str) -> float:
        began = time.monotonic()
        body = alertmanager_body(
            "AgentHallucination",
            {"agent": agent_id, "customer": "acme", "service": "support"},
            f"bench: agent {agent_id} misbehaves",
            fingerprint=agent_id,
        )
        response = await self.http.post(
            common.intake_url(self.settings), json=body, headers=common.intake_headers(self.settings)
        )
        if response.status_code != 202:
            fail(f"the intake answered {response.status_code} for agent {agent_id}: {response.text[:200]}")
        [incident] = response.json()["incidents"]
        workflow_id = incident["workflow_id"]
        self.started.append(workflow_id)
        if incident["action"] != "started":
            fail(f"the alert for {agent_id} did not open an incident: {incident['action']}")
        handle = self.client.get_workflow_handle(workflow_id, result_type=IncidentResult)
        await common.follow_history(handle, self._approvable, self.timeout, "awaiting approval")
        if self.approve_with == "update":
            outcome = await handle.execute_update(
                "decide",
                Decision(approver=self.approver, action="rollback", comment="bench", approved=True),
                result_type=DecisionOutcome,
            )
            if not outcome.accepted:
                fail(f"{workflow_id} refused the approval: {outcome.detail}")
        else:
            await handle.signal(
                "approve", ApprovalAnswer(approver=self.approver, action="rollback", comment="bench")
            )
        result = await asyncio.wait_for(handle.result(), self.timeout)
        if result.final_state != "rolled_back":
            fail(f"{workflow_id} ended {result.final_state!r}, not 'rolled_back'")
        return time.monotonic() - began

    def _approvable(self, event: HistoryEvent) -> bool:
        return common.sets_state(self.client, event, APPROVABLE)


class BarePath:
    def __init__(self, client: Client, task_queue: str, shape: bare.Shape, timeout: float) -> None:
        self.client = client
        self.task_queue = task_queue
        self.shape = shape
        self.timeout = timeout
        self.started: list[str] = []

    async def run(self, workflow_id: str) -> float:
        began = time.monotonic()
        handle: WorkflowHandle[object, str] = await self.client.start_workflow(
            bare.WORKFLOW_NAME, self.shape, id=workflow_id, task_queue=self.task_queue, result_type=str
        )
        self.started.append(workflow_id)

        scheduled = 0

        def last_step_before_signal(event: HistoryEvent) -> bool:
            nonlocal scheduled
            scheduled += event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
            return scheduled == self.shape.before

        await common.follow_history(handle, last_step_before_signal, self.timeout, "reaching its signal")
        await handle.signal("approve", "bench")
        result = await asyncio.wait_for(handle.result(), self.timeout)
        if result != "rolled_back":
            fail(f"{workflow_id} returned {result!r}")
        return time.monotonic() - began


async def measure(
    keys: list[str], one: Callable[[str], Awaitable[float]], concurrency: int
) -> tuple[float, list[float]]:
    """Run `one` for every key, `concurrency` at a time; (wall seconds, per-item seconds)."""
    limit = asyncio.Semaphore(concurrency)

    async def bounded(key: str) -> float:
        async with limit:
            return await one(key)

    began = time.monotonic()
    latencies = await asyncio.gather(*(bounded(key) for key in keys))
    return time.monotonic() - began, list(latencies)


async def history_shape(handle: WorkflowHandle[object, IncidentResult]) -> tuple[bare.Shape, dict[str, int]]:
    """Activities scheduled before and after the approval, and what else the runbook recorded."""
    before = after = 0
    approved = False
    counts: dict[str, int] = {"events": 0, "upserts": 0, "timers": 0, "signals": 0}
    async for event in handle.fetch_history_events():
        counts["events"] += 1
        kind = event.event_type
        if kind == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            if approved:
                after += 1
            else:
                before += 1
        elif kind == EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES:
            counts["upserts"] += 1
        elif kind == EventType.EVENT_TYPE_TIMER_STARTED:
            counts["timers"] += 1
        elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
            counts["signals"] += 1
            if event.workflow_execution_signaled_event_attributes.signal_name == "approve":
                approved = True
        elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
            approved = True
    if not approved or before == 0:
        fail(f"the warm-up incident's history has no approval after an activity ({before} before)")
    return bare.Shape(before=before, after=after), counts


async def agents_rolled_back(settings: Settings, agent_ids: list[str]) -> None:
    """The effect, checked on the sandbox after the timed run: every agent paused, then rolled back to v2."""
    async with common.sandbox_client(settings) as sandbox:
        limit = asyncio.Semaphore(16)

        async def one(agent_id: str) -> None:
            async with limit:
                agent = (await sandbox.get(f"/agents/{agent_id}")).json()
                events = [entry["event"] for entry in agent.get("history", [])]
                if (
                    agent.get("version") != "v2"
                    or events.count("paused") != 1
                    or events.count("rolled_back") != 1
                ):
                    fail(f"agent {agent_id} is {agent.get('state')} at {agent.get('version')}: {events}")

        await asyncio.gather(*(one(agent_id) for agent_id in agent_ids))


def start_bare_worker(stack: Stack, task_queue: str, logs: Path) -> Child:
    child = Child(
        "bare-worker",
        [sys.executable, "-m", "bench.bare", "--task-queue", task_queue],
        logs / "bare-worker.log",
        env=child_environment(stack.settings),
        cwd=REPO_ROOT,
    )
    try:
        probe = stack.settings.model_copy(update={"task_queue": task_queue})
        child.wait_until_ready(lambda: has_poller(probe), WORKER_READY_SECONDS, f"poller on {task_queue!r}")
    except BaseException:
        child.stop()
        raise
    return child


class Phase:
    """One path's measured runs: walls, per-incident latencies and CPU, summed over rounds."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.count = 0
        self.wall = 0.0
        self.latencies: list[float] = []
        self.rates: list[float] = []
        self.cpu: dict[str, float] = {}

    async def run(
        self,
        keys: list[str],
        one: Callable[[str], Awaitable[float]],
        concurrency: int,
        pids: dict[str, int],
    ) -> None:
        meter = common.CpuMeter(pids)
        meter.start()
        wall, latencies = await measure(keys, one, concurrency)
        meter.stop()
        self.count += len(keys)
        self.wall += wall
        self.latencies += latencies
        self.rates.append(len(keys) / wall)
        for name, seconds in meter.spent.items():
            self.cpu[name] = self.cpu.get(name, 0.0) + seconds

    def report(self) -> float:
        rate = self.count / self.wall
        millis = [seconds * 1000 for seconds in self.latencies]
        print(
            f"{self.label:<26} {rate:6.2f} incidents/s   ({self.count} in {self.wall:5.1f} s)   "
            f"per incident p50 {statistics.median(millis):5.0f} ms  p95 {common.percentile(millis, 0.95):5.0f} ms"
        )
        return rate

    def cpu_per_incident(self) -> str:
        return "  ".join(f"{name} {seconds * 1000 / self.count:.0f}" for name, seconds in self.cpu.items())


async def body(args: argparse.Namespace, stack: Stack) -> None:
    settings = stack.settings
    run = common.run_id()
    client = await connect(settings)
    bare_client = await Client.connect(settings.temporal_address, namespace=settings.namespace)
    agents = [f"ovh-{run}-{index:05d}" for index in range(args.incidents * args.rounds + 1)]
    scratch: tempfile.TemporaryDirectory[str] | None = None
    if stack.home is not None:
        logs = stack.home / "logs"
    else:
        # A running stack has no home of ours for the bare worker's log; a failure shows its tail anyway.
        scratch = tempfile.TemporaryDirectory(prefix="stanch-bench-overhead-")
        logs = Path(scratch.name)
    bare_queue = f"bench-bare-{run}"
    common.print_header(
        "runbook overhead: agent emergency stop vs bare workflow",
        stack,
        f"{args.rounds} rounds of {args.incidents} incidents per path, {args.concurrency} in flight, "
        f"approval by {args.approve_with}",
    )
    limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=args.concurrency)
    async with httpx.AsyncClient(timeout=60, limits=limits, trust_env=False) as http:
        real = RealPath(settings, client, http, timeout=args.timeout, approve_with=args.approve_with)
        worker: Child | None = None
        bare_path: BarePath | None = None
        try:
            note(f"creating {len(agents)} sandbox agents")
            await common.create_agents(settings, agents)
            note("warm-up incident, to read the happy path's shape from its history")
            await real.run(agents[0])
            shape, counts = await history_shape(client.get_workflow_handle(real.started[0]))
            print(
                f"real happy-path history     {shape.before + shape.after} ActivityTaskScheduled "
                f"({shape.before} before the approval, {shape.after} after), {counts['events']} events, "
                f"{counts['upserts']} search-attribute upserts, {counts['timers']} timers, "
                f"{counts['signals']} signals"
            )
            worker = await asyncio.to_thread(start_bare_worker, stack, bare_queue, logs)
            print(
                f"bare reference (frozen)     {BARE_SHAPE.before + BARE_SHAPE.after} ActivityTaskScheduled "
                f"({BARE_SHAPE.before} before the signal, {BARE_SHAPE.after} after)"
            )
            bare_path = BarePath(bare_client, bare_queue, BARE_SHAPE, args.timeout)
            await bare_path.run(f"bench-bare-{run}-warmup")

            pids = {**stack.pids(), "bare-worker": worker.pid}
            real_phase, bare_phase = Phase("runbook (intake → done)"), Phase("bare workflow")
            for round_index in range(args.rounds):
                # Alternate which path goes first, so neither always meets the fuller database.
                first_real = round_index % 2 == 0
                batch = agents[1 + round_index * args.incidents : 1 + (round_index + 1) * args.incidents]
                bare_ids = [f"bench-bare-{run}-{round_index}-{index:04d}" for index in range(args.incidents)]
                plan = [(real_phase, batch, real.run), (bare_phase, bare_ids, bare_path.run)]
                for phase, keys, one in plan if first_real else plan[::-1]:
                    note(f"round {round_index + 1}: {phase.label}, {len(keys)} incidents")
                    await phase.run(keys, one, args.concurrency, pids)
                print(
                    f"round {round_index + 1} ({'runbook' if first_real else 'bare'} first)        "
                    f"runbook {real_phase.rates[-1]:5.2f}/s   bare {bare_phase.rates[-1]:5.2f}/s   "
                    f"ratio {real_phase.rates[-1] / bare_phase.rates[-1]:.2f}"
                )
            await agents_rolled_back(settings, agents[1:])

            real_rate, bare_rate = real_phase.report(), bare_phase.report()
            print(
                f"ratio runbook / bare        {real_rate / bare_rate:.2f}   "
                f"(the bare workflow is {bare_rate / real_rate:.1f}x the runbook's throughput)"
            )
            print("CPU ms per incident, by process:")
            print(f"  runbook   {real_phase.cpu_per_incident()}")
            print(f"  bare      {bare_phase.cpu_per_incident()}")
        finally:
            leftovers = [*real.started, *(bare_path.started if bare_path else [])]
            await common.terminate_all(client, leftovers, "bench overhead done")
            if worker is not None:
                worker.stop()
            if scratch is not None:
                scratch.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--incidents", type=int, default=100, help="incidents per path and round (default 100)"
    )
    parser.add_argument("--concurrency", type=int, default=32, help="incidents in flight (default 32)")
    parser.add_argument("--approve-with", choices=["signal", "update"], default="signal")
    parser.add_argument(
        "--rounds", type=int, default=4, help="rounds, alternating which path goes first (default 4)"
    )
    parser.add_argument("--timeout", type=float, default=120, help="seconds one incident may take")

    def check(args: argparse.Namespace) -> str | None:
        if min(args.incidents, args.concurrency, args.rounds) < 1:
            return "need --incidents, --concurrency and --rounds >= 1"
        return None

    common.main("overhead", parser, body, check)


if __name__ == "__main__":
    main()
