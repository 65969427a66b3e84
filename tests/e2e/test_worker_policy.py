"""The worker as a process refuses a policy whose routes cannot supply their runbook's target, or that lacks
a role a runbook uses (one line, exit 2, before it ever connects to Temporal); the worker and the intake
refuse a policy holding demo keys unless the dev stack or the tests started them. Subprocesses, so they live
with the real-stack tests."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import tomllib
import uuid
from pathlib import Path

import httpx
import pytest

from stanch.settings import REPO_ROOT
from stanch.trust import TRUST_DEMO_KEYS
from tests.helpers import free_port, http_client, write_policy
from tests.helpers_intake import start_dev_server
from tests.stack import eventually

pytestmark = pytest.mark.e2e

# A route whose target labels name a field agent_emergency_stop does not have, and not the one it needs.
BAD_ROUTE = """
[[routes]]
name = "agent-hallucination"
runbook = "agent_emergency_stop"
match = { alertname = "AgentHallucination" }
target_labels = { agent = "agent" }
"""


def test_worker_process_refuses_to_start_on_a_bad_route(tmp_path: Path) -> None:
    path = write_policy(tmp_path, BAD_ROUTE)
    # Nothing listens on this port: the worker must stop on the policy before it ever connects.
    env = {**os.environ, "STANCH_CONFIG": str(path), "STANCH_TEMPORAL_ADDRESS": "127.0.0.1:9"}
    done = subprocess.run(
        [sys.executable, "-m", "stanch", "worker"],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert "agent-hallucination" in done.stderr and "agent_emergency_stop" in done.stderr
    assert "agent_id" in done.stderr and "Traceback" not in done.stderr


def test_worker_process_refuses_to_start_without_a_role_a_runbook_uses(tmp_path: Path) -> None:
    shipped = (REPO_ROOT / "config" / "stanch.toml").read_text()
    without_owner, removed = re.subn(r"\n\[roles\.owner\][^\n]*\npeople = \[[^\]]*\][^\n]*\n", "\n", shipped)
    assert removed == 1
    path = tmp_path / "stanch.toml"
    path.write_text(without_owner)
    env = {**os.environ, "STANCH_CONFIG": str(path), "STANCH_TEMPORAL_ADDRESS": "127.0.0.1:9"}
    done = subprocess.run(
        [sys.executable, "-m", "stanch", "worker"],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == [
        f"stanch: policy file {path}: runbook agent_onboarding uses role 'owner', which [roles] does not "
        "define (add [roles.owner] people = [...])"
    ]


# ---- demo keys (issue 13 §1) -------------------------------------------------------------------------------

DEV_POLICY = REPO_ROOT / "config" / "dev.toml"


def outside_the_dev_stack(**changes: str) -> dict[str, str]:
    """An operator's shell: no STANCH_TRUST_DEMO_KEYS (the tests set it for themselves, conftest.py)."""
    env = {name: value for name, value in os.environ.items() if name != TRUST_DEMO_KEYS}
    return {**env, **changes}


def demo_key_refusal(path: Path, signers: str = "alice, bob, carol, dave and erin") -> str:
    return (
        f"stanch: policy file {path}: {signers} sign with demo keys (demo = true; their private "
        "halves are public in config/dev-keys/), which only `stanch dev` and the tests may trust: give each "
        "their own key under [people.<name>] keys (ssh-keygen -t ed25519) and remove demo = true, or run "
        "`stanch dev`"
    )


@pytest.mark.parametrize("process", ["worker", "intake"])
def test_a_process_on_the_dev_policy_refuses_its_demo_keys_outside_the_dev_stack(process: str) -> None:
    # Nothing listens on this port: the refusal comes before anything connects.
    env = outside_the_dev_stack(STANCH_CONFIG=str(DEV_POLICY), STANCH_TEMPORAL_ADDRESS="127.0.0.1:9")
    done = subprocess.run(
        [sys.executable, "-m", "stanch", process],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == [
        demo_key_refusal(DEV_POLICY, "alice, bob, carol, dave, erin and approvals.services.console")
    ]


def test_the_intake_starts_on_the_dev_policy_when_the_dev_stack_or_the_tests_started_it() -> None:
    port = free_port()
    env = outside_the_dev_stack(
        STANCH_CONFIG=str(DEV_POLICY),
        STANCH_TEMPORAL_ADDRESS="127.0.0.1:9",
        STANCH_INTAKE_PORT=str(port),
        **{TRUST_DEMO_KEYS: "1"},
    )
    intake = subprocess.Popen(
        [sys.executable, "-m", "stanch", "intake"],
        env=env,
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # Temporal is away, so it answers 503 — but it answers: it started on the demo keys.
        health = eventually(lambda: _health(port), "the intake to answer /healthz", timeout=60)
        assert health.status_code == 503 and health.json()["temporal"] == "unreachable"
    finally:
        intake.terminate()
        _, stderr = intake.communicate(timeout=30)
    assert "demo keys" not in stderr


def _health(port: int) -> httpx.Response | None:
    try:
        return http_client.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
    except httpx.HTTPError:
        return None


def demo_people_policy(tmp_path: Path) -> Path:
    """The shipped policy plus config/dev.toml's demo people and their keys, without the example systems
    (whose processes only the dev stack runs)."""
    people = tomllib.loads(DEV_POLICY.read_text())["people"]
    lines = [f'extends = "{REPO_ROOT / "config" / "stanch.toml"}"']
    for name, table in people.items():
        if "keys" in table:
            lines += [f"[people.{name}]", f"keys = {json.dumps(table['keys'])}", "demo = true"]
    path = tmp_path / "demo-people.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


async def test_the_worker_starts_on_demo_keys_only_when_the_dev_stack_or_the_tests_started_it(
    tmp_path: Path,
) -> None:
    path = demo_people_policy(tmp_path)
    env = await start_dev_server()
    try:
        settings = {
            "STANCH_CONFIG": str(path),
            "STANCH_TEMPORAL_ADDRESS": env.client.service_client.config.target_host,
            "STANCH_TASK_QUEUE": f"demo-{uuid.uuid4().hex[:8]}",
        }
        refused = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "stanch", "worker"],
            env=outside_the_dev_stack(**settings),
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert refused.returncode == 2, refused.stderr
        assert refused.stderr.splitlines() == [demo_key_refusal(path)]

        started = await asyncio.to_thread(
            first_line_with,
            outside_the_dev_stack(**settings, **{TRUST_DEMO_KEYS: "1"}),
            "worker started on task queue",
        )
        assert started, "the worker did not start"
    finally:
        await env.shutdown()


def first_line_with(env: dict[str, str], text: str) -> str | None:
    """Start `stanch worker`, read its output until a line holds `text` (or it exits), then stop it."""
    worker = subprocess.Popen(
        [sys.executable, "-m", "stanch", "worker"],
        env=env,
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert worker.stdout is not None
        # Bounded by the process: it either prints the line or exits, closing its output.
        return next((line for line in worker.stdout if text in line), None)
    finally:
        worker.terminate()
        worker.wait(timeout=30)
