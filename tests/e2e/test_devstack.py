"""The embedded dev stack: real Temporal dev server and Postgres, started, used, stopped and restarted."""

from __future__ import annotations

import asyncio
import base64
import os
import re
import signal
import socket
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from pydantic import SecretStr
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.client import Client

from stanch.ops.devstack import (
    DevStack,
    DevStackError,
    PortInUse,
    StartupFailed,
    child_environment,
    free_ports,
    settings_on_free_ports,
    temporal,
)
from stanch.ops.devstack.example_gateway import ExampleGateway
from stanch.settings import Settings
from stanch.trust import TRUST_DEMO_KEYS
from tests.helpers import http_client

pytestmark = pytest.mark.e2e


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return settings_on_free_ports(tmp_path / "home")


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def temporal_facts(
    settings: Settings, start_workflow_id: str | None = None
) -> tuple[list[str], set[str]]:
    """The workflow ids Temporal lists and its custom search attributes, optionally after starting one."""
    client = await Client.connect(settings.temporal_address, namespace=settings.namespace)
    if start_workflow_id is not None:
        # No worker polls this queue: the execution just stays open, which is all a restart test needs.
        await client.start_workflow("Nobody", id=start_workflow_id, task_queue="devstack-test-nobody")
    workflows = [execution.id async for execution in client.list_workflows()]
    attributes = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=settings.namespace)
    )
    return workflows, set(attributes.custom_attributes)


def insert_audit_row(settings: Settings, workflow_id: str) -> None:
    with psycopg.connect(settings.database_url) as conn:
        conn.execute(
            "INSERT INTO audit_log (workflow_id, run_id, step_key, actor, action, outcome, occurred_at,"
            " prev_hash, row_hash) VALUES (%s, 'run-1', 'step-1', 'test', 'pause', 'done', %s, %s, %s)",
            (workflow_id, datetime.now(UTC), "0" * 64, "1" * 64),
        )


def audit_workflow_ids(settings: Settings) -> list[str]:
    with psycopg.connect(settings.database_url) as conn:
        return [row[0] for row in conn.execute("SELECT workflow_id FROM audit_log ORDER BY id")]


def test_stack_serves_temporal_and_postgres_and_keeps_data_across_restarts(settings: Settings) -> None:
    log_lines: list[str] = []
    with DevStack(settings, processes=(), log=log_lines.append) as stack:
        assert [child.name for child in stack.children] == ["postgres", "temporal"]
        assert asyncio.run(temporal_facts(settings)) == ([], set(temporal.SEARCH_ATTRIBUTES))
        asyncio.run(temporal_facts(settings, start_workflow_id="incident-devstack"))

        insert_audit_row(settings, "incident-devstack")
        # The app role may insert but never rewrite history.
        with (
            psycopg.connect(settings.database_url) as conn,
            pytest.raises(psycopg.errors.InsufficientPrivilege),
        ):
            conn.execute("UPDATE audit_log SET outcome = 'edited'")
        pids = [child.pid for child in stack.children]
    assert stack.started_in is not None and stack.stopped_in is not None
    assert not any(pid_alive(pid) for pid in pids)
    assert stack.children == ()
    stack.stop()  # idempotent

    with DevStack(settings, processes=(), log=log_lines.append):
        assert audit_workflow_ids(settings) == ["incident-devstack"]
        workflows, attributes = asyncio.run(temporal_facts(settings))
        assert workflows == ["incident-devstack"]
        assert attributes == set(temporal.SEARCH_ATTRIBUTES)
    assert (settings.home / "logs" / "postgres.log").read_text()
    assert any("stack ready in" in line for line in log_lines)


def test_restart_after_a_hard_kill_reuses_the_data(settings: Settings) -> None:
    """A killed run leaves postmaster.pid and an unclean SQLite WAL behind; neither may block a restart."""
    with DevStack(settings, processes=(), log=lambda line: None) as stack:
        insert_audit_row(settings, "incident-before-kill")
        for child in stack.children:
            os.killpg(child.pid, signal.SIGKILL)
    assert (settings.home / "postgres" / "postmaster.pid").exists()

    with DevStack(settings, processes=(), log=lambda line: None):
        assert audit_workflow_ids(settings) == ["incident-before-kill"]


@pytest.mark.skipif(os.geteuid() != 0, reason="as root Postgres runs as its own user; otherwise as you")
def test_postgres_starts_again_after_a_folder_above_its_data_was_made_private(settings: Settings) -> None:
    """As root, Postgres runs as the `pgserver` user, which must traverse every folder above its data. pytest
    makes /tmp/pytest-of-root private again (0700) whenever a run starts; a restart must not depend on it."""
    with DevStack(settings, processes=(), log=lambda line: None):
        insert_audit_row(settings, "incident-before-chmod")
    settings.home.chmod(0o700)
    with DevStack(settings, processes=(), log=lambda line: None):
        assert audit_workflow_ids(settings) == ["incident-before-chmod"]


def test_stanchs_tracing_settings_do_not_stop_the_temporal_server(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # OTEL_* configure Stanch's own tracing; the dev server exits on an exporter it does not know.
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    with DevStack(settings, processes=(), log=lambda line: None) as stack:
        assert all(child.alive() for child in stack.children)
        insert_audit_row(settings, "incident-traced")
        assert audit_workflow_ids(settings) == ["incident-traced"]


def test_a_busy_port_is_reported_before_anything_starts(settings: Settings) -> None:
    with socket.create_server(("127.0.0.1", settings.intake_port)):
        stack = DevStack(settings, processes=("worker", "intake"), log=lambda line: None)
        with pytest.raises(PortInUse) as caught:
            stack.start()
    assert (caught.value.port, caught.value.what) == (settings.intake_port, "intake")
    assert str(caught.value) == (
        f"port {settings.intake_port} (intake) is already in use; set STANCH_INTAKE_PORT to another port"
    )
    assert stack.children == ()
    assert not (settings.home / "postgres").exists()
    assert not (settings.home / "temporal.db").exists()


def test_a_busy_postgres_port_names_every_setting_that_repeats_it(settings: Settings) -> None:
    with socket.create_server(("127.0.0.1", settings.postgres_port)):
        with pytest.raises(PortInUse) as caught:
            DevStack(settings, processes=(), log=lambda line: None).start()
    assert caught.value.port == settings.postgres_port
    assert caught.value.settings == [
        "STANCH_POSTGRES_PORT",
        "STANCH_DATABASE_URL",
        "STANCH_DATABASE_ADMIN_URL",
    ]


def test_run_forever_reports_a_busy_port_in_one_line(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.create_server(("127.0.0.1", settings.sandbox_port)):
        with pytest.raises(SystemExit) as caught:
            DevStack(settings, processes=("sandbox",), log=lambda line: None).run_forever()
    assert caught.value.code == 1
    assert capsys.readouterr().err == (
        f"stanch dev: port {settings.sandbox_port} (sandbox) is already in use; set STANCH_SANDBOX_PORT to"
        " another port (and the port in STANCH_PLATFORM_URL and STANCH_NOTIFY_WEBHOOK_URL)\n"
    )


def test_run_forever_stops_cleanly_on_sigterm(settings: Settings) -> None:
    lines: list[str] = []

    def log(line: str) -> None:
        lines.append(line)
        if "Press Ctrl-C" in line:
            os.kill(os.getpid(), signal.SIGTERM)

    stack = DevStack(settings, processes=(), log=log)
    before = signal.getsignal(signal.SIGTERM)
    stack.run_forever()  # returns, so `stanch dev` exits 0
    assert stack.children == ()
    assert signal.getsignal(signal.SIGTERM) == before
    banner = next(line for line in lines if "Press Ctrl-C" in line)
    assert f"http://127.0.0.1:{settings.temporal_ui_port}" in banner
    assert settings.database_admin_url in banner
    assert lines[-1].startswith("[dev] stack stopped in")


def test_stanch_dev_runs_on_the_dev_policy_with_the_example_gateway(settings: Settings) -> None:
    env = child_environment(settings)
    env.pop("STANCH_CONFIG")  # as an operator's shell has it: `stanch dev` picks config/dev.toml itself
    # Nor does the shell trust demo keys: the worker and intake start on config/dev.toml's only because
    # `stanch dev` tells its children they may.
    env.pop(TRUST_DEMO_KEYS)
    dev = subprocess.Popen(
        [str(Path(sys.executable).parent / "stanch"), "dev"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        assert dev.stdout is not None
        lines = []
        for line in dev.stdout:  # bounded by the test's timeout, and by `stanch dev` exiting on a failure
            lines.append(line.rstrip("\n"))
            if "Press Ctrl-C" in line:
                break
        banner = "\n".join(lines)
        health = re.search(
            r"example gateway +openclaw-gateway under supervisord, (http://\S+/health)", banner
        )
        assert health is not None, banner
        assert re.search(r"policy +\S+/config/dev\.toml", banner), banner
        assert http_client.get(health.group(1), timeout=5).json()["status"] == "ok"
        # The console is up, where the banner says, with the demo password it prints.
        console = re.search(
            r"console +(http://\S+)  \(sign in as alice, bob or carol with the password (\S+) ", banner
        )
        assert console is not None, banner
        assert console.group(2) == "stanch-demo"
        assert "Sign in" in http_client.get(f"{console.group(1)}/login", timeout=5).text
        supervisord_log = settings.home / "examples" / "gateway" / "supervisord.log"
        spawned = [
            int(pid) for pid in re.findall(r"spawned: 'gateway' with pid (\d+)", supervisord_log.read_text())
        ]
        assert len(spawned) == 1 and pid_alive(spawned[0])
        # A second terminal that loads the stack's environment may send the demo keys to its incidents.
        assert f"{TRUST_DEMO_KEYS}=1" in (settings.home / "dev.env").read_text().splitlines()
    finally:
        dev.send_signal(signal.SIGTERM)
        assert dev.wait(timeout=60) == 0
    assert not pid_alive(spawned[0])  # the gateway stopped with its supervisord, which stopped with the stack


def test_example_names_are_unique_and_not_a_part_of_the_stack(settings: Settings) -> None:
    with pytest.raises(ValueError, match=r"\['gateway'\]"):
        DevStack(settings, examples=[ExampleGateway(), ExampleGateway()])
    worker_named = ExampleGateway()
    worker_named.name = "worker"
    with pytest.raises(ValueError, match=r"\['worker'\]"):
        DevStack(settings, examples=[worker_named])


def test_a_failed_start_stops_what_already_started(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    crash = [sys.executable, "-c", "import sys; print('temporal says no'); sys.exit(3)"]
    monkeypatch.setattr(temporal, "command", lambda settings: crash)
    stack = DevStack(settings, processes=(), log=lambda line: None)
    with pytest.raises(StartupFailed, match=r"(?s)exited with code 3.*temporal says no"):
        stack.start()
    assert stack.children == ()
    # Postgres had started first; a clean fast shutdown removes its pid file.
    assert not (settings.home / "postgres" / "postmaster.pid").exists()


def test_settings_pointing_away_from_the_stack_are_refused(settings: Settings) -> None:
    elsewhere = settings.model_copy(update={"database_url": "postgresql://stanch_app@db.example:5432/stanch"})
    with pytest.raises(DevStackError, match=r"STANCH_DATABASE_URL must name a database on 127\.0\.0\.1"):
        DevStack(elsewhere, processes=(), log=lambda line: None).start()


def test_children_see_the_same_settings(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STANCH_INTAKE_TOKEN", "stale-token-from-the-shell")
    assert "STANCH_INTAKE_TOKEN" not in child_environment(settings)

    expected = settings.model_copy(update={"intake_token": SecretStr("s3cret")})
    env = child_environment(expected)
    assert env["STANCH_INTAKE_TOKEN"] == "s3cret"
    assert env["STANCH_POSTGRES_PORT"] == str(settings.postgres_port)
    # What a child parses from that environment is exactly the parent's settings.
    for name in [name for name in os.environ if name.startswith("STANCH_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        if name.startswith("STANCH_"):
            monkeypatch.setenv(name, value)
    assert Settings() == expected


def test_with_a_payload_key_the_ui_gets_stanchs_codec_server(settings: Settings) -> None:
    """Encrypted payloads stay readable in the dev UI: the dev server is told where the codec server is,
    and the stack runs it. Without a key neither happens."""
    assert "--ui-codec-endpoint" not in temporal.command(settings)
    assert DevStack(settings).processes == ("sandbox", "worker", "intake", "console")

    [codec_port] = free_ports(1)
    keyed = settings.model_copy(
        update={
            "payload_key": SecretStr(base64.b64encode(bytes(32)).decode()),
            "codec_server_port": codec_port,
        }
    )
    argv = temporal.command(keyed)
    assert argv[argv.index("--ui-codec-endpoint") + 1] == f"http://127.0.0.1:{codec_port}"
    with DevStack(keyed, processes=("codec-server",), log=lambda line: None) as stack:
        assert stack.processes == ("codec-server",)
        assert http_client.get(f"http://127.0.0.1:{codec_port}/healthz", timeout=5).status_code == 200


def test_the_dev_server_serves_temporal_s_http_api_where_dev_env_says(settings: Settings) -> None:
    # `stanch brief` / `approve` in another terminal find it through .stanch/dev.env (issue 15).
    with DevStack(settings, processes=(), log=lambda line: None) as stack:
        lines = (settings.home / "dev.env").read_text().splitlines()
        assert f"STANCH_TEMPORAL_HTTP_URL={settings.temporal_http_url}" in lines
        assert stack.settings.temporal_http_url == settings.temporal_http_url
        answer = http_client.get(f"{settings.temporal_http_url}/api/v1/namespaces/{settings.namespace}")
        assert answer.status_code == 200
        assert answer.json()["namespaceInfo"]["name"] == settings.namespace
