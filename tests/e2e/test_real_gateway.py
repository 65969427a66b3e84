"""The gateway runbooks acting on a real process: a dev stack as `make dev` runs it (config/dev.toml, the
example gateway under supervisord), the worker reaching it through the `command` adapter and the example's
own scripts. What is asserted is read from the processes and their files: the gateway's pid from its health
endpoint, its memory from /proc, supervisord's log of the processes it spawned, safe-restart's record of the
keys it carried out and of every restart, the data directory's files, the audit rows.

The tests share one stack; each gets a fresh install of the gateway (its data directory seeded anew, so
safe-restart's own hourly count starts at zero) and a guardrail subsystem of its own, so its limits and the
script's are its own whatever ran before.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest

from stanch.ops.cli import DEV_POLICY
from stanch.ops.devstack import DevStack, settings_on_free_ports
from stanch.ops.devstack.example_database import ExampleDatabase
from stanch.ops.devstack.example_deploys import ExampleDeploys
from stanch.ops.devstack.example_gateway import ExampleGateway
from stanch.ops.samples import sample
from stanch.settings import REPO_ROOT, Settings
from tests.helpers import http_client
from tests.stack import (
    attempts_that_ended,
    brief_state,
    description,
    eventually,
    post_alert,
    result_of,
    stanch_cli,
    temporal_signal,
    terminate_running,
)

pytestmark = pytest.mark.e2e

GATEWAY = "openclaw-gateway"
RESTART_THRESHOLD = 0.80
# Long enough to catch the script between its announcement and the restart, short enough for a test.
SLOW_RESTART_WAIT_S = 4.0


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text(encoding="utf-8").splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for pid {pid}")


@dataclass
class RealGateway:
    stack: DevStack
    example: ExampleGateway
    # The guardrail that counts this test's automatic restarts.
    subsystem: str = "gateway"
    fired: list[str] = field(default_factory=list)

    @property
    def settings(self) -> Settings:
        return self.stack.settings

    @property
    def home(self) -> Path:
        return self.stack.example_home("gateway")

    @property
    def data(self) -> Path:
        return self.home / "data"

    def health(self) -> dict[str, Any]:
        body: dict[str, Any] = http_client.get(
            f"http://127.0.0.1:{self.example.port}/health", timeout=5
        ).json()
        return body

    def pid(self) -> int:
        return int(self.health()["pid"])

    def memory_above_threshold(self) -> float:
        """Open sessions until the gateway holds more than 80 % of its watermark, as a busy morning does."""
        while (memory := rss_mb(self.pid())) <= RESTART_THRESHOLD * self.example.high_watermark_mb + 5:
            http_client.post(f"http://127.0.0.1:{self.example.port}/sessions", json={"count": 10}, timeout=30)
        return memory

    def leave_junk(self) -> tuple[str, list[str]]:
        """A scheduled run that died leaving its record and cron session, and two transcripts to remove."""
        tag = uuid.uuid4().hex[:6]
        run = f"cron-{tag}"
        (self.data / "runs" / f"{run}.json").write_text(json.dumps({"name": run, "status": "dead"}))
        sessions = json.loads((self.data / "sessions.json").read_text())
        sessions["sessions"].append({"id": f"cron:{run}", "kind": "cron", "run": run})
        (self.data / "sessions.json").write_text(json.dumps(sessions))
        junk = [f"s-{tag}.jsonl.deleted", f"s-{tag}.jsonl.corrupt"]
        for name in junk:
            (self.data / name).write_text("{")
        return run, junk

    def spawned(self) -> list[int]:
        """Every gateway process supervisord started, from its own log."""
        log = (self.home / "supervisord.log").read_text(encoding="utf-8")
        return [int(pid) for pid in re.findall(r"spawned: 'gateway' with pid (\d+)", log)]

    def restarts(self) -> list[float]:
        """When safe-restart restarted the gateway, every time (its own record)."""
        path = self.data / "restarts.json"
        times: list[float] = json.loads(path.read_text()) if path.exists() else []
        return times

    def restarts_in_the_hour(self) -> int:
        return sum(1 for at in self.restarts() if time.time() - at < 3600)

    def keys(self) -> dict[str, Any]:
        path = self.data / "safe-restart-keys.json"
        keys: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
        return keys

    def lines(self, name: str) -> list[str]:
        path = self.data / name
        return path.read_text().splitlines() if path.exists() else []

    def announced(self) -> int:
        return sum(1 for line in self.lines("notices.log") if " gateway restart in " in line)

    def fire(self) -> str:
        """The `gateway-memory` sample alert, with this test's guardrail subsystem as a label."""
        body = sample("gateway-memory")
        for labels in (body["alerts"][0]["labels"], body["commonLabels"]):
            labels["subsystem"] = self.subsystem
        response = post_alert(self.settings, body)
        assert response.status_code == 202, response.text
        [incident] = response.json()["incidents"]
        assert incident["runbook"] == "gateway_safe_restart" and incident["action"] == "started", incident
        self.fired.append(incident["workflow_id"])
        return str(incident["workflow_id"])

    def run_id(self, workflow_id: str) -> str:
        return str(description(self.settings, workflow_id).workflow_execution_info.execution.run_id)

    def audit(self, workflow_id: str) -> list[dict[str, Any]]:
        """The audit rows of the incident's latest run (alerts for one key reuse its workflow id)."""
        with psycopg.connect(self.settings.database_url) as conn:
            cursor = conn.execute(
                "SELECT step_key, actor, outcome, reason FROM audit_log WHERE workflow_id = %s AND run_id = %s"
                " ORDER BY id",
                (workflow_id, self.run_id(workflow_id)),
            )
            names = [column.name for column in cursor.description or []]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def restart_worker(self, *, crash: bool = False) -> None:
        """A new worker process; its environment says how long the example's safe-restart waits."""
        self.stack.stop_part("worker", crash=crash)
        self.stack.start_part("worker")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealGateway]:
    home = tmp_path_factory.mktemp("real-gateway")
    settings = settings_on_free_ports(home).model_copy(update={"config": DEV_POLICY})
    example = ExampleGateway(restart_wait_s=0)
    # config/dev.toml acts on the other examples too; the worker refuses to start without their settings.
    examples = [example, ExampleDeploys(), ExampleDatabase()]
    with DevStack(settings, log=lambda line: None, examples=examples) as running:
        yield RealGateway(running, example)
        spawned = RealGateway(running, example).spawned()
    # supervisord stopped with the stack, and the gateway with it.
    assert not [pid for pid in spawned if Path(f"/proc/{pid}").exists()]


@pytest.fixture
def real(stack: RealGateway) -> Iterator[RealGateway]:
    """A fresh install of the example gateway (seeded, warm) and a guardrail subsystem of this test's own."""
    stack.stack.stop_part("gateway")
    shutil.rmtree(stack.home)
    stack.stack.start_part("gateway")
    fresh = RealGateway(stack.stack, stack.example, subsystem=f"gw-{uuid.uuid4().hex[:8]}")
    yield fresh
    # An incident a failed test left open would take the next test's alert: every alert shares its key.
    terminate_running(fresh.settings, set(fresh.fired))


def test_the_dev_stack_runs_the_example_gateway_warm_and_names_it_in_the_banner(real: RealGateway) -> None:
    assert real.health()["status"] == "ok"
    assert real.spawned()[-1] == real.pid()
    # The banner's columns are as wide as its longest label, which depends on the examples it lists.
    banner = re.sub(r"  +", "  ", real.stack.banner())
    assert (
        f"example gateway  {GATEWAY} under supervisord, http://127.0.0.1:{real.example.port}/health" in banner
    )
    assert str(DEV_POLICY) in banner


def test_stanch_fire_gateway_memory_restarts_the_example_gateway_once_and_cleans_it(
    real: RealGateway,
) -> None:
    # Warm from its start (the example opens sessions): the sample alert is true as it is.
    memory_before = rss_mb(real.pid())
    assert memory_before > RESTART_THRESHOLD * real.example.high_watermark_mb
    run, junk = real.leave_junk()
    old_pid, spawned, restarts = real.pid(), len(real.spawned()), len(real.restarts())

    fired = stanch_cli(real.settings, "fire", "gateway-memory")  # as the README's tour does
    assert fired.returncode == 0, fired.stderr
    [incident] = json.loads(fired.stdout)["incidents"]
    workflow_id = incident["workflow_id"]
    real.fired.append(workflow_id)
    result = result_of(real.settings, workflow_id)

    assert result.final_state == "restarted"
    new_pid = real.pid()
    assert new_pid != old_pid and not Path(f"/proc/{old_pid}").exists()
    assert real.spawned()[spawned:] == [new_pid]  # one restart, by supervisord
    assert len(real.restarts()) == restarts + 1
    assert rss_mb(new_pid) < memory_before / 2
    files = {str(path.relative_to(real.data)) for path in real.data.rglob("*")}
    assert not {*junk, f"runs/{run}.json"} & files
    sessions = json.loads((real.data / "sessions.json").read_text())["sessions"]
    assert run not in {session.get("run") for session in sessions}
    key = f"{workflow_id}/{real.run_id(workflow_id)}/safe-restart"
    entry = real.keys()[key]
    assert entry["state"] == "done"
    assert (entry["result"]["old_pid"], entry["result"]["new_pid"]) == (old_pid, new_pid)
    assert entry["result"]["approved_by"] is None and entry["result"]["auto"] is True
    # The cleaning went through gatewayctl with the runbook's keys, before the restart.
    cleaned = json.loads((real.data / "gatewayctl-keys.json").read_text())
    runs_key = f"{workflow_id}/{real.run_id(workflow_id)}/clean-scheduled-runs"
    files_key = f"{workflow_id}/{real.run_id(workflow_id)}/remove-junk-files"
    assert run in cleaned[runs_key]["result"]["removed_items"]
    assert set(junk) <= set(cleaned[files_key]["result"]["removed_items"])
    assert entry["result"]["files_cleaned"] == []  # nothing left for safe-restart's own cleaning
    rows = real.audit(workflow_id)
    assert [row["step_key"] for row in rows] == [
        "diagnose",
        "guardrail",
        "clean-scheduled-runs",
        "remove-junk-files",
        "announce",
        "safe-restart",
        "health",
        "memory-compare",
        "restarted",
        "closed",
    ]
    compare = next(row for row in rows if row["step_key"] == "memory-compare")
    assert compare["outcome"] == "as_expected", compare["reason"]
    diagnosed = next(row for row in rows if row["step_key"] == "diagnose")
    assert diagnosed["outcome"] == "done"


def safe_restart_scripts(data: Path) -> list[int]:
    """The pids of safe-restart processes running on this example's data directory."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
            environ = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(part.endswith(b"/safe-restart") for part in cmdline) and (
            f"GATEWAY_DATA_DIR={data}".encode() in environ
        ):
            found.append(int(proc.name))
    return found


@pytest.mark.parametrize("script", ["survives", "dies too"])
def test_a_worker_killed_mid_restart_restarts_the_gateway_once_per_key(
    real: RealGateway, script: str
) -> None:
    real.memory_above_threshold()
    real.example.restart_wait_s = SLOW_RESTART_WAIT_S
    try:
        real.restart_worker()
        old_pid, spawned, restarts, announced = (
            real.pid(),
            len(real.spawned()),
            len(real.restarts()),
            real.announced(),
        )

        workflow_id = real.fire()
        # safe-restart announced: it counted the restart and waits before it asks supervisord for it.
        eventually(lambda: real.announced() == announced + 1, "safe-restart's announcement", timeout=45)
        scripts = safe_restart_scripts(real.data)
        assert len(scripts) == 1, scripts
        real.example.restart_wait_s = 0
        real.stack.stop_part("worker", crash=True)  # SIGKILL: the worker gets no chance to tidy anything
        if script == "dies too":
            os.kill(scripts[0], signal.SIGKILL)
        real.stack.start_part("worker")

        result = result_of(real.settings, workflow_id)
    finally:
        real.example.restart_wait_s = 0

    assert result.final_state == "restarted"
    new_pid = real.pid()
    assert new_pid != old_pid
    assert real.spawned()[spawned:] == [new_pid]  # exactly one restart
    assert len(real.restarts()) == restarts + 1 and real.announced() == announced + 1
    key = f"{workflow_id}/{real.run_id(workflow_id)}/safe-restart"
    assert real.keys()[key]["state"] == "done"
    assert real.keys()[key]["result"]["new_pid"] == new_pid
    log = [line for line in real.lines("safe-restart.log") if f"key {key}:" in line]
    if script == "survives":
        # The first run finished the restart on its own; the new worker's retry was answered with its result.
        assert [line.split(": ", 1)[1] for line in log] == [
            f"restarted pid {old_pid} -> {new_pid}",
            "already done, answering its first result",
        ]
    else:
        # The retry found the run cut short after its announcement and carried out that one restart.
        assert [line.split(": ", 1)[1] for line in log] == [f"restarted pid {old_pid} -> {new_pid}"]
    # Temporal gave the activity to the new worker: the attempt that ended it is a retry.
    [started] = attempts_that_ended(real.settings, workflow_id, "gateway_safe_restart")
    assert started.attempt >= 2
    assert [row["step_key"] for row in real.audit(workflow_id)].count("safe-restart") == 1


def test_a_fourth_restart_within_the_hour_asks_a_human_and_the_approved_one_is_carried_out(
    real: RealGateway,
) -> None:
    # Only the hourly restart limit, as the seed's: the kill switch's window (two destructive actions in
    # five minutes) would otherwise ask already at the third restart of a fast test.
    # Turning the kill switch off undoes a safety: signed with alice's demo key, as the policy needs.
    alice_key = str(REPO_ROOT / "config" / "dev-keys" / "alice")
    off = stanch_cli(
        real.settings,
        "kill-switch",
        real.subsystem,
        "off",
        "--as",
        "alice",
        "--reason",
        "drill",
        "--key",
        alice_key,
        "--yes",
    )
    assert off.returncode == 0, off.stderr
    for _ in range(3):
        real.memory_above_threshold()
        assert result_of(real.settings, real.fire()).final_state == "restarted"
    assert real.restarts_in_the_hour() == 3
    real.memory_above_threshold()
    pid, spawned = real.pid(), len(real.spawned())

    workflow_id = real.fire()
    eventually(
        lambda: brief_state(real.settings, workflow_id) == "awaiting_approval", "the guardrail's question"
    )
    assert real.pid() == pid and len(real.spawned()) == spawned  # nothing restarted while a human decides
    guardrail = next(row for row in real.audit(workflow_id) if row["step_key"] == "guardrail")
    assert (guardrail["outcome"], guardrail["reason"]) == (
        "needs_approval",
        "3 restarts already within the hour",
    )

    approved = stanch_cli(
        real.settings, "approve", workflow_id, "safe-restart", "--as", "alice", "--comment", "ok"
    )
    assert approved.returncode == 0, approved.stderr
    result = result_of(real.settings, workflow_id)

    assert result.final_state == "restarted"
    new_pid = real.pid()
    assert new_pid != pid and real.spawned()[spawned:] == [new_pid]
    entry = real.keys()[f"{workflow_id}/{real.run_id(workflow_id)}/safe-restart"]
    # The script's own limit (three an hour) let the approved fourth through.
    assert entry["result"]["approved_by"] == "alice" and entry["result"]["restarts_in_last_hour"] == 4
    assert any(line.endswith("(approved by alice)") for line in real.lines("notices.log"))
    restart = next(row for row in real.audit(workflow_id) if row["step_key"] == "safe-restart")
    assert (restart["actor"], restart["outcome"]) == ("alice", "done")


def test_an_approval_given_by_signal_restarts_it_too(real: RealGateway) -> None:
    # The kill switch engaged: every destructive action asks a human, here the very first restart.
    engaged = stanch_cli(
        real.settings, "kill-switch", real.subsystem, "engage", "--as", "bob", "--reason", "drill"
    )
    assert engaged.returncode == 0, engaged.stderr
    real.memory_above_threshold()
    pid = real.pid()

    workflow_id = real.fire()
    eventually(
        lambda: brief_state(real.settings, workflow_id) == "awaiting_approval", "the guardrail's question"
    )
    assert real.pid() == pid
    temporal_signal(real.settings, workflow_id, "approve", {"approver": "alice", "action": "safe-restart"})

    assert result_of(real.settings, workflow_id).final_state == "restarted"
    assert real.pid() != pid
    entry = real.keys()[f"{workflow_id}/{real.run_id(workflow_id)}/safe-restart"]
    assert entry["result"]["approved_by"] == "alice"
