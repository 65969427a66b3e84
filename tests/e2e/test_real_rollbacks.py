"""Rollbacks on real systems, end to end on a dev stack as `make dev` runs it (config/dev.toml and its
example systems): a code rollback is one revert commit pushed to the example deploy repository's bare
remote, and a database rollback leaves a verified backup and the example database one migration down.

What is asserted is read from the systems themselves: `git` on the remote, the schema and rows in the
application database, the backup files and `pg_restore` reading one back, and the audit rows.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from stanch.ops.cli import DEV_POLICY
from stanch.ops.devstack import DevStack, settings_on_free_ports
from stanch.ops.devstack.example_database import POSTGRES_BIN_PATH, database_url
from stanch.ops.devstack.examples import default_examples
from stanch.settings import REPO_ROOT, Settings
from tests.helpers_database import BELOW_HEAD, HEAD
from tests.stack import brief_state, eventually, result_of, stanch_cli, terminate_running

pytestmark = pytest.mark.e2e

SERVICE = "support-bot-api"
HEALTHY_TAG = "healthy/20261119T113000Z"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStack]:
    home = tmp_path_factory.mktemp("real-rollbacks")
    settings = settings_on_free_ports(home).model_copy(update={"config": DEV_POLICY})
    with DevStack(settings, log=lambda line: None, examples=default_examples()) as running:
        yield running


def git(repository: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", *args], cwd=repository, capture_output=True, text=True, check=True, timeout=30
    )
    return done.stdout.strip()


ALICE_SIGNS = ("--key", str(REPO_ROOT / "config" / "dev-keys" / "alice"), "--yes")


def fire_and_approve(settings: Settings, scenario: str, action: str) -> str:
    """Fire a sample alert as the README's tour does and approve the recommended action from the CLI."""
    fired = stanch_cli(settings, "fire", scenario)
    assert fired.returncode == 0, fired.stderr
    [incident] = json.loads(fired.stdout)["incidents"]
    workflow_id = str(incident["workflow_id"])
    try:
        eventually(lambda: brief_state(settings, workflow_id) == "awaiting_approval", f"{workflow_id} to ask")
        # Signed with alice's demo key, as the tour signs (a database rollback needs it: it is destructive).
        approved = stanch_cli(settings, "approve", workflow_id, action, "--as", "alice", *ALICE_SIGNS)
        assert approved.returncode == 0, approved.stderr
        return workflow_id
    except BaseException:
        terminate_running(settings, {workflow_id})
        raise


def audit_steps(settings: Settings, workflow_id: str) -> dict[str, str]:
    with psycopg.connect(settings.database_url) as conn:
        rows = conn.execute(
            "SELECT step_key, outcome FROM audit_log WHERE workflow_id = %s ORDER BY id", (workflow_id,)
        ).fetchall()
    return {step: outcome for step, outcome in rows}


def test_a_code_rollback_pushes_exactly_one_revert_commit_to_the_remote(stack: DevStack) -> None:
    settings = stack.settings
    remote = stack.example_home("deploys") / "remote.git"
    banner = stack.banner()
    assert f"git adapter: remote {remote}" in banner and "postgres adapter: backups in" in banner
    before = git(remote, "rev-list", "main").splitlines()
    assert git(remote, "diff", "--stat", HEALTHY_TAG, "main"), "the example starts with a bad deploy live"

    workflow_id = fire_and_approve(settings, "rollback-request", "rollback-deploy")
    assert result_of(settings, workflow_id).final_state == "rolled_back"

    after = git(remote, "rev-list", "main").splitlines()
    assert after[1:] == before  # one new commit on top, nothing rewritten (no force-push)
    message = git(remote, "log", "-1", "--format=%B", "main")
    assert f"Stanch-Idempotency-Key: {workflow_id}/" in message
    assert git(remote, "diff", "--stat", HEALTHY_TAG, "main") == ""  # the code is the healthy deploy's again
    assert audit_steps(settings, workflow_id).get("closed") is not None


def test_a_database_rollback_leaves_a_verified_backup_and_the_schema_one_migration_down(
    stack: DevStack,
) -> None:
    settings = stack.settings
    app = database_url(settings)
    with psycopg.connect(app) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone() == (HEAD,)
        orders = conn.execute("SELECT count(*) FROM orders").fetchone()

    workflow_id = fire_and_approve(settings, "bad-migration", "migrate-down")
    assert result_of(settings, workflow_id).final_state == "rolled_back"

    with psycopg.connect(app) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone() == (BELOW_HEAD,)
        assert conn.execute("SELECT to_regclass('public.refunds')").fetchone() == (None,)
        assert conn.execute("SELECT count(*) FROM orders").fetchone() == orders
    backups = stack.example_home("database") / "backups"
    [dump] = backups.glob("*.dump")
    assert dump.with_suffix(".verified.json").exists()
    listed = subprocess.run(
        [str(POSTGRES_BIN_PATH / "pg_restore"), "--list", str(dump)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert listed.returncode == 0 and " refunds " in listed.stdout  # it holds the data as it was
    steps = audit_steps(settings, workflow_id)
    assert steps.get("closed") is not None
