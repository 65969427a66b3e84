"""The worker as a process refuses a policy whose routes cannot supply their runbook's target, or that lacks
a role a runbook uses (one line, exit 2, before it ever connects to Temporal). A subprocess worker, so it
lives with the real-stack tests."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from stanch.settings import REPO_ROOT
from tests.helpers import write_policy

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
