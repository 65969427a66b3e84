"""examples/gateway/: the real gateway under a real supervisord, restarted only through its safe-restart script
and read and tidied through gatewayctl.py.

Each test starts its own supervisord (in a tmp dir, the gateway on a free port) and kills it after. What is
asserted is read from the processes themselves: pids from the health endpoint and supervisord, memory from
/proc/<pid>/status, the data directory's files, supervisord's own log of the processes it spawned.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from schemas.gateway import Cleanup, GatewayStatus, SafeRestart, ServiceLogs, StateSnapshot
from stanch.ops.devstack.example_gateway import supervisor_socket
from tests.helpers import free_port

# supervisord and the gateway are real processes: the real-stack tier (tests/README.md).
pytestmark = pytest.mark.e2e

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "gateway"
SUPERVISORD = Path(sys.executable).parent / "supervisord"
NAME = "openclaw-gateway"
WATERMARK_MB = 112.0


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text(encoding="utf-8").splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for pid {pid}")


def alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


def eventually(check: Any, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = check()
            if value:
                return value
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout} s: {check}")
        time.sleep(0.1)


@dataclass
class ExampleGateway:
    home: Path
    data: Path
    port: int
    env: dict[str, str]

    def health(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2) as response:
            body: dict[str, Any] = json.load(response)
            return body

    def pid(self) -> int:
        return int(self.health()["pid"])

    def open_sessions(self, count: int) -> None:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/sessions",
            data=json.dumps({"count": count}).encode(),
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200

    def safe_restart(
        self, key: str, *, reason: str = "gateway memory at 85% of its watermark", **extra: str
    ) -> subprocess.CompletedProcess[str]:
        env = {**self.env, "STANCH_IDEMPOTENCY_KEY": key, "STANCH_REASON": reason, **extra}
        return subprocess.run(
            [sys.executable, str(EXAMPLE / "safe-restart"), "--auto"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    def gatewayctl(self, *argv: str, key: str = "") -> subprocess.CompletedProcess[str]:
        env = {**self.env, "STANCH_IDEMPOTENCY_KEY": key}
        return subprocess.run(
            [str(EXAMPLE / "gatewayctl.py"), *argv],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    def spawned_pids(self) -> list[int]:
        """Every gateway process supervisord started, from its own log."""
        log = (self.home / "supervisord.log").read_text(encoding="utf-8")
        return [int(pid) for pid in re.findall(r"spawned: 'gateway' with pid (\d+)", log)]

    def spawned(self) -> int:
        """How many times supervisord has started the gateway (its first start included)."""
        return len(self.spawned_pids())

    def files(self) -> set[str]:
        return {str(path.relative_to(self.data)) for path in self.data.rglob("*") if path.is_file()}


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[ExampleGateway]:
    home = tmp_path / "gw"
    data = home / "data"
    home.mkdir()
    subprocess.run([sys.executable, str(EXAMPLE / "gateway.py"), "seed", str(data)], check=True)
    port = free_port()
    env = {
        **os.environ,
        "GATEWAY_HOME": str(home),
        "GATEWAY_SUPERVISOR_SOCKET": str(supervisor_socket(home)),
        "GATEWAY_DATA_DIR": str(data),
        "GATEWAY_PORT": str(port),
        "GATEWAY_PYTHON": sys.executable,
        "GATEWAY_NAME": NAME,
        "GATEWAY_HIGH_WATERMARK_MB": str(WATERMARK_MB),
        "SAFE_RESTART_WAIT_S": "0",
    }
    supervisord = subprocess.Popen(
        [str(SUPERVISORD), "-n", "-c", str(EXAMPLE / "supervisord.conf")],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    running = ExampleGateway(home=home, data=data, port=port, env=env)
    try:
        eventually(running.pid)
        # Past supervisord's startsecs: it counts the gateway as RUNNING, not STARTING.
        eventually(lambda: "(gateway) RUNNING" in running.gatewayctl("check").stdout)
        yield running
    finally:
        supervisord.send_signal(signal.SIGTERM)
        try:
            supervisord.wait(timeout=15)
        except subprocess.TimeoutExpired:
            supervisord.kill()
            supervisord.wait()
    # supervisord stops its child when it stops: no gateway it ever spawned is left running.
    assert not [pid for pid in running.spawned_pids() if alive(pid)]


def result_of(run: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert run.returncode == 0, run.stderr
    result: dict[str, Any] = json.loads(run.stdout)
    return result


def test_a_safe_restart_gives_a_new_pid_less_memory_and_cleans_the_files(gateway: ExampleGateway) -> None:
    gateway.open_sessions(20)  # 2 MiB cached per session: about 40 MiB that only a restart gives back
    old_pid = gateway.pid()
    memory_before = rss_mb(old_pid)
    assert {"s-41.jsonl.deleted", "s-42.jsonl.corrupt", "runs/cron-7f2.json"} <= gateway.files()

    result = result_of(gateway.safe_restart("incident-gw-1/restart"))

    # What Stanch's gateway interface reads from it.
    restarted = SafeRestart.model_validate(result)
    assert (restarted.name, restarted.restarts, restarted.replayed) == (NAME, 1, False)
    assert restarted.memory_before_mb == result["memory_before_mb"]
    assert restarted.memory_mb == result["memory_after_mb"]
    new_pid = gateway.pid()
    assert new_pid != old_pid and not alive(old_pid)
    assert (result["old_pid"], result["new_pid"]) == (old_pid, new_pid)
    assert rss_mb(new_pid) < memory_before - 30
    assert result["memory_after_mb"] < result["memory_before_mb"] - 30
    assert result["files_cleaned"] == ["s-41.jsonl.deleted", "s-42.jsonl.corrupt"]
    assert result["scheduled_runs_cleaned"] == ["cron-7f2", "cron-9a1"]
    files = gateway.files()
    assert not any(name.endswith((".deleted", ".corrupt")) for name in files)
    assert {"s-43.jsonl", "runs/nightly-digest.json"} <= files
    assert not {"runs/cron-7f2.json", "runs/cron-9a1.json"} & files
    sessions = json.loads((gateway.data / "sessions.json").read_text())["sessions"]
    assert {session.get("run") for session in sessions} == {"nightly-digest", None}
    assert gateway.health()["scheduled_runs"] == {"alive": 1, "dead": 0}
    notices = (gateway.data / "notices.log").read_text().splitlines()
    assert "gateway restart in 0 s: gateway memory at 85% of its watermark" in notices[0]
    assert notices[1].endswith(f"gateway back: pid {new_pid}")


def test_the_same_key_twice_restarts_once_and_answers_the_first_result(gateway: ExampleGateway) -> None:
    first = gateway.safe_restart("incident-gw-2/restart")
    pid_after_first = gateway.pid()
    second = gateway.safe_restart("incident-gw-2/restart")

    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout) == {**json.loads(first.stdout), "replayed": True}
    assert "carried out before" in second.stderr
    assert gateway.pid() == pid_after_first == result_of(first)["new_pid"]
    assert gateway.spawned() == 2  # its first start and the one restart
    assert len(json.loads((gateway.data / "restarts.json").read_text())) == 1


def test_a_fourth_restart_in_the_hour_is_refused_unless_a_human_approved_it(gateway: ExampleGateway) -> None:
    for number in (1, 2, 3):
        result_of(gateway.safe_restart(f"incident-gw-3/restart-{number}"))
    pid = gateway.pid()

    refused = gateway.safe_restart("incident-gw-3/restart-4")
    assert refused.returncode == 3
    assert "rate limit: 3 restarts in the last hour" in refused.stderr and refused.stdout == ""
    assert gateway.pid() == pid and gateway.spawned() == 4

    approved = gateway.safe_restart("incident-gw-3/restart-4", STANCH_APPROVED_BY="alice")
    result = result_of(approved)
    assert result["approved_by"] == "alice" and result["restarts_in_last_hour"] == 4
    assert gateway.pid() == result["new_pid"] != pid and gateway.spawned() == 5
    assert "(approved by alice)" in (gateway.data / "notices.log").read_text()


def test_a_restart_without_a_reason_is_refused(gateway: ExampleGateway) -> None:
    pid = gateway.pid()
    refused = gateway.safe_restart("incident-gw-4/restart", reason=" ")
    assert refused.returncode == 3 and "documented reason" in refused.stderr
    assert gateway.pid() == pid and gateway.spawned() == 1


def test_a_gateway_that_does_not_come_back_healthy_fails_the_restart_with_the_reason(
    gateway: ExampleGateway,
) -> None:
    (gateway.data / "gateway.json").write_text("{not json")  # a broken config: the gateway exits at start

    failed = gateway.safe_restart("incident-gw-5/restart")

    assert failed.returncode not in (0, 3) and failed.stdout == ""
    assert "the gateway did not come back healthy" in failed.stderr
    assert "cannot read its configuration" in failed.stderr
    with pytest.raises(OSError):
        gateway.health()


def test_a_run_cut_short_before_the_restart_is_finished_by_its_retry_restarting_once(
    gateway: ExampleGateway,
) -> None:
    old_pid = gateway.pid()
    slow = {**gateway.env, "STANCH_IDEMPOTENCY_KEY": "incident-gw-6/restart", "STANCH_REASON": "memory"}
    slow["SAFE_RESTART_WAIT_S"] = "30"
    cut_short = subprocess.Popen([sys.executable, str(EXAMPLE / "safe-restart")], env=slow)
    eventually(lambda: (gateway.data / "notices.log").exists())  # it announced: the restart is counted
    cut_short.kill()  # as a SIGKILLed worker's child would be
    cut_short.wait()
    assert gateway.pid() == old_pid

    result = result_of(gateway.safe_restart("incident-gw-6/restart", reason="memory"))

    assert result["old_pid"] == old_pid and gateway.pid() == result["new_pid"] != old_pid
    assert gateway.spawned() == 2
    assert len(json.loads((gateway.data / "restarts.json").read_text())) == 1


def test_a_run_cut_short_after_the_restart_is_finished_by_its_retry_without_a_second_restart(
    gateway: ExampleGateway,
) -> None:
    old_pid = gateway.pid()
    slow = {**gateway.env, "STANCH_IDEMPOTENCY_KEY": "incident-gw-7/restart", "STANCH_REASON": "memory"}
    slow["SAFE_RESTART_WAIT_S"] = "30"
    cut_short = subprocess.Popen([sys.executable, str(EXAMPLE / "safe-restart")], env=slow)
    eventually(lambda: (gateway.data / "notices.log").exists())
    cut_short.kill()
    cut_short.wait()
    # The restart it asked for went through before it died: the gateway is back on a new pid.
    subprocess.run(
        [
            str(SUPERVISORD.with_name("supervisorctl")),
            "-c",
            str(EXAMPLE / "supervisord.conf"),
            "restart",
            "gateway",
        ],
        env=gateway.env,
        check=True,
        capture_output=True,
    )
    new_pid = eventually(lambda: gateway.pid() != old_pid and gateway.pid())

    result = result_of(gateway.safe_restart("incident-gw-7/restart", reason="memory"))

    assert (result["old_pid"], result["new_pid"]) == (old_pid, new_pid)
    assert gateway.pid() == new_pid and gateway.spawned() == 2


def test_a_restart_asked_for_another_gateway_is_refused(gateway: ExampleGateway) -> None:
    pid = gateway.pid()
    env = {**gateway.env, "STANCH_IDEMPOTENCY_KEY": "incident-gw-8/restart", "STANCH_REASON": "memory"}
    refused = subprocess.run(
        [sys.executable, str(EXAMPLE / "safe-restart"), "--gateway", "staging-gateway"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 3
    assert f"this host runs gateway '{NAME}', not 'staging-gateway'" in refused.stderr
    assert gateway.pid() == pid and gateway.spawned() == 1


# ---- gatewayctl.py ---------------------------------------------------------------------------------------


def test_status_reads_the_memory_of_the_process_supervisord_runs_against_the_watermark(
    gateway: ExampleGateway,
) -> None:
    gateway.open_sessions(20)
    pid = gateway.pid()

    status = GatewayStatus.model_validate_json(gateway.gatewayctl("status", NAME).stdout)
    health = GatewayStatus.model_validate_json(gateway.gatewayctl("health", NAME).stdout)

    # Read from the kernel at the same moment as the test reads it: within a page or two of each other.
    assert abs(status.memory_mb - rss_mb(pid)) < 2 and status.memory_mb > 50
    assert status.high_watermark_mb == WATERMARK_MB
    assert status.memory_ratio == pytest.approx(status.memory_mb / WATERMARK_MB, abs=0.01)
    assert (status.name, status.healthy, status.zombie, status.restarts) == (NAME, True, False, 0)
    assert health.healthy and health.name == NAME

    result_of(gateway.safe_restart("incident-gw-9/restart"))
    after = GatewayStatus.model_validate_json(gateway.gatewayctl("status", NAME).stdout)
    assert after.memory_mb < status.memory_mb - 30 and after.restarts == 1


def test_status_of_a_gateway_that_is_running_but_does_not_answer_says_zombie(gateway: ExampleGateway) -> None:
    pid = gateway.pid()
    os.kill(pid, signal.SIGSTOP)  # the process is there, supervisord says RUNNING, nothing answers
    try:
        status = GatewayStatus.model_validate_json(gateway.gatewayctl("status", NAME).stdout)
    finally:
        os.kill(pid, signal.SIGCONT)
    assert (status.healthy, status.zombie) == (False, True), status
    assert status.memory_mb > 0


def test_the_cleaning_commands_clean_once_per_key(gateway: ExampleGateway) -> None:
    runs = gateway.gatewayctl("clean-runs", NAME, key="incident-gw-10/clean-scheduled-runs")
    files = gateway.gatewayctl("clean-files", NAME, key="incident-gw-10/remove-junk-files")

    cleaned_runs = Cleanup.model_validate_json(runs.stdout)
    cleaned_files = Cleanup.model_validate_json(files.stdout)
    assert (cleaned_runs.removed_items, cleaned_runs.remaining) == (["cron-7f2", "cron-9a1"], 1)
    assert (cleaned_files.removed_items, cleaned_files.remaining) == (
        ["s-41.jsonl.deleted", "s-42.jsonl.corrupt"],
        1,
    )
    assert not any(name.endswith((".deleted", ".corrupt")) for name in gateway.files())
    assert not {"runs/cron-7f2.json", "runs/cron-9a1.json"} & gateway.files()

    # New junk appears; the same key again cleans nothing and answers its first result.
    (gateway.data / "s-44.jsonl.corrupt").write_text("{")
    again = gateway.gatewayctl("clean-files", NAME, key="incident-gw-10/remove-junk-files")
    assert json.loads(again.stdout) == {**json.loads(files.stdout), "replayed": True}
    assert "s-44.jsonl.corrupt" in gateway.files()
    fresh = gateway.gatewayctl("clean-files", NAME, key="incident-gw-11/remove-junk-files")
    assert Cleanup.model_validate_json(fresh.stdout).removed_items == ["s-44.jsonl.corrupt"]


@pytest.mark.parametrize(
    ("argv", "key", "stderr"),
    [
        (
            ("clean-files", "staging-gateway"),
            "k-1",
            "this host runs gateway 'openclaw-gateway', not 'staging-gateway'",
        ),
        (("clean-files", NAME), "", "clean-files is an effect: it needs STANCH_IDEMPOTENCY_KEY"),
        (("restart", NAME), "k-2", "invalid choice: 'restart'"),
        (("status",), "", "status needs the gateway's name"),
    ],
)
def test_gatewayctl_refuses_what_it_cannot_do_and_does_nothing(
    gateway: ExampleGateway, argv: tuple[str, ...], key: str, stderr: str
) -> None:
    before = gateway.files()
    refused = gateway.gatewayctl(*argv, key=key)
    assert refused.returncode == 3 and refused.stdout == ""
    assert stderr in refused.stderr
    assert gateway.files() == before


def test_a_key_used_for_one_command_is_refused_for_another(gateway: ExampleGateway) -> None:
    assert gateway.gatewayctl("clean-runs", NAME, key="incident-gw-12/x").returncode == 0
    refused = gateway.gatewayctl("clean-files", NAME, key="incident-gw-12/x")
    assert refused.returncode == 3 and "was used for clean-runs, not clean-files" in refused.stderr
    assert "s-41.jsonl.deleted" in gateway.files()


def test_collect_logs_and_state_keep_the_evidence_of_their_key(gateway: ExampleGateway) -> None:
    gateway.open_sessions(3)

    logs = ServiceLogs.model_validate_json(
        gateway.gatewayctl("collect-logs", NAME, key="incident-gw-13/logs").stdout
    )
    state = StateSnapshot.model_validate_json(
        gateway.gatewayctl("collect-state", NAME, key="incident-gw-13/state").stdout
    )

    assert any(
        f"gateway[{gateway.pid()}]: serving on 127.0.0.1:{gateway.port}" in line for line in logs.lines
    )
    assert any('"POST /sessions HTTP/1.1" 200' in line for line in logs.lines)
    assert (state.sessions, state.live_sessions, state.scheduled_runs, state.pending_reviews) == (7, 3, 3, 0)
    assert state.healthy and not state.replayed
    gateway.open_sessions(1)
    again = StateSnapshot.model_validate_json(
        gateway.gatewayctl("collect-state", NAME, key="incident-gw-13/state").stdout
    )
    assert again.replayed and again.sessions == 7  # the evidence as it was collected, not as it is now


def test_check_says_what_supervisord_and_the_gateway_are_doing(gateway: ExampleGateway) -> None:
    checked = gateway.gatewayctl("check")
    assert checked.returncode == 0
    assert checked.stdout.strip() == f"supervisord RUNNING, {NAME} (gateway) RUNNING, pid {gateway.pid()}"
    gone = subprocess.run(
        [str(EXAMPLE / "gatewayctl.py"), "check"],
        env={**gateway.env, "GATEWAY_SUPERVISOR_SOCKET": str(gateway.home / "nobody.sock")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert gone.returncode == 1 and "supervisord is not reachable" in gone.stderr
