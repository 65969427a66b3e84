"""A signed decision is verified inside the workflow sandbox by a process that never used an OpenSSH key
outside it: a worker whose own policy holds no keys (config/stanch.toml) receiving an incident started with
keys, or after `stanch keys sync` brought some; `stanch audit replay` in a fresh shell."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta

from schemas.signatures import DecisionStatement
from stanch.settings import REPO_ROOT
from stanch.signing import sign
from tests.helpers_keys import key_pair


def test_a_fresh_process_verifies_a_signed_decision_inside_the_workflow_sandbox() -> None:
    key, line = key_pair("erin@laptop")
    statement = DecisionStatement(
        workflow_id="incident-sandboxed",
        run_id="run-1",
        gate="gate1",
        action="rollback",
        verdict="approve",
        approver="erin",
        expires_at=datetime.now(UTC) + timedelta(days=1),
        digest="0" * 64,
        nonce="once",
    )
    signed = sign(statement, key).model_dump_json()
    done = subprocess.run(
        [sys.executable, "-m", "tests.probes.signing_probe", signed, line],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    # Judged by what it printed, not its exit code (the SDK may abort at interpreter exit: DESIGN.md).
    assert done.stdout.splitlines()[-1:] == ["accepted"], done.stdout + done.stderr
