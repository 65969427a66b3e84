"""The `command` adapter (activities/command.py) against real scripts: each test writes executables into its
tmp dir (the "policy directory"), opens the adapter the way the worker does (`open_adapter` with a policy
table) and looks at what the scripts saw and left behind — their argv, environment and working directory
in files they wrote, the processes they started — and at the error each way of ending raises."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.exceptions import ApplicationError

from activities.adapters import AdapterConfigError, AdapterContext, open_adapter
from activities.database.command import CommandDatabase
from activities.gateway import GatewayActivities
from activities.gateway.command import CommandGateway
from schemas.database import ServiceRequest
from schemas.gateway import Cleanup, GatewayEffect, GatewayRead, GatewayStatus, SafeRestart
from stanch import redact
from stanch.tls import default_tls_context

STATUS = {"name": "gw-1", "memory_mb": 90.5, "high_watermark_mb": 112, "memory_ratio": 0.81, "healthy": True}
RESTARTED = {"name": "gw-1", "memory_before_mb": 100, "memory_mb": 21, "restarts": 1, "reason": "memory"}


def script(directory: Path, name: str, body: str) -> Path:
    """An executable Python script (the interpreter running the tests) that records what it was given."""
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f"#!{sys.executable}\nimport json, os, sys, time, subprocess\nfrom pathlib import Path\n{body}\n"
    )
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


RECORD = """
Path(os.environ["RECORD_TO"]).write_text(json.dumps({
    "argv": sys.argv, "cwd": os.getcwd(), "env": dict(os.environ),
}))
"""


def record_and_print(directory: Path, name: str, result: dict[str, Any]) -> Path:
    return script(directory, name, f"{RECORD}\nprint(json.dumps({result!r}))")


def recorded(path: Path) -> dict[str, Any]:
    seen: dict[str, Any] = json.loads(path.read_text())
    return seen


def gateway(
    base: Path, table: dict[str, Any], environ: dict[str, str] | None = None, platform: str = ""
) -> CommandGateway:
    context = AdapterContext(
        platform_url=platform or "http://127.0.0.1:9", base_dir=base, environ=environ or {}
    )
    adapter = open_adapter("gateway", "command", table, context)
    assert isinstance(adapter, CommandGateway)
    return adapter


def effect(**fields: Any) -> GatewayEffect:
    return GatewayEffect(**{"gateway": "gw-1", "idempotency_key": "incident-gw/run-1/safe-restart", **fields})


def pid_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    # A killed child not yet reaped by its (also killed) parent is a zombie: as good as gone.
    return state != "Z"


async def gone(*pids: int) -> bool:
    """Whether every pid is dead within a few seconds: a SIGKILLed process takes a moment to exit."""
    deadline = time.monotonic() + 5
    while any(pid_alive(pid) for pid in pids):
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


# ---- done: argv, environment, result ----------------------------------------------------------------


async def test_a_done_action_gets_its_argv_filled_the_request_in_its_environment_and_returns_its_stdout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    record = tmp_path / "seen.json"
    record_and_print(tmp_path / "bin", "safe-restart", RESTARTED)
    # Something only the worker holds: a script is never given the worker's whole environment.
    monkeypatch.setenv("STANCH_DATABASE_URL", "postgresql://stanch_app:hunter2@db/stanch")
    adapter = gateway(
        tmp_path,
        {
            "env": {"RECORD_TO": str(record), "GATEWAY": "{gateway}"},
            "actions": {
                "safe_restart": {
                    "argv": ["bin/safe-restart", "--gateway", "{gateway}", "--why={reason}", "{{literal}}"],
                    "env": {"SAFE_RESTART_WAIT_S": "0"},
                }
            },
        },
        environ={"GATEWAY_HOME": "/srv/gw"},
    )

    result = await GatewayActivities(adapter).safe_restart(
        effect(reason="memory at 90%", approved_by="alice")
    )

    assert result == SafeRestart(**RESTARTED)
    seen = recorded(record)
    assert seen["argv"][1:] == ["--gateway", "gw-1", "--why=memory at 90%", "{literal}"]
    assert Path(seen["argv"][0]) == tmp_path / "bin" / "safe-restart"  # relative to the policy's directory
    assert Path(seen["cwd"]) == tmp_path
    env = seen["env"]
    assert env["STANCH_IDEMPOTENCY_KEY"] == "incident-gw/run-1/safe-restart"
    assert env["STANCH_REASON"] == "memory at 90%"
    assert env["STANCH_APPROVED_BY"] == "alice"
    assert env["STANCH_ACTION"] == "safe_restart"
    assert (
        json.loads(env["STANCH_REQUEST"]) == effect(reason="memory at 90%", approved_by="alice").model_dump()
    )
    assert (env["GATEWAY"], env["SAFE_RESTART_WAIT_S"], env["GATEWAY_HOME"]) == ("gw-1", "0", "/srv/gw")
    assert env["PATH"] == os.environ["PATH"]
    assert "STANCH_DATABASE_URL" not in env


async def test_a_read_carries_no_key_and_nobody_approved_means_no_approver_variable(tmp_path: Path) -> None:
    record = tmp_path / "seen.json"
    record_and_print(tmp_path, "status", STATUS)
    adapter = gateway(
        tmp_path,
        {"actions": {"status": {"argv": ["./status", "{gateway}"], "env": {"RECORD_TO": str(record)}}}},
    )

    assert await adapter.status(GatewayRead(gateway="gw-1")) == GatewayStatus(**STATUS)
    env = recorded(record)["env"]
    assert env["STANCH_ACTION"] == "status"
    assert not {"STANCH_IDEMPOTENCY_KEY", "STANCH_REASON", "STANCH_APPROVED_BY"} & set(env)


async def test_a_program_without_a_slash_is_found_on_path_and_cwd_is_relative_to_the_policy(
    tmp_path: Path,
) -> None:
    record = tmp_path / "seen.json"
    record_and_print(tmp_path / "tools", "gatewayctl", STATUS)
    (tmp_path / "work").mkdir()
    adapter = gateway(
        tmp_path,
        {
            "env": {"RECORD_TO": str(record)},
            "actions": {"health": {"argv": ["gatewayctl", "health"], "cwd": "work"}},
        },
        environ={"PATH": f"{tmp_path / 'tools'}:{os.environ['PATH']}"},
    )

    await adapter.health(GatewayRead(gateway="gw-1"))

    seen = recorded(record)
    assert Path(seen["argv"][0]) == tmp_path / "tools" / "gatewayctl"
    assert Path(seen["cwd"]) == tmp_path / "work"


async def test_exit_codes_say_done_and_refused_per_action(tmp_path: Path) -> None:
    script(
        tmp_path,
        "clean",
        "print(json.dumps({'name': 'gw-1', 'removed': 0, 'removed_items': [], 'remaining': 0}))\nsys.exit(int(os.environ['CODE']))",
    )
    table = {
        "actions": {
            "clean_scheduled_runs": {"argv": ["./clean"], "done": [0, 2], "refused": [4]},
            "remove_junk_files": {"argv": ["./clean"]},
        }
    }
    for code, done_by_clean_runs in ((2, True), (4, False), (3, False)):
        adapter = gateway(tmp_path, table, environ={"CODE": str(code)})
        if done_by_clean_runs:
            assert isinstance(await adapter.clean_scheduled_runs(effect()), Cleanup)
            continue
        with pytest.raises(ApplicationError) as error:
            await adapter.clean_scheduled_runs(effect())
        # 4 is this action's refusal; 3 is only the default's, so here it is an ordinary failure.
        assert error.value.non_retryable is (code == 4), error.value
        assert error.value.type == ("CommandRefused" if code == 4 else "CommandFailed")
    # The other action keeps the defaults: 2 is a failure there, 3 a refusal.
    adapter = gateway(tmp_path, table, environ={"CODE": "3"})
    with pytest.raises(ApplicationError) as refused:
        await adapter.remove_junk_files(effect())
    assert refused.value.non_retryable and refused.value.type == "CommandRefused"


# ---- refused, failed, hung, junk ------------------------------------------------------------------------


async def test_a_refusal_is_not_retried_and_says_why_from_stderr(tmp_path: Path) -> None:
    script(
        tmp_path,
        "safe-restart",
        "print('rate limit: 3 restarts in the last hour', file=sys.stderr)\nsys.exit(3)",
    )
    adapter = gateway(tmp_path, {"actions": {"safe_restart": {"argv": ["./safe-restart"]}}})

    with pytest.raises(ApplicationError) as error:
        await adapter.safe_restart(effect())

    assert error.value.non_retryable and error.value.type == "CommandRefused"
    assert error.value.message == (
        "gateway safe_restart refused: safe-restart exited 3: rate limit: 3 restarts in the last hour"
    )


async def test_a_failure_is_retried_with_the_end_of_its_stderr_in_the_message(tmp_path: Path) -> None:
    noise = "\n".join(f"starting step {n}" for n in range(500))
    script(
        tmp_path,
        "safe-restart",
        f"print({noise!r}, file=sys.stderr)\nprint('supervisord is not reachable', file=sys.stderr)\nsys.exit(1)",
    )
    adapter = gateway(tmp_path, {"actions": {"safe_restart": {"argv": ["./safe-restart"]}}})

    with pytest.raises(ApplicationError) as error:
        await adapter.safe_restart(effect())

    assert not error.value.non_retryable and error.value.type == "CommandFailed"
    message = error.value.message
    assert message.startswith("gateway safe_restart: safe-restart exited 1; stderr: …")
    assert message.endswith("supervisord is not reachable")
    assert "starting step 0\n" not in message and len(message) < 2200


async def test_a_script_killed_by_a_signal_is_a_failure_that_names_the_signal(tmp_path: Path) -> None:
    script(tmp_path, "status", "os.kill(os.getpid(), 9)")
    adapter = gateway(tmp_path, {"actions": {"status": {"argv": ["./status"]}}})

    with pytest.raises(ApplicationError, match="status was killed by SIGKILL") as error:
        await adapter.status(GatewayRead(gateway="gw-1"))
    assert not error.value.non_retryable


async def test_a_hung_script_is_killed_with_its_children_at_the_timeout_and_retried(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    script(
        tmp_path,
        "safe-restart",
        f"child = subprocess.Popen(['sleep', '300'])\n"
        f"Path({str(pids)!r}).write_text(f'{{os.getpid()}} {{child.pid}}')\n"
        "print('waiting for supervisord...', file=sys.stderr, flush=True)\ntime.sleep(300)",
    )
    adapter = gateway(tmp_path, {"actions": {"safe_restart": {"argv": ["./safe-restart"], "timeout_s": 1.5}}})

    began = time.monotonic()
    with pytest.raises(ApplicationError) as error:
        await adapter.safe_restart(effect())

    assert time.monotonic() - began < 10
    assert not error.value.non_retryable and error.value.type == "CommandTimedOut"
    assert error.value.message == (
        "gateway safe_restart: safe-restart did not finish within 1.5 s and its process group was killed; "
        "stderr: waiting for supervisord..."
    )
    script_pid, child_pid = map(int, pids.read_text().split())
    assert await gone(script_pid, child_pid)


async def test_a_cancelled_action_kills_the_script_with_its_children(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    script(
        tmp_path,
        "safe-restart",
        f"child = subprocess.Popen(['sleep', '300'])\n"
        f"Path({str(pids)!r}).write_text(f'{{os.getpid()}} {{child.pid}}')\ntime.sleep(300)",
    )
    adapter = gateway(tmp_path, {"actions": {"safe_restart": {"argv": ["./safe-restart"]}}})
    running = asyncio.create_task(adapter.safe_restart(effect()))
    deadline = time.monotonic() + 10
    while not pids.exists() or not pids.read_text():
        assert time.monotonic() < deadline, "the script never started"
        await asyncio.sleep(0.05)

    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running

    script_pid, child_pid = map(int, pids.read_text().split())
    assert await gone(script_pid, child_pid)


@pytest.mark.parametrize(
    ("stdout", "problem"),
    [
        ("restarting... done", "stdout: Invalid JSON"),
        ('{"name": "gw-1", "memory_mb": 20}', "memory_before_mb: Field required"),
        ("", "stdout: Invalid JSON"),
    ],
)
async def test_junk_on_stdout_is_a_retried_failure_that_shows_it(
    tmp_path: Path, stdout: str, problem: str
) -> None:
    script(tmp_path, "safe-restart", f"print({stdout!r})")
    adapter = gateway(tmp_path, {"actions": {"safe_restart": {"argv": ["./safe-restart"]}}})

    with pytest.raises(ApplicationError) as error:
        await adapter.safe_restart(effect())

    assert not error.value.non_retryable and error.value.type == "CommandBadOutput"
    message = error.value.message
    assert message.startswith(
        "gateway safe_restart: safe-restart exited 0 but its stdout is not a SafeRestart"
    )
    assert problem in message
    assert f"stdout: {stdout or '(nothing)'}; stderr: (nothing on stderr)" in message


async def test_secrets_on_stderr_or_stdout_are_scrubbed_from_the_failure(tmp_path: Path) -> None:
    token = f"tok-{uuid.uuid4().hex}"
    webhook = f"hook-{uuid.uuid4().hex}"
    redact.remember([webhook])  # a secret the worker holds for something else (a notification channel)
    script(
        tmp_path,
        "safe-restart",
        "print('calling with ' + os.environ['API_TOKEN'], file=sys.stderr)\n"
        f"print('posted to {webhook}', file=sys.stderr)\nprint(os.environ['API_TOKEN'])",
    )
    adapter = gateway(
        tmp_path,
        {
            "secret_env": {"API_TOKEN": "H3_GATEWAY_TOKEN"},
            "actions": {"safe_restart": {"argv": ["./safe-restart"]}},
        },
        environ={"H3_GATEWAY_TOKEN": token},
    )

    with pytest.raises(ApplicationError) as error:
        await adapter.safe_restart(effect())

    message = error.value.message
    assert token not in message and webhook not in message
    assert "stdout: ***; stderr: calling with ***\nposted to ***" in message


async def test_an_effect_without_its_key_is_refused_before_the_script_runs(tmp_path: Path) -> None:
    ran = tmp_path / "ran"
    script(tmp_path, "safe-restart", f"Path({str(ran)!r}).touch()")
    adapter = gateway(tmp_path, {"actions": {"safe_restart": {"argv": ["./safe-restart"]}}})

    with pytest.raises(ApplicationError, match="idempotency_key is empty") as error:
        await adapter.safe_restart(effect(idempotency_key=""))

    assert error.value.non_retryable
    assert not ran.exists()


async def test_a_program_that_cannot_run_is_refused_naming_it(tmp_path: Path) -> None:
    (tmp_path / "safe-restart").write_text("#!/bin/sh\nexit 0\n")  # not executable
    adapter = gateway(
        tmp_path,
        {
            "actions": {
                "safe_restart": {"argv": ["./safe-restart"]},
                "status": {"argv": ["no-such-gatewayctl"]},
            }
        },
    )

    with pytest.raises(ApplicationError, match=r"cannot run .*safe-restart.*Permission denied") as error:
        await adapter.safe_restart(effect())
    assert error.value.non_retryable and error.value.type == "CommandNotRunnable"
    with pytest.raises(ApplicationError, match="'no-such-gatewayctl' is not on PATH"):
        await adapter.status(GatewayRead(gateway="gw-1"))


# ---- otherwise -----------------------------------------------------------------------------------------


async def test_an_action_without_a_command_goes_to_the_http_adapter_when_otherwise_is_http(
    tmp_path: Path, sandbox_url: str
) -> None:
    name = f"cmd-gw-{uuid.uuid4().hex[:8]}"
    async with httpx.AsyncClient(base_url=sandbox_url, verify=default_tls_context()) as sandbox:
        spec = {"memory_mb": 700, "high_watermark_mb": 1000}
        (await sandbox.put(f"/runtimes/{name}", json=spec)).raise_for_status()
    record = tmp_path / "seen.json"
    record_and_print(tmp_path, "status", {**STATUS, "name": name})
    adapter = gateway(
        tmp_path,
        {
            "otherwise": "http",
            "http": {"base_url": sandbox_url},
            "actions": {"status": {"argv": ["./status"], "env": {"RECORD_TO": str(record)}}},
        },
    )
    try:
        from_script = await adapter.status(GatewayRead(gateway=name))
        from_sandbox = await adapter.health(GatewayRead(gateway=name))
        flags = await adapter.mark_pressure(effect(gateway=name, idempotency_key=f"{name}/pressure"))
    finally:
        await adapter.aclose()

    assert from_script.memory_mb == STATUS["memory_mb"] and record.exists()
    assert (from_sandbox.name, from_sandbox.memory_mb) == (name, 700)
    assert flags.resource_pressure
    async with httpx.AsyncClient(base_url=sandbox_url, verify=default_tls_context()) as sandbox:
        calls = (await sandbox.get("/calls", params={"path_prefix": f"/runtimes/{name}/"})).json()
    # The sandbox records the effects it receives, with their keys: the one unconfigured effect reached it.
    assert [(call["path"], call["idempotency_key"]) for call in calls] == [
        (f"/runtimes/{name}/pressure", f"{name}/pressure")
    ]


async def test_an_action_without_a_command_is_refused_by_default(tmp_path: Path) -> None:
    adapter = gateway(tmp_path, {"actions": {}})

    with pytest.raises(ApplicationError) as error:
        await adapter.collect_logs(effect())

    assert error.value.non_retryable and error.value.type == "CommandNotConfigured"
    assert "[systems.gateway.actions.collect_logs]" in error.value.message


# ---- configuration ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (
            {"actions": {"safe_restrat": {"argv": ["./x"]}}},
            "actions.safe_restrat: gateway has no method 'safe_restrat'",
        ),
        (
            {"actions": {"safe_restart": {"argv": ["./x", "{gatway}"]}}},
            "actions.safe_restart.argv.1: no field {gatway} in the request (fields: approved_by, gateway, "
            "idempotency_key, reason)",
        ),
        (
            {"env": {"G": "{reason}"}, "actions": {"status": {"argv": ["./x"]}}},
            "env.G (for actions.status): no field {reason} in the request (fields: gateway)",
        ),
        ({"actions": {"check": {"argv": ["./x", "{gateway}"]}}}, "none: it takes no request"),
        ({"actions": {"status": {"argv": ["./x", "{gateway!r}"]}}}, "must be a plain field name"),
        (
            {"actions": {"status": {"argv": ["./{gateway}/ctl"]}}},
            "actions.status.argv.0: the program is a path",
        ),
        ({"actions": {"status": {"argv": []}}}, "actions.status.argv: List should have at least 1 item"),
        ({"actions": {"status": {"argv": ["./x"], "done": [0, 3]}}}, "cannot mean both done and refused"),
        ({"actions": {"status": {"argv": ["./x"], "timeout": 3}}}, "actions.status.timeout: Extra inputs"),
        ({"http": {"base_url": "http://x"}}, 'http: only used with otherwise = "http"'),
        ({"otherwise": "http", "http": {"base_url": 3}}, "http.base_url: Input should be a valid string"),
        ({"secret_env": {"TOKEN": "H3_NOT_SET_ANYWHERE"}}, "secret_env.TOKEN: environment variable"),
        ({"otherwise": "sandbox"}, "otherwise: Input should be 'http' or 'refuse'"),
    ],
)
def test_a_bad_table_stops_the_worker_naming_the_key(
    tmp_path: Path, table: dict[str, Any], message: str
) -> None:
    with pytest.raises(AdapterConfigError) as error:
        gateway(tmp_path, table)
    assert message in str(error.value)


async def test_the_database_command_adapter_is_the_same_machinery(tmp_path: Path) -> None:
    record = tmp_path / "seen.json"
    state = {"service": "shop", "migrations": ["001", "002"], "rows": 12}
    record_and_print(tmp_path, "db-state", state)
    context = AdapterContext(platform_url="http://127.0.0.1:9", base_dir=tmp_path)
    table = {
        "actions": {
            "database_state": {"argv": ["./db-state", "{service}"], "env": {"RECORD_TO": str(record)}}
        }
    }
    adapter = open_adapter("database", "command", table, context)
    assert isinstance(adapter, CommandDatabase)

    answer = await adapter.database_state(ServiceRequest(service="shop", idempotency_key="k-1"))

    assert answer.model_dump(include={"service", "migrations", "rows"}) == state
    assert recorded(record)["argv"][1:] == ["shop"]


# ---- check ------------------------------------------------------------------------------------------


async def test_check_names_every_program_that_is_missing_or_not_executable(tmp_path: Path) -> None:
    script(tmp_path, "status", "print('{}')")
    (tmp_path / "safe-restart").write_text("#!/bin/sh\n")
    adapter = gateway(
        tmp_path,
        {
            "actions": {
                "status": {"argv": ["./status"]},
                "safe_restart": {"argv": ["./safe-restart"]},
                "collect_logs": {"argv": ["bin/collect-logs"]},
            }
        },
    )

    checked = await adapter.check()

    assert (checked.system, checked.adapter, checked.ok) == ("gateway", "command", False)
    assert checked.detail == (
        f"collect_logs: {tmp_path / 'bin' / 'collect-logs'} does not exist; "
        f"safe_restart: {tmp_path / 'safe-restart'} is not executable"
    )


async def test_check_runs_the_check_action_and_reports_its_answer(tmp_path: Path) -> None:
    script(
        tmp_path,
        "gatewayctl",
        "print('supervisord RUNNING, gateway pid 41')\nsys.exit(int(os.environ['CODE']))",
    )
    table = {"actions": {"check": {"argv": ["./gatewayctl", "check"]}, "status": {"argv": ["./gatewayctl"]}}}

    passing = await gateway(tmp_path, table, environ={"CODE": "0"}).check()
    failing = await gateway(tmp_path, table, environ={"CODE": "1"}).check()

    assert passing.ok and passing.detail == "check: supervisord RUNNING, gateway pid 41"
    assert not failing.ok and failing.detail == "check: exited 1: (nothing on stderr)"


async def test_check_includes_the_http_adapter_when_otherwise_is_http(
    tmp_path: Path, sandbox_url: str
) -> None:
    script(tmp_path, "status", "print('{}')")
    up = gateway(
        tmp_path,
        {
            "otherwise": "http",
            "http": {"base_url": sandbox_url},
            "actions": {"status": {"argv": ["./status"]}},
        },
    )
    down = gateway(tmp_path, {"otherwise": "http", "http": {"base_url": "http://127.0.0.1:9"}})
    try:
        reachable, unreachable = await up.check(), await down.check()
    finally:
        await up.aclose()
        await down.aclose()

    assert reachable.ok and reachable.detail == f"1 command(s) ready; otherwise http: {sandbox_url} answers"
    assert not unreachable.ok and unreachable.detail.startswith("otherwise (http): http://127.0.0.1:9")
