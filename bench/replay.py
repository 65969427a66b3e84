"""Replay: histories replayed per second by `stanch audit replay`.

    .venv/bin/python -m bench.replay [--fresh 20] [--repeats 3] [--running]

Two sets of histories, each replayed by the CLI command itself (`stanch audit replay <file>...`, one
process, timed from spawn to exit, median of --repeats runs; every history must replay OK):
  - recorded: every history under tests/histories (all runbooks and paths; the deliberately
    non-deterministic one left out);
  - fresh: --fresh agent emergency stop incidents run end to end on the stack (intake POST, approval,
    rollback) and exported with `stanch audit export <id> -o <file>`. `--fresh 0` skips them and starts
    no stack.
Per set it prints histories/s including process start-up, and excluding it: start-up is the time of the
same command replaying one small history, so (n - 1) / (t_n - t_1). The in-process figure calls
`stanch.ops.replay.replay` (what the command runs) on the loaded histories, without the process at all.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer, UnsandboxedWorkflowRunner

from bench import common
from bench.common import Stack, fail, note
from bench.overhead import RealPath
from stanch.codec import data_converter
from stanch.ops.devstack import child_environment
from stanch.ops.replay import load_history, replay
from stanch.settings import REPO_ROOT, Settings
from stanch.temporal_client import connect
from workflows.registry import WORKFLOWS

RECORDED = REPO_ROOT / "tests" / "histories"
STANCH = REPO_ROOT / ".venv" / "bin" / "stanch"
CLI_TIMEOUT_SECONDS = 600


def recorded_histories() -> list[Path]:
    return sorted(path for path in RECORDED.glob("*/*.json") if path.parent.name != "nondeterministic")


def stanch(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(STANCH), *args],
        env=child_environment(settings),
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_SECONDS,
        check=False,
    )


def cli_replay_seconds(settings: Settings, files: list[Path], repeats: int) -> float:
    """Median wall time of `stanch audit replay` over `files`; fails unless every one replays OK."""
    seconds = []
    for _ in range(repeats):
        began = time.monotonic()
        replayed = stanch(settings, "audit", "replay", *map(str, files))
        seconds.append(time.monotonic() - began)
        if replayed.returncode != 0 or f"{len(files)} replayed OK, 0 failed" not in replayed.stdout:
            last = (replayed.stdout.strip().splitlines() or [replayed.stderr.strip()])[-1]
            fail(f"`stanch audit replay` of {len(files)} histories exited {replayed.returncode}: {last}")
    return statistics.median(seconds)


async def in_process(settings: Settings, files: list[Path]) -> tuple[float, float, float, int]:
    """(seconds to load, to replay, to replay without the workflow sandbox, events) for `files`."""
    began = time.monotonic()
    histories = [(str(path), load_history(path)) for path in files]
    loaded = time.monotonic()
    outcomes = await replay(histories, data_converter=data_converter(settings))
    replayed = time.monotonic()
    failed = [outcome for outcome in outcomes if not outcome.ok]
    if failed:
        fail(f"{len(failed)} histories failed to replay: {failed[0].line()}")
    # The same replay outside the sandbox, only to show what the sandbox's isolation costs per history.
    unsandboxed = Replayer(
        workflows=list(WORKFLOWS),
        data_converter=data_converter(settings),
        workflow_runner=UnsandboxedWorkflowRunner(),
    )

    async def each() -> AsyncIterator[WorkflowHistory]:
        for _, history in histories:
            yield history

    began_bare = time.monotonic()
    await unsandboxed.replay_workflows(each(), raise_on_replay_failure=True)
    bare = time.monotonic() - began_bare
    return loaded - began, replayed - loaded, bare, sum(len(history.events) for _, history in histories)


async def export_fresh(stack: Stack, count: int, directory: Path) -> tuple[list[Path], float]:
    """Run `count` emergency stops end to end and export their histories with the CLI; (files, s per export)."""
    settings = stack.settings
    client = await connect(settings)
    run = common.run_id()
    agents = [f"rp-{run}-{index:04d}" for index in range(count)]
    await common.create_agents(settings, agents)
    async with httpx.AsyncClient(timeout=60, trust_env=False) as http:
        real = RealPath(settings, client, http, timeout=120)
        limit = asyncio.Semaphore(8)

        async def one(agent_id: str) -> None:
            async with limit:
                await real.run(agent_id)

        try:
            await asyncio.gather(*(one(agent_id) for agent_id in agents))
        finally:
            await common.terminate_all(client, real.started, "bench replay: unfinished")
    files = []
    began = time.monotonic()
    for workflow_id in real.started:
        target = directory / f"{workflow_id}.json"
        exported = stanch(settings, "audit", "export", workflow_id, "-o", str(target))
        if exported.returncode != 0 or not target.is_file():
            fail(
                f"`stanch audit export {workflow_id}` exited {exported.returncode}: {exported.stderr.strip()}"
            )
        files.append(target)
    return files, (time.monotonic() - began) / len(files)


async def report(settings: Settings, label: str, files: list[Path], start_up: float, repeats: int) -> None:
    total = cli_replay_seconds(settings, files, repeats)
    load_s, replay_s, unsandboxed_s, events = await in_process(settings, files)
    count = len(files)
    print(f"{label}: {count} histories, {events} events")
    print(f"  `stanch audit replay` (one process)  {total:6.2f} s   {count / total:6.1f} histories/s")
    if total > start_up and count > 1:
        print(
            f"  excluding process start-up           {total - start_up:6.2f} s   "
            f"{(count - 1) / (total - start_up):6.1f} histories/s"
        )
    print(
        f"  in process (stanch.ops.replay.replay)    {replay_s:6.2f} s   {count / replay_s:6.1f} histories/s   "
        f"{events / replay_s:,.0f} events/s   (+ {load_s:.2f} s to load the files)"
    )
    print(
        f"  in process, no workflow sandbox      {unsandboxed_s:6.2f} s   {count / unsandboxed_s:6.1f} histories/s"
        "   (for comparison only: the CLI replays in the sandbox, as the worker runs)"
    )


async def body(args: argparse.Namespace, stack: Stack) -> None:
    settings = stack.settings
    recorded = recorded_histories()
    if not recorded:
        fail(f"no recorded histories under {RECORDED}")
    common.print_header(
        "replay: `stanch audit replay`",
        stack,
        f"{len(recorded)} recorded histories, {args.fresh} fresh exports, median of {args.repeats} runs",
    )
    smallest = min(recorded, key=lambda path: path.stat().st_size)
    start_up = cli_replay_seconds(settings, [smallest], args.repeats)
    print(f"start-up: `stanch audit replay` of one small history   {start_up:.2f} s")
    await report(settings, "recorded (tests/histories)", recorded, start_up, args.repeats)
    if args.fresh:
        with tempfile.TemporaryDirectory(prefix="stanch-bench-replay-") as directory:
            note(f"running {args.fresh} emergency stops end to end and exporting their histories")
            fresh, export_s = await export_fresh(stack, args.fresh, Path(directory))
            await report(settings, "fresh agent_emergency_stop exports", fresh, start_up, args.repeats)
            print(f"  (`stanch audit export` took {export_s:.2f} s per history, process included)")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--fresh", type=int, default=20, help="fresh histories to export (default 20)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each command (median; default 3)")

    def check(args: argparse.Namespace) -> str | None:
        return "need --fresh >= 0 and --repeats >= 1" if args.fresh < 0 or args.repeats < 1 else None

    common.main("replay", parser, body, check, needs_stack=lambda args: args.fresh > 0)


if __name__ == "__main__":
    main()
