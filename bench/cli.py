"""The CLI a person types at 3 a.m. against the `temporal` CLI doing the same on the same server (issue 15,
goal 7): wall time of whole processes, as a person waits for them.

    .venv/bin/python -m bench.cli [--incidents 1000] [--runs 10] [--running]

Each pair runs --runs times, alternating which goes first, on the same private dev stack; printed is the
p50 of each, their ratio and the exact commands:
  - `stanch --help` vs `temporal --help`;
  - `stanch list` (the open incidents) vs `temporal workflow list --query` with stanch list's own query,
    with --incidents agent_emergency_stop incidents parked at their approval gate (opened as the intake
    opens them: signal-with-start of the routed alert, bench.parked's Parker); both must list all of them;
  - `stanch brief X` vs `temporal workflow query --name brief` on a parked incident (stanch over Temporal's
    HTTP API, STANCH_TEMPORAL_HTTP_URL, which the dev stack serves; an `sdk` line times the same command on
    its gRPC fallback, without the URL);
  - `stanch approve X rollback --as <approver> --yes` vs `temporal workflow update execute --name decide`
    with the same decision, each on its own parked incident. The rollback is not destructive, so the
    policy asks for no signature and neither side signs (stanch runs with a HOME holding no key).
Every incident is terminated at the end.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench import common
from bench.common import Stack, fail, note
from bench.parked import AWAITING, Parker
from stanch.ops.devstack import child_environment
from stanch.policy import load_policy
from stanch.settings import Settings
from stanch.temporal_client import connect

# The interpreter running the benchmark and its console scripts (`make install`'s venv, or a worktree's).
BIN = Path(sys.executable).parent
TEMPORAL = str(BIN / "temporal")
PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
# `stanch list` with neither --state nor --all asks exactly this (stanch/ops/cli.py, list_incidents).
OPEN_INCIDENTS = "StanchRunbook IS NOT NULL AND ExecutionStatus = 'Running'"
SDK_IMPORT = [str(BIN / "python"), "-c", "import temporalio.client"]
# Goals of issue 15: the most each stanch command may take, as a multiple of the temporal CLI's p50.
GOALS = {"--help": 6.0, "list": 3.0, "brief": 3.0, "approve": 3.0}


@dataclass
class Pair:
    name: str
    stanch: list[str]
    temporal: list[str]
    stanch_s: list[float]
    temporal_s: list[float]

    def line(self) -> str:
        ours, theirs = statistics.median(self.stanch_s), statistics.median(self.temporal_s)
        ratio = ours / theirs
        goal = GOALS[self.name]
        verdict = "met" if ratio <= goal else "NOT met"
        return (
            f"{self.name:<8} stanch p50 {ours * 1000:7.0f} ms   temporal p50 {theirs * 1000:7.0f} ms   "
            f"ratio {ratio:5.1f}x (goal <= {goal:g}x: {verdict})   (n={len(self.stanch_s)})\n"
            f"         $ {shlex.join(self.stanch)}\n         $ {shlex.join(self.temporal)}"
        )


def run_timed(command: list[str], env: dict[str, str]) -> tuple[float, str]:
    """Wall seconds of one process, and its stdout; a failure fails the benchmark."""
    began = time.monotonic()
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600, check=False)
    seconds = time.monotonic() - began
    if done.returncode != 0:
        fail(f"`{shlex.join(command)}` exited {done.returncode}: {done.stderr.strip()[-400:]}")
    return seconds, done.stdout


def measure(
    name: str,
    runs: int,
    stanch: Callable[[int], list[str]],
    temporal: Callable[[int], list[str]],
    env: dict[str, str],
    check: Callable[[str, str], None] = lambda side, out: None,
) -> Pair:
    """`runs` of each side, alternating which goes first; run i gets index i (its own incident, if any)."""
    pair = Pair(name, stanch(0), temporal(0), [], [])
    for index in range(runs):
        sides = [("stanch", stanch(index), pair.stanch_s), ("temporal", temporal(index), pair.temporal_s)]
        for side, command, seconds in sides if index % 2 == 0 else reversed(sides):
            took, out = run_timed(command, env)
            check(side, out)
            seconds.append(took)
    note(f"{name}: done")
    return pair


def console_script(directory: Path) -> str:
    """The `stanch` a person runs: the console script pyproject.toml declares. The venv's own when it calls
    that entry point; else (a venv installed before the entry point changed, or from another checkout) the
    same script written into `directory`, as pip writes it, so what is timed is this checkout's entry."""
    declared = tomllib.loads(PYPROJECT.read_text())["project"]["scripts"]["stanch"]
    module, function = declared.split(":")
    body = (
        f"import sys\nfrom {module} import {function}\nif __name__ == '__main__':\n"
        f"    sys.argv[0] = sys.argv[0].removesuffix('.exe')\n    sys.exit({function}())\n"
    )
    installed = BIN / "stanch"
    if installed.exists() and f"from {module} import {function}\n" in installed.read_text():
        return str(installed)
    script = directory / "stanch"
    script.write_text(f"#!{sys.executable}\n{body}")
    script.chmod(0o755)
    note(f"{installed} calls another entry point than {declared}: timing {script}")
    return str(script)


def temporal_flags(settings: Settings) -> list[str]:
    return ["--address", settings.temporal_address, "--namespace", settings.namespace]


async def body(args: argparse.Namespace, stack: Stack) -> None:
    settings = stack.settings
    client = await connect(settings)
    parker = Parker(settings, client, load_policy(settings.config), common.run_id())
    approver = common.approver(settings)
    flags = temporal_flags(settings)
    # stanch signs with ~/.ssh/id_ed25519 when it exists: a HOME without one makes both sides unsigned.
    keyless_home = tempfile.TemporaryDirectory(prefix="stanch-bench-cli-home-")
    scripts = tempfile.TemporaryDirectory(prefix="stanch-bench-cli-bin-")
    stanch = console_script(Path(scripts.name))
    env = child_environment(settings) | {"HOME": keyless_home.name}
    env.pop("STANCH_SIGNING_KEY", None)
    common.print_header(
        "the CLI against the temporal CLI",
        stack,
        f"{args.incidents} open incidents parked at approval; p50 of {args.runs} runs per command, alternating",
    )
    pairs: list[Pair] = []
    try:
        pairs.append(
            measure("--help", args.runs, lambda i: [stanch, "--help"], lambda i: [TEMPORAL, "--help"], env)
        )
        print(pairs[-1].line(), flush=True)

        agents = [parker.agent(index) for index in range(args.incidents)]
        await common.create_agents(settings, agents)
        note(f"parking {len(agents)} incidents")
        began = time.monotonic()
        await parker.open_many(agents, 64, args.timeout)

        async def all_parked() -> bool:
            return await parker.count(AWAITING) >= len(agents)

        await common.poll(
            all_parked, within=args.timeout, what=f"{len(agents)} incidents parking", interval=0.5
        )
        note(f"{len(agents)} parked in {time.monotonic() - began:.0f} s")
        open_now = (await client.count_workflows(OPEN_INCIDENTS)).count
        if open_now != len(agents):
            fail(f"{open_now} open incidents on the server, not the {len(agents)} parked")

        def lists_all(side: str, out: str) -> None:
            # stanch prints one line per incident; temporal a header line and one row per workflow.
            rows = [line for line in out.splitlines() if line.strip() and "incident-" in line]
            if len(rows) != open_now:
                fail(f"{side} listed {len(rows)} incidents, not the {open_now} open")

        pairs.append(
            measure(
                "list",
                args.runs,
                lambda i: [stanch, "list"],
                lambda i: [TEMPORAL, "workflow", "list", "--query", OPEN_INCIDENTS, *flags],
                env,
                lists_all,
            )
        )
        print(pairs[-1].line(), flush=True)

        first = parker.started[0]

        def shows_the_brief(side: str, out: str) -> None:
            if first.removeprefix("incident-") not in out and first not in out:
                fail(f"{side}'s brief does not name {first}: {out[:200]!r}")

        pairs.append(
            measure(
                "brief",
                args.runs,
                lambda i: [stanch, "brief", first],
                lambda i: [TEMPORAL, "workflow", "query", "--workflow-id", first, "--name", "brief", *flags],
                env,
                shows_the_brief,
            )
        )
        print(pairs[-1].line(), flush=True)
        # The same `stanch brief` without STANCH_TEMPORAL_HTTP_URL: the SDK path it falls back to, what the
        # HTTP path saves (issue 15), in the same run.
        sdk_env = {name: value for name, value in env.items() if name != "STANCH_TEMPORAL_HTTP_URL"}
        sdk_brief = [run_timed([stanch, "brief", first], sdk_env)[0] for _ in range(args.runs)]
        ours, theirs = statistics.median(sdk_brief), statistics.median(pairs[-1].temporal_s)
        print(
            f"{'sdk':<8} stanch brief without STANCH_TEMPORAL_HTTP_URL (the gRPC fallback) p50 {ours * 1000:7.0f} ms"
            f" = {ours / theirs:.1f}x temporal workflow query's p50 (no goal: what the HTTP path saves)",
            flush=True,
        )
        # What any CLI on the Python SDK pays before its first RPC, against the same temporal query: the
        # floor under `stanch brief` and `approve` while they import temporalio.client.
        floor = [run_timed(SDK_IMPORT, env)[0] for _ in range(args.runs)]
        ours, theirs = statistics.median(floor), statistics.median(pairs[-1].temporal_s)
        print(
            f"{'floor':<8} python -c 'import temporalio.client' p50 {ours * 1000:7.0f} ms = {ours / theirs:.1f}x "
            f"temporal workflow query's p50 (no goal: a reference)",
            flush=True,
        )

        # Each approval ends its incident's wait, so each run approves its own: stanch the odd ones after
        # the first, temporal the even ones.
        if len(parker.started) < 2 * args.runs + 1:
            fail(f"--incidents {args.incidents} is too few for {args.runs} approvals each side")
        decision = json.dumps(
            {"approver": approver, "action": "rollback", "comment": "bench", "approved": True}
        )
        pairs.append(
            measure(
                "approve",
                args.runs,
                lambda i: [
                    stanch,
                    "approve",
                    parker.started[1 + 2 * i],
                    "rollback",
                    "--as",
                    approver,
                    "--yes",
                ],
                lambda i: [
                    TEMPORAL,
                    "workflow",
                    "update",
                    "execute",
                    "--workflow-id",
                    parker.started[2 + 2 * i],
                    "--name",
                    "decide",
                    "--input",
                    decision,
                    *flags,
                ],
                env,
            )
        )
        print(pairs[-1].line(), flush=True)
    finally:
        note(f"terminating {len(parker.started)} incidents")
        await common.terminate_all(client, parker.started, "bench cli done", concurrency=64)
        keyless_home.cleanup()
        scripts.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--incidents", type=int, default=1000, help="open incidents to list (default 1000)")
    parser.add_argument("--runs", type=int, default=10, help="runs of each command (default 10)")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds the incidents may take to park")

    def check(args: argparse.Namespace) -> str | None:
        if args.runs < 1 or args.incidents < 2 * args.runs + 1:
            return "need --runs >= 1 and --incidents >= 2 * --runs + 1 (each approval uses its own incident)"
        return None

    common.main("cli", parser, body, check)


if __name__ == "__main__":
    main()
