"""`stanch brief` / `approve` / `reject` over Temporal's HTTP API (issue 15, goal 7): the same bytes out as
the SDK path, on the same incidents of a real dev server serving its HTTP API, with and without payload
encryption; the fallback when the endpoint refuses; and, in a fresh interpreter, no `temporalio.client`.

Each command runs twice: once with STANCH_TEMPORAL_HTTP_URL (the HTTP path) and once without (the SDK
path). A worker of the real runbooks runs in this process; nothing here is timed (bench/cli.py is)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from stanch.codec import data_converter
from stanch.policy import load_policy
from stanch.settings import Settings, get_settings
from tests.conftest import TEST_POLICY
from tests.helpers import Incidents, cli, cli_environment, free_port, new_agent, until_state
from tests.helpers_intake import start_dev_server_with_http
from workers.worker import activity_implementations, build_worker

# A dev server with its HTTP API of this module's own, and the CLI in fresh interpreters (3-6 s a test).
pytestmark = pytest.mark.slow

PAYLOAD_KEY = base64.b64encode(b"k" * 32).decode()


@pytest.fixture(scope="module")
async def http_env() -> AsyncIterator[tuple[WorkflowEnvironment, str]]:
    env, url = await start_dev_server_with_http()
    yield env, url
    await env.shutdown()


@asynccontextmanager
async def running_stanch(
    env: WorkflowEnvironment, settings: Settings, payload_key: str | None
) -> AsyncIterator[tuple[Client, Incidents]]:
    """A worker of the real runbooks on a fresh task queue; its client encrypts when given a key."""
    task_queue = f"http-{uuid.uuid4().hex[:8]}"
    keyed = settings.model_copy(update={"task_queue": task_queue, "payload_key": payload_key})
    client = await Client.connect(
        env.client.service_client.config.target_host,
        namespace=env.client.namespace,
        data_converter=data_converter(Settings(payload_key=payload_key)),
    )
    async with activity_implementations(keyed, client) as activities:
        async with build_worker(client, task_queue, activities):
            yield client, Incidents(client, task_queue, load_policy(TEST_POLICY))


async def parked(client: Client, incidents: Incidents, settings: Settings) -> WorkflowHandle[Any, Any]:
    handle = await incidents.agent_emergency_stop(new_agent(settings.platform_url))
    await until_state(handle, "awaiting_approval")
    return handle


@pytest.mark.parametrize("payload_key", [None, PAYLOAD_KEY], ids=["plain", "encrypted"])
async def test_brief_and_approve_print_the_same_over_http_as_over_the_sdk(
    http_env: tuple[WorkflowEnvironment, str], settings: Settings, tmp_path: Path, payload_key: str | None
) -> None:
    env, http_url = http_env
    async with running_stanch(env, settings, payload_key) as (client, incidents):
        over_http = cli_environment(client, tmp_path, http_url, payload_key)
        over_sdk = cli_environment(client, tmp_path, None, payload_key)
        handle = await parked(client, incidents, settings)

        briefs = [await cli(["brief", handle.id, "--timeline"], side) for side in (over_http, over_sdk)]
        assert [b.exit_code for b in briefs] == [0, 0], [b.output for b in briefs]
        assert briefs[0].stdout == briefs[1].stdout
        assert "State: awaiting_approval" in briefs[0].stdout and "Timeline:" in briefs[0].stdout

        # The validator's refusal (an approver the policy does not know), word for word on both paths.
        refusals = [
            await cli(["approve", handle.id, "rollback", "--as", "mallory"], s) for s in (over_http, over_sdk)
        ]
        assert [r.exit_code for r in refusals] == [1, 1]
        assert refusals[0].stderr == refusals[1].stderr and "stanch: refused:" in refusals[0].stderr

        # The same approval of two like incidents: the same line (but for the incident's id), both applied.
        second = await parked(client, incidents, settings)
        approvals = [
            await cli(["approve", wid, "rollback", "--as", "alice", "--yes"], side)
            for wid, side in ((handle.id, over_http), (second.id, over_sdk))
        ]
        assert [a.exit_code for a in approvals] == [0, 0], [a.output for a in approvals]
        assert approvals[0].stdout.replace(handle.id, "X") == approvals[1].stdout.replace(second.id, "X")
        assert approvals[0].stderr == approvals[1].stderr
        assert (await handle.result()).final_state == (await second.result()).final_state == "rolled_back"


async def test_a_refused_http_endpoint_falls_back_to_the_sdk(
    http_env: tuple[WorkflowEnvironment, str], settings: Settings, tmp_path: Path
) -> None:
    env, http_url = http_env
    async with running_stanch(env, settings, None) as (client, incidents):
        handle = await parked(client, incidents, settings)
        nobody = f"http://127.0.0.1:{free_port()}"  # nothing listens there
        fallen = await cli(["brief", handle.id], cli_environment(client, tmp_path, nobody, None))
        direct = await cli(["brief", handle.id], cli_environment(client, tmp_path, http_url, None))
        assert (fallen.exit_code, direct.exit_code) == (0, 0), fallen.output
        assert fallen.stdout == direct.stdout
        approved = await cli(
            ["approve", handle.id, "rollback", "--as", "alice", "--yes"],
            cli_environment(client, tmp_path, nobody, None),
        )
        assert approved.exit_code == 0, approved.output
        assert (await handle.result()).final_state == "rolled_back"


@contextmanager
def losing_update_answers(target: str) -> Iterator[str]:
    """A proxy in front of Temporal's HTTP API that passes everything on, but hangs up on an update once
    Temporal has answered it: the update landed, and the CLI never hears so (a timeout, a reset)."""

    class Forward(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            forwarded = urllib.request.Request(
                target + self.path, data=body, method="POST", headers={"Content-Type": "application/json"}
            )
            try:
                with urllib.request.urlopen(forwarded, timeout=60) as response:
                    status, answer = response.status, response.read()
            except urllib.error.HTTPError as error:
                status, answer = error.code, error.read()
            if "/update/" in self.path:
                self.close_connection = True
                return  # no status line at all: the client sees the connection closed
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Forward)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


async def test_an_approval_whose_http_answer_is_lost_is_answered_once_over_the_sdk(
    http_env: tuple[WorkflowEnvironment, str], settings: Settings, tmp_path: Path
) -> None:
    env, http_url = http_env
    async with running_stanch(env, settings, None) as (client, incidents):
        handle = await parked(client, incidents, settings)
        with losing_update_answers(http_url) as lossy:
            approved = await cli(
                ["approve", handle.id, "rollback", "--as", "alice", "--yes"],
                cli_environment(client, tmp_path, lossy, None),
            )
        # The SDK asked again under the same update id: the server gave the first answer, not the gate's
        # refusal of a second decision.
        assert approved.exit_code == 0, approved.output
        assert approved.stdout == f"{handle.id}: rollback approved (by alice)\n"
        assert (await handle.result()).final_state == "rolled_back"
        updates = [
            event.workflow_execution_update_accepted_event_attributes.accepted_request.meta.update_id
            async for event in handle.fetch_history_events()
            if event.HasField("workflow_execution_update_accepted_event_attributes")
        ]
        assert len(updates) == 1


async def test_a_missing_incident_says_what_temporal_said_on_both_paths(
    http_env: tuple[WorkflowEnvironment, str], settings: Settings, tmp_path: Path
) -> None:
    env, http_url = http_env
    missing = f"incident-missing-{uuid.uuid4().hex[:8]}"
    answers = [
        await cli(["brief", missing], cli_environment(env.client, tmp_path, url, None))
        for url in (http_url, None)
    ]
    assert [a.exit_code for a in answers] == [1, 1]
    assert answers[0].stderr == answers[1].stderr
    assert answers[0].stderr.startswith("stanch: Temporal said: workflow not found")


# What a fresh interpreter holds after the command, by the module that marks each: the Temporal client, its
# service layer, pydantic-settings, pydantic, and typer (with the click it vendors).
WATCHED = {
    "client": "temporalio.client",
    "service": "temporalio.service",
    "settings": "pydantic_settings",
    "pydantic": "pydantic",
    "typer": "typer",
}
# A command line run as the typer app runs it, or as the console script's entry point does (before typer).
VIA_TYPER = "from stanch.ops.cli import app\ntry:\n    app({args!r}, standalone_mode=False)\n    code = 0\n"
VIA_ENTRY = (
    "from stanch.ops.entry import answer\ntry:\n    code = answer({args!r})\n    if code is None:\n"
    "        from stanch.ops.cli import app\n        code = app({args!r}, standalone_mode=False)\n"
)


async def modules_after_command(args: list[str], env: dict[str, Any], via: str = VIA_TYPER) -> dict[str, Any]:
    """Run a `stanch` command in a fresh interpreter; which of WATCHED it loaded and how it exited."""
    probe = (
        "import json, sys\n" + via.format(args=args) + "except SystemExit as exit:\n"
        "    code = exit.code\n"
        f"watched = {WATCHED!r}\n"
        "print(json.dumps({'code': code} | {key: name in sys.modules for key, name in watched.items()}))\n"
    )
    done = await python_child(["-c", probe], env)
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return result


async def test_the_console_script_answers_brief_and_approve_before_loading_typer(
    http_env: tuple[WorkflowEnvironment, str], settings: Settings, tmp_path: Path
) -> None:
    # What keeps `stanch brief` and an unsigned `approve` within 3x the temporal CLI (bench/cli.py measures
    # it): the entry point runs them with neither typer, pydantic nor the Temporal client.
    env, http_url = http_env
    async with running_stanch(env, settings, None) as (client, incidents):
        handle = await parked(client, incidents, settings)
        over_http = cli_environment(client, tmp_path, http_url, None)
        briefed = await modules_after_command(["brief", handle.id, "--timeline"], over_http, VIA_ENTRY)
        assert briefed == {
            "code": 0,
            "client": False,
            "service": False,
            "settings": False,
            "pydantic": False,
            "typer": False,
        }
        approved = await modules_after_command(
            ["approve", handle.id, "rollback", "--as", "alice", "--yes"], over_http, VIA_ENTRY
        )
        assert approved == {
            "code": 0,
            "client": False,
            "service": False,
            "settings": False,
            "pydantic": False,
            "typer": False,
        }
        assert (await handle.result()).final_state == "rolled_back"
        # The probe can fail: without the HTTP URL the same command loads the client and the settings.
        sdk = await modules_after_command(["brief", handle.id], cli_environment(client, tmp_path, None, None))
        assert sdk["client"] is True and sdk["settings"] is True and sdk["pydantic"] is True
        # The probe can fail: a line the entry point leaves to typer loads it.
        helped = await modules_after_command(["brief", "--help"], over_http, VIA_ENTRY)
        assert helped["typer"] is True


async def stanch_script(args: list[str], env: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    """`python -m stanch ARGS`: the console script's entry point in a process of its own."""
    return await python_child(["-m", "stanch", *args], env)


async def python_child(argv: list[str], env: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    """This Python with `argv`, in a thread (this loop's worker must answer it), with the operator's
    environment `env` instead of this process's STANCH_ settings."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("STANCH_")}
    environment.update({k: v for k, v in env.items() if v is not None})
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, *argv],
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
    )


async def test_the_console_script_prints_and_exits_as_the_typer_app(
    http_env: tuple[WorkflowEnvironment, str], settings: Settings, tmp_path: Path
) -> None:
    env, http_url = http_env
    async with running_stanch(env, settings, None) as (client, incidents):
        handle = await parked(client, incidents, settings)
        over_http = cli_environment(client, tmp_path, http_url, None)
        for args in (
            ["brief", handle.id, "--timeline"],
            ["brief", f"incident-missing-{uuid.uuid4().hex[:8]}"],  # Temporal says: not found, exit 1
            ["approve", handle.id, "shutdown", "--as", "alice", "--yes"],  # not recommended: refused, exit 1
            ["approve", handle.id, "--as", "mallory", "--yes"],  # the validator refuses mallory, exit 1
        ):
            script = await stanch_script(args, over_http)
            typed = await cli(args, over_http)
            assert (script.returncode, script.stdout, script.stderr) == (
                typed.exit_code,
                typed.stdout,
                typed.stderr,
            ), args
        assert script.returncode == 1 and "stanch: refused:" in script.stderr
        # A line the entry point does not read goes to typer, with typer's usage error and exit code.
        unread = await stanch_script(["approve", handle.id, "rollback"], over_http)
        assert unread.returncode == 2 and "Missing option '--as'" in unread.stderr
        rejected = await stanch_script(["reject", handle.id, "--as", "alice", "--yes"], over_http)
        assert rejected.returncode == 0, rejected.stderr
        assert (await handle.result()).final_state != "rolled_back"


async def test_a_bad_http_url_stops_brief_with_one_line_naming_it(tmp_path: Path) -> None:
    # The HTTP path reads its settings itself; one it cannot use leaves the check to the SDK path's Settings.
    get_settings.cache_clear()
    done = await cli(
        ["brief", "x"], {"STANCH_TEMPORAL_HTTP_URL": "ftp://127.0.0.1:7243", "HOME": str(tmp_path)}
    )
    assert done.exit_code == 2
    assert done.stderr.startswith("stanch: invalid setting STANCH_TEMPORAL_HTTP_URL: ")
    get_settings.cache_clear()


async def test_reject_over_http_answers_like_the_sdk(
    http_env: tuple[WorkflowEnvironment, str], settings: Settings, tmp_path: Path
) -> None:
    env, http_url = http_env
    async with running_stanch(env, settings, None) as (client, incidents):
        first, second = [await parked(client, incidents, settings) for _ in range(2)]
        answers = [
            await cli(["reject", handle.id, "rollback", "--as", "alice", "--yes"], side)
            for handle, side in (
                (first, cli_environment(client, tmp_path, http_url, None)),
                (second, cli_environment(client, tmp_path, None, None)),
            )
        ]
        assert [a.exit_code for a in answers] == [0, 0], [a.output for a in answers]
        assert answers[0].stdout.replace(first.id, "X") == answers[1].stdout.replace(second.id, "X")
        assert (await first.result()).final_state == (await second.result()).final_state != "rolled_back"
