"""The rollback runbook's database path on the time-skipping server, with `[systems.database]` on the
postgres adapter: a real scratch copy of the example application database, its real pg_dump, pg_restore
and Alembic. The other systems stay on the sandbox."""

from __future__ import annotations

import json
import sys
import textwrap
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from schemas.approvals import ApprovalAnswer
from schemas.incidents import IncidentResult
from schemas.severity import Severity
from stanch.policy import load_policy
from stanch.settings import REPO_ROOT, Settings
from tests.clock import free_clock, settle_and_terminate
from tests.conftest import StartedWorkflows
from tests.helpers import Incidents, Running, audit_rows, chat_messages, until_state
from tests.helpers_database import (
    BELOW_HEAD,
    HEAD,
    AppDatabase,
    listed_tables,
    scratch_app_database,
    service_settings,
)
from tests.helpers_keys import demo_signed
from workers.worker import activity_implementations, build_worker

# Slow tier (`make test` runs it, `make test-fast` does not): a database rollback through the real pg_dump and Alembic (~5 s).
pytestmark = pytest.mark.slow

DSN_ENV = "STANCH_TEST_ROLLBACK_APP_DSN"


class OnPostgres:
    """A worker whose database system is the postgres adapter on `app_db`, for the service `service`."""

    def __init__(
        self, running: Running, incidents: Incidents, app_db: AppDatabase, service: str, backups: Path
    ):
        self.running = running
        self.incidents = incidents
        self.app_db = app_db
        self.service = service
        self.backups = backups


def policy_on_postgres(path: Path, service: str, backups: Path, **overrides: Any) -> Path:
    """tests/policy.toml (the shipped policy with the demo keys) plus `[systems.database]` on the postgres adapter for `service`."""
    table = service_settings(DSN_ENV, backups, **overrides)
    lines = "\n".join(f"{key} = {json.dumps(value)}" for key, value in table.items())
    path.write_text(
        textwrap.dedent(
            f"""\
            extends = {json.dumps(str(REPO_ROOT / "tests" / "policy.toml"))}

            [systems.database]
            adapter = "postgres"

            [systems.database.services.{service}]
            """
        )
        + lines
        + "\n"
    )
    return path


@pytest.fixture
def app_db(postgres_settings: Settings) -> Iterator[AppDatabase]:
    with scratch_app_database(postgres_settings) as database:
        yield database


async def on_postgres(
    time_env: WorkflowEnvironment,
    settings: Settings,
    app_db: AppDatabase,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    **overrides: Any,
) -> AsyncIterator[OnPostgres]:
    service = f"app-{uuid.uuid4().hex[:8]}"
    backups = tmp_path / "backups"
    policy_path = policy_on_postgres(tmp_path / "stanch.toml", service, backups, **overrides)
    # The worker reads the connection string from its environment, as it would in production.
    monkeypatch.setenv(DSN_ENV, app_db.dsn)
    task_queue = f"test-{uuid.uuid4().hex[:8]}"
    started = StartedWorkflows()
    config = time_env.client.config()
    config["interceptors"] = [*config["interceptors"], started]
    client = Client(**config)
    worker_settings = settings.model_copy(update={"task_queue": task_queue, "config": policy_path})
    async with activity_implementations(worker_settings, client) as activities:
        async with build_worker(client, task_queue, activities):
            running = Running(time_env, client, task_queue, settings)
            incidents = Incidents(client, task_queue, load_policy(policy_path))
            yield OnPostgres(running, incidents, app_db, service, backups)
            await settle_and_terminate(client, started.ids)
    await free_clock(time_env)


@pytest.fixture
async def db(
    time_env: WorkflowEnvironment,
    settings: Settings,
    app_db: AppDatabase,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[OnPostgres]:
    async for running in on_postgres(time_env, settings, app_db, tmp_path, monkeypatch):
        yield running


async def open_database_rollback(db: OnPostgres) -> WorkflowHandle[Any, IncidentResult]:
    return await db.incidents.open(
        "rollback",
        alertname="BadMigration",
        annotations={"summary": f"migration {HEAD} broke {db.service}"},
        severity=Severity.P1,
        service=db.service,
        target={"service": db.service, "kind": "database"},
    )


async def test_database_rollback_on_postgres_leaves_a_verified_backup_and_the_schema_one_down(
    db: OnPostgres,
) -> None:
    handle = await open_database_rollback(db)
    brief = await until_state(handle, "awaiting_approval")
    assert HEAD in brief.recommendation
    # Before anyone is asked, the backup is on disk and read back; the schema is as it was.
    [dump] = sorted(db.backups.glob("*.dump"))
    assert (db.backups / dump.name.replace(".dump", ".verified.json")).exists()
    assert db.app_db.head() == HEAD

    answer = ApprovalAnswer(approver="bob", action="migrate-down", comment="0003 is bad")
    await handle.signal("approve", await demo_signed(handle, answer))
    result = await handle.result()

    assert result.final_state == "rolled_back"
    assert db.app_db.head() == BELOW_HEAD and not db.app_db.has_table("refunds")
    assert db.app_db.count("orders") == 240
    assert sorted(db.backups.glob("*.dump")) == [dump]
    assert listed_tables(dump) == ["alembic_version", "orders", "refunds"]
    rows = audit_rows(db.running.settings, handle.id)
    assert [(r["step_key"], r["outcome"]) for r in rows] == [
        ("find-migration", "done"),
        ("backup", "done"),
        ("verify-backup", "done"),
        ("gate1-requested", "pending"),
        ("gate1-decision", "approved"),
        ("guardrail-migrate-down", "allow"),
        ("migrate-down", "done"),
        ("integrity-check", "done"),
        ("closed", "rolled_back"),
    ]
    assert rows[6]["actor"] == "bob"


async def test_database_rollback_on_postgres_with_an_unreadable_backup_touches_nothing(
    time_env: WorkflowEnvironment,
    settings: Settings,
    app_db: AppDatabase,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The real pg_dump, then the end of its file lost, as a full disk leaves it: a real backup that the
    # real pg_restore cannot read back.
    real = Path(service_settings(DSN_ENV, tmp_path)["bin_dir"])
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "pg_restore").symlink_to(real / "pg_restore")
    (fake_bin / "pg_dump").write_text(
        textwrap.dedent(
            f"""\
            #!{sys.executable}
            import os, subprocess, sys
            code = subprocess.call([{str(real / "pg_dump")!r}, *sys.argv[1:]])
            if code == 0 and "--file" in sys.argv:
                path = sys.argv[sys.argv.index("--file") + 1]
                os.truncate(path, os.path.getsize(path) * 7 // 8)
            sys.exit(code)
            """
        )
    )
    (fake_bin / "pg_dump").chmod(0o755)
    async for db in on_postgres(time_env, settings, app_db, tmp_path, monkeypatch, bin_dir=str(fake_bin)):
        handle = await open_database_rollback(db)
        result = await handle.result()

        assert result.final_state == "blocked_no_backup" and result.approval is None
        assert db.app_db.head() == HEAD and db.app_db.has_table("refunds")
        assert list(db.backups.glob("*.verified.json")) == []
        rows = audit_rows(db.running.settings, handle.id)
        assert [(r["step_key"], r["outcome"]) for r in rows] == [
            ("find-migration", "done"),
            ("backup", "done"),
            ("verify-backup", "failed"),
            ("no-backup", "done"),
            ("closed", "blocked_no_backup"),
        ]
        assert "cannot be read back" in rows[2]["reason"]
        [page] = chat_messages(settings.platform_url, handle.id)
        assert "no verified backup" in page["title"]
