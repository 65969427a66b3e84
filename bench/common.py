"""What every benchmark shares: a stack to measure, clean failure, cleanup, and a few measuring helpers.

By default a benchmark brings up its own private dev stack (`stanch.ops.devstack.DevStack`: Postgres, the
Temporal dev server, sandbox, worker and intake, each its own process) in a temporary home on free ports,
so it needs nothing running and cannot disturb a developer's `make dev`. `--running` measures the stack
the STANCH_* settings point at instead. Whatever happens (an error, Ctrl-C, SIGTERM) the private stack is
stopped; its home is removed unless the run failed, in which case the logs are kept and their path printed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

import httpx
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode

from stanch.ops.devstack import DevStack, DevStackError, settings_on_free_ports
from stanch.policy import load_policy
from stanch.settings import Settings, load_settings_or_exit

# The example policy's route for AgentHallucination alerts: the agent emergency stop runbook.
ROUTE = "agent-hallucination"
AGENT_VERSIONS = ["v1", "v2", "v3"]


class BenchFailure(Exception):
    """The system misbehaved (an incident never paused, a wrong result): one line, exit code 1."""


def fail(message: str) -> NoReturn:
    raise BenchFailure(message)


@dataclass
class Stack:
    settings: Settings
    devstack: DevStack | None  # None when measuring an already running stack (`--running`)
    home: Path | None
    given_pids: dict[str, int]  # `--pid name=pid`, for a running stack
    label: str = ""

    def pids(self) -> dict[str, int]:
        """The stack's processes by name ("temporal", "postgres", "worker", "intake", "sandbox")."""
        if self.devstack is None:
            return dict(self.given_pids)
        return {child.name: child.pid for child in self.devstack.children}

    def pid(self, name: str) -> int | None:
        return self.pids().get(name)

    @property
    def description(self) -> str:
        if self.label:
            return self.label
        if self.devstack is None:
            return f"running stack (Temporal at {self.settings.temporal_address})"
        return f"private dev stack in {self.home}"


def add_stack_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--running",
        action="store_true",
        help="measure the stack the STANCH_* settings point at (e.g. `make dev`) instead of a private one",
    )
    parser.add_argument(
        "--pid",
        action="append",
        default=[],
        metavar="NAME=PID",
        help="with --running: a process to measure, e.g. worker=1234 or temporal=1200 (repeatable)",
    )


def _given_pids(parser: argparse.ArgumentParser, values: list[str]) -> dict[str, int]:
    pids: dict[str, int] = {}
    for value in values:
        name, _, pid = value.partition("=")
        if not name or not pid.isdigit():
            parser.error(f"--pid takes NAME=PID, not {value!r}")
        pids[name] = int(pid)
    return pids


@contextmanager
def bench_stack(
    name: str,
    args: argparse.Namespace,
    given_pids: dict[str, int],
    needed: bool = True,
    configure: Callable[[Settings], Settings] | None = None,
) -> Iterator[Stack]:
    if args.running or not needed:
        label = "" if args.running else "no stack needed"
        yield Stack(load_settings_or_exit(), None, None, given_pids, label)
        return
    home = Path(tempfile.mkdtemp(prefix=f"stanch-bench-{name}-"))
    ok = False
    try:
        began = time.monotonic()
        # DevStack.start stops whatever it started if it fails or is interrupted half-way.
        settings = settings_on_free_ports(home)
        if configure is not None:
            settings = configure(settings)
        with DevStack(settings, log=lambda line: None) as devstack:
            note(f"private dev stack up in {time.monotonic() - began:.1f} s ({home})")
            yield Stack(devstack.settings, devstack, home, {})
            ok = True
    finally:
        if ok:
            shutil.rmtree(home, ignore_errors=True)
        else:
            note(f"the private stack's logs are kept in {home / 'logs'}")


def _terminate_as_interrupt(signum: int, frame: FrameType | None) -> None:
    # SIGTERM takes the same path as Ctrl-C, so the `with` blocks stop everything this script started.
    raise KeyboardInterrupt


def main(
    name: str,
    parser: argparse.ArgumentParser,
    body: Callable[[argparse.Namespace, Stack], Coroutine[Any, Any, None]],
    check: Callable[[argparse.Namespace], str | None] = lambda args: None,
    needs_stack: Callable[[argparse.Namespace], bool] = lambda args: True,
    configure: Callable[[Settings], Settings] | None = None,
) -> None:
    """Parse, bring up the stack, run `body`, stop the stack; failures end in one line and exit code 1.

    `check` names what is wrong with the arguments, if anything, before any process is started;
    `needs_stack` false runs `body` with the STANCH_* settings and starts nothing; `configure` adjusts a
    private stack's settings before it starts (e.g. a policy with the benchmark's own routes).
    """
    add_stack_options(parser)
    args = parser.parse_args()
    problem = check(args)
    if problem:
        parser.error(problem)
    given_pids = _given_pids(parser, args.pid)
    signal.signal(signal.SIGTERM, _terminate_as_interrupt)
    try:
        with bench_stack(name, args, given_pids, needs_stack(args), configure) as stack:
            asyncio.run(body(args, stack))
    except BenchFailure as error:
        print(f"bench {name}: FAILED: {error}", file=sys.stderr, flush=True)
        raise SystemExit(1) from None
    except DevStackError as error:
        print(f"bench {name}: FAILED: the dev stack: {error}", file=sys.stderr, flush=True)
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        print(f"bench {name}: interrupted; everything it started is stopped", file=sys.stderr, flush=True)
        raise SystemExit(130) from None


# ---- reporting ----------------------------------------------------------------------------------------


def note(text: str) -> None:
    """Progress goes to stderr, so stdout holds only the figures."""
    print(f"  .. {text}", file=sys.stderr, flush=True)


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def print_header(title: str, stack: Stack, sizes: str) -> None:
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(f"== {title}")
    print(f"   {now}; {os.cpu_count()} cores; load average {load_average()} (1/5/15 min) at start")
    print(f"   {sizes}; {stack.description}")


def percentile(values: Iterable[float], fraction: float) -> float:
    """Nearest-rank percentile: p99 of 50 samples is the largest but zero."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def latency_line(label: str, millis: list[float]) -> str:
    if not millis:
        return f"{label:<28} no samples"
    return (
        f"{label:<28} p50 {statistics.median(millis):6.0f} ms   p95 {percentile(millis, 0.95):6.0f} ms   "
        f"p99 {percentile(millis, 0.99):6.0f} ms   max {max(millis):6.0f} ms   (n={len(millis)})"
    )


def rss_mb(pid: int | None) -> tuple[float, float] | None:
    """(VmRSS, VmHWM) of a process in MB from /proc/<pid>/status: resident now, and its peak."""
    if pid is None:
        return None
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses; everything after its last ")" is fixed.
    return raw[raw.rindex(")") + 2 :].split()


def cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU of a process and its live descendants (Postgres serves each connection from a
    child of the postmaster), from /proc/<pid>/stat."""
    if pid is None:
        return None
    parents: dict[int, int] = {}
    spent: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is None:
            continue
        # After the name: state, ppid (index 1), ..., utime (index 11), stime (index 12).
        parents[int(entry.name)] = int(fields[1])
        spent[int(entry.name)] = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    if pid not in spent:
        return None
    tree = {pid}
    grew = True
    while grew:
        grew = False
        for child, parent in parents.items():
            if parent in tree and child not in tree:
                tree.add(child)
                grew = True
    return sum(spent[member] for member in tree)


class CpuMeter:
    """CPU seconds each named process (and this script) spent between `start()` and `stop()`."""

    def __init__(self, pids: Mapping[str, int | None]) -> None:
        self.pids = {name: pid for name, pid in pids.items() if pid is not None}
        self._began: dict[str, float] = {}
        self._began_at = 0.0
        self.spent: dict[str, float] = {}
        self.wall = 0.0

    def _now(self) -> dict[str, float]:
        now = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        times = os.times()
        readings = {name: value for name, value in now.items() if value is not None}
        readings["bench client"] = times.user + times.system
        return readings

    def start(self) -> None:
        self._began = self._now()
        self._began_at = time.monotonic()

    def stop(self) -> None:
        now = self._now()
        self.spent = {name: now[name] - began for name, began in self._began.items() if name in now}
        self.wall = time.monotonic() - self._began_at

    def per_item(self, count: int) -> str:
        """CPU milliseconds per item, by process."""
        return "  ".join(f"{name} {seconds * 1000 / count:.0f}" for name, seconds in self.spent.items())

    def busy(self) -> str:
        """Share of one core each process used over the measured wall time."""
        return "  ".join(f"{name} {seconds / self.wall:.0%}" for name, seconds in self.spent.items())


# ---- the stack's parts ----------------------------------------------------------------------------------


def run_id() -> str:
    return uuid.uuid4().hex[:6]


def intake_url(settings: Settings) -> str:
    return f"http://127.0.0.1:{settings.intake_port}/alerts/alertmanager"


def intake_headers(settings: Settings) -> dict[str, str]:
    if settings.intake_token is None:
        return {}
    return {"Authorization": f"Bearer {settings.intake_token.get_secret_value()}"}


def incident_id(agent_id: str, route: str = ROUTE) -> str:
    """The incident the intake opens for an agent's alert on `route` (fingerprint = agent id)."""
    return f"incident-{route}-{agent_id}"


def approver(settings: Settings) -> str:
    """Someone the policy lets approve the emergency stop's rollback (roles oncall or lead)."""
    roles = load_policy(settings.config).role_people()
    for role in ("oncall", "lead"):
        if roles.get(role):
            return roles[role][0]
    if roles:
        fail(f"the policy {settings.config} names nobody in the oncall or lead roles")
    return "bench"  # a policy without roles lets anyone decide


def sandbox_client(settings: Settings, concurrency: int = 32) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    return httpx.AsyncClient(base_url=settings.platform_url, timeout=30, limits=limits, trust_env=False)


async def create_agents(settings: Settings, agent_ids: list[str], concurrency: int = 32) -> None:
    """One sandbox agent per incident: the runbook pauses and rolls back that agent for real."""
    limit = asyncio.Semaphore(concurrency)
    async with sandbox_client(settings, concurrency) as sandbox:

        async def one(agent_id: str) -> None:
            async with limit:
                response = await sandbox.put(f"/agents/{agent_id}", json={"versions": AGENT_VERSIONS})
                if response.status_code >= 300:
                    fail(f"the sandbox refused agent {agent_id}: {response.status_code} {response.text}")

        await asyncio.gather(*(one(agent_id) for agent_id in agent_ids))


async def pause_calls(sandbox: httpx.AsyncClient, path_prefix: str) -> dict[str, datetime]:
    """When each agent under `path_prefix` was first paused, by the sandbox's call log: agent id → time."""
    response = await sandbox.get("/calls", params={"path_prefix": path_prefix})
    response.raise_for_status()
    paused: dict[str, datetime] = {}
    for call in response.json():
        path: str = call["path"]
        if call["method"] == "POST" and path.endswith("/pause") and not call["replayed"]:
            agent_id = path.removeprefix("/agents/").removesuffix("/pause")
            paused.setdefault(agent_id, datetime.fromisoformat(call["at"]))
    return paused


async def search_state(client: Client, workflow_id: str) -> str | None:
    """The incident's StanchState as its mutable state holds it (describe, not the visibility store)."""
    description = await client.get_workflow_handle(workflow_id).describe()
    values = description.raw_description.workflow_execution_info.search_attributes.indexed_fields
    if "StanchState" not in values:
        return None
    state = client.data_converter.payload_converter.from_payload(values["StanchState"], str)
    return str(state)


async def follow_history(
    handle: WorkflowHandle[Any, Any], arrived: Callable[[HistoryEvent], bool], within: float, what: str
) -> None:
    """Follow the history as the server writes it (long poll) until an event says we have arrived.

    No polling interval: both paths learn they may send the approval as soon as the server knows.
    """

    async def follow() -> bool:
        async for event in handle.fetch_history_events(wait_new_event=True):
            if arrived(event):
                return True
        return False

    try:
        if not await asyncio.wait_for(follow(), within):
            fail(f"{handle.id} closed before {what}")
    except TimeoutError:
        fail(f"{handle.id} was not {what} within {within:g} s")


def sets_state(client: Client, event: HistoryEvent, state: str) -> bool:
    """Whether this history event is the runbook publishing StanchState = `state`."""
    if event.event_type != EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES:
        return False
    fields = event.upsert_workflow_search_attributes_event_attributes.search_attributes.indexed_fields
    if "StanchState" not in fields:
        return False
    return bool(client.data_converter.payload_converter.from_payload(fields["StanchState"], str) == state)


async def poll(
    check: Callable[[], Awaitable[bool]], *, within: float, what: str, interval: float = 0.05
) -> None:
    """Poll until `check` holds, or fail naming `what`: every wait in a benchmark is bounded."""
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            fail(f"{what} did not happen within {within:g} s")
        await asyncio.sleep(interval)


async def terminate_all(
    client: Client, workflow_ids: Iterable[str], reason: str, concurrency: int = 32
) -> int:
    """Terminate what a benchmark left running; the ones that already closed are skipped. Returns the count."""
    limit = asyncio.Semaphore(concurrency)
    terminated = 0

    async def one(workflow_id: str) -> None:
        nonlocal terminated
        async with limit:
            try:
                await client.get_workflow_handle(workflow_id).terminate(reason)
                terminated += 1
            except RPCError as error:
                if error.status is not RPCStatusCode.NOT_FOUND:
                    raise

    await asyncio.gather(*(one(workflow_id) for workflow_id in workflow_ids))
    return terminated
