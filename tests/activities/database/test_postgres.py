"""The postgres adapter on a real database: a scratch copy of the example application (examples/app-db/)
in the session's Postgres, its real pg_dump / pg_restore, its real Alembic. What is asserted is read back
from the database (alembic_version, the tables), the backup directory and `pg_restore --list` itself."""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from psycopg.conninfo import make_conninfo
from temporalio.exceptions import ApplicationError

from activities.adapters import AdapterConfigError, AdapterContext, open_adapter
from activities.database.postgres import PostgresDatabase
from schemas.database import BackupRef, DatabaseBackup, MigrateDown, ServiceRequest
from stanch.settings import Settings
from tests.helpers_database import (
    BELOW_HEAD,
    HEAD,
    AppDatabase,
    listed_tables,
    scratch_app_database,
    service_settings,
)

# Slow tier (`make test` runs it, `make test-fast` does not): the real pg_dump, psql and Alembic on a scratch database per test (~20 s).
pytestmark = pytest.mark.slow

SERVICE = "orders-api"
DSN_ENV = "STANCH_TEST_APP_DSN"
KEY = "incident-db-1/run-1"


@pytest.fixture
def app_db(postgres_settings: Settings) -> Iterator[AppDatabase]:
    with scratch_app_database(postgres_settings) as database:
        yield database


class Opened:
    """An adapter on `app_db` with its own backup directory; `reopen` changes one service setting."""

    def __init__(self, app_db: AppDatabase, backups: Path, dsn: str | None = None) -> None:
        self.app_db = app_db
        self.backups = backups
        self.environ = {DSN_ENV: dsn or app_db.dsn}

    def adapter(self, *, top: dict[str, Any] | None = None, **overrides: Any) -> PostgresDatabase:
        raw = {"services": {SERVICE: service_settings(DSN_ENV, self.backups, **overrides)}, **(top or {})}
        opened = open_adapter(
            "database", "postgres", raw, AdapterContext(platform_url="http://unused", environ=self.environ)
        )
        assert isinstance(opened, PostgresDatabase)
        return opened

    def dumps(self) -> list[Path]:
        return sorted(self.backups.glob("*.dump"))


@pytest.fixture
def opened(app_db: AppDatabase, tmp_path: Path) -> Opened:
    return Opened(app_db, tmp_path / "backups")


def alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


def refusal(error: pytest.ExceptionInfo[ApplicationError]) -> str:
    assert error.value.non_retryable, f"expected a refusal, got a retryable failure: {error.value}"
    return str(error.value)


async def backup_and_verify(adapter: PostgresDatabase, key: str = KEY) -> DatabaseBackup:
    backup = await adapter.backup_database(ServiceRequest(service=SERVICE, idempotency_key=f"{key}/backup"))
    return await adapter.verify_backup(
        BackupRef(service=SERVICE, backup_id=backup.id, idempotency_key=f"{key}/verify-backup")
    )


def migrate_down(backup_id: str, migration: str = HEAD, key: str = KEY) -> MigrateDown:
    return MigrateDown(
        service=SERVICE, backup_id=backup_id, migration=migration, idempotency_key=f"{key}/migrate-down"
    )


async def test_backup_verify_then_migrate_down_leaves_a_verified_backup_and_the_schema_one_down(
    opened: Opened,
) -> None:
    adapter = opened.adapter()
    state = await adapter.database_state(ServiceRequest(service=SERVICE))
    assert state.migrations == ["0001_init", BELOW_HEAD, HEAD] and state.rows == 240

    verified = await backup_and_verify(adapter)
    assert verified.verified and verified.migration == HEAD and verified.rows == 240
    after = await adapter.migrate_down(migrate_down(verified.id))

    assert opened.app_db.head() == BELOW_HEAD
    assert not opened.app_db.has_table("refunds") and opened.app_db.count("orders") == 240
    assert after.migrations == ["0001_init", BELOW_HEAD] and not after.replayed
    assert after.backups == after.verified_backups == [verified.id]
    # The backup on disk holds the schema from before, refunds included, and is the worker's alone.
    [dump] = opened.dumps()
    assert dump.name == f"{verified.id}.dump"
    assert listed_tables(dump) == ["alembic_version", "orders", "refunds"]
    assert dump.stat().st_mode & 0o077 == 0
    assert json.loads((opened.backups / f"{verified.id}.verified.json").read_text())["tables"] == 3


async def test_a_retry_with_the_same_keys_does_nothing_more(opened: Opened) -> None:
    adapter = opened.adapter()
    verified = await backup_and_verify(adapter)
    first = await adapter.migrate_down(migrate_down(verified.id))
    [dump] = opened.dumps()
    written = dump.stat().st_mtime_ns

    again = await backup_and_verify(adapter)
    repeated = await adapter.migrate_down(migrate_down(verified.id))

    assert again.id == verified.id and again.replayed and again.verified
    assert repeated.replayed and repeated.migrations == first.migrations
    # Still one migration down, not two; still the one backup file, not rewritten.
    assert opened.app_db.head() == BELOW_HEAD and opened.app_db.has_table("orders")
    assert opened.dumps() == [dump] and dump.stat().st_mtime_ns == written


async def test_a_retry_after_the_tool_ran_but_its_answer_was_lost_answers_the_state(opened: Opened) -> None:
    adapter = opened.adapter()
    verified = await backup_and_verify(adapter)
    await adapter.migrate_down(migrate_down(verified.id))
    # What a worker killed between the tool's exit and the journal's last write leaves behind.
    [journal] = (opened.backups / "reversals").glob("*.json")
    entry = json.loads(journal.read_text())
    journal.write_text(
        json.dumps({key: entry[key] for key in entry if key != "result"} | {"state": "started"})
    )

    repeated = await adapter.migrate_down(migrate_down(verified.id))

    assert repeated.replayed and repeated.migrations == ["0001_init", BELOW_HEAD]
    assert opened.app_db.head() == BELOW_HEAD
    assert json.loads(journal.read_text())["state"] == "done"


async def test_a_truncated_backup_is_refused_and_nothing_is_touched(opened: Opened) -> None:
    adapter = opened.adapter()
    backup = await adapter.backup_database(ServiceRequest(service=SERVICE, idempotency_key=f"{KEY}/backup"))
    [dump] = opened.dumps()
    # The end of its data gone, as a full disk leaves it; the table of contents at its start is still whole,
    # so pg_restore --list alone would read it fine.
    os.truncate(dump, dump.stat().st_size - dump.stat().st_size // 8)
    assert listed_tables(dump) == ["alembic_version", "orders", "refunds"]

    with pytest.raises(ApplicationError) as verifying:
        await adapter.verify_backup(BackupRef(service=SERVICE, backup_id=backup.id))
    with pytest.raises(ApplicationError) as migrating:
        await adapter.migrate_down(migrate_down(backup.id))

    assert str(dump) in refusal(verifying) and "cannot be read back" in refusal(verifying)
    assert "is not verified; nothing was touched" in refusal(migrating)
    assert opened.app_db.head() == HEAD and opened.app_db.has_table("refunds")
    assert not (opened.backups / f"{backup.id}.verified.json").exists()
    state = await adapter.database_state(ServiceRequest(service=SERVICE))
    assert state.backups == [backup.id] and state.verified_backups == []


async def test_a_backup_changed_after_its_verification_is_refused(opened: Opened) -> None:
    adapter = opened.adapter()
    verified = await backup_and_verify(adapter)
    [dump] = opened.dumps()
    # Same size, one byte different: only the hash taken at verification tells.
    content = bytearray(dump.read_bytes())
    content[-1] ^= 0xFF
    dump.write_bytes(bytes(content))

    with pytest.raises(ApplicationError) as migrating:
        await adapter.migrate_down(migrate_down(verified.id))

    assert "is not verified" in refusal(migrating)
    assert opened.app_db.head() == HEAD and opened.app_db.has_table("refunds")


async def test_without_a_verified_backup_nothing_is_touched(opened: Opened) -> None:
    adapter = opened.adapter()
    backup = await adapter.backup_database(ServiceRequest(service=SERVICE, idempotency_key=f"{KEY}/backup"))

    with pytest.raises(ApplicationError) as unverified:
        await adapter.migrate_down(migrate_down(backup.id))
    with pytest.raises(ApplicationError) as unknown:
        await adapter.migrate_down(migrate_down("backup-orders-api-0000000000000000"))
    with pytest.raises(ApplicationError) as hostile:
        await adapter.migrate_down(migrate_down("../../etc/passwd"))

    assert "is not verified" in refusal(unverified)
    assert "no backup" in refusal(unknown) and "no backup" in refusal(hostile)
    assert opened.app_db.head() == HEAD and opened.app_db.has_table("refunds")
    assert not (opened.backups / "reversals").exists() or not any((opened.backups / "reversals").iterdir())


async def test_migrate_down_of_a_migration_that_is_not_the_head_is_refused(opened: Opened) -> None:
    adapter = opened.adapter()
    verified = await backup_and_verify(adapter)

    with pytest.raises(ApplicationError) as refused_:
        await adapter.migrate_down(migrate_down(verified.id, migration=BELOW_HEAD))

    assert f"{BELOW_HEAD} is not the head migration (the head is {HEAD})" in refusal(refused_)
    assert opened.app_db.head() == HEAD and opened.app_db.has_table("refunds")


async def test_a_backup_taken_before_the_schema_moved_is_refused(opened: Opened) -> None:
    adapter = opened.adapter()
    verified = await backup_and_verify(adapter)
    first = await adapter.migrate_down(migrate_down(verified.id))
    assert first.migrations[-1] == BELOW_HEAD

    # A second incident asks to reverse the new head with the backup of the old one.
    with pytest.raises(ApplicationError) as stale:
        await adapter.migrate_down(migrate_down(verified.id, migration=BELOW_HEAD, key="incident-db-2/run-1"))

    assert f"was taken at {HEAD}" in refusal(stale)
    assert opened.app_db.head() == BELOW_HEAD


async def test_integrity_queries_that_fail_say_so_without_the_data(opened: Opened) -> None:
    passing = await opened.adapter().check_integrity(ServiceRequest(service=SERVICE))
    failing = await opened.adapter(
        integrity=[
            "SELECT count(*) = 0 FROM orders WHERE total_cents < 0",
            "SELECT customer FROM orders WHERE customer = 'customer-1'",
            "SELECT count(*) = 0 FROM orders",
            "SELECT amount_cents FROM no_such_table",
        ]
    ).check_integrity(ServiceRequest(service=SERVICE))

    assert passing.ok and passing.detail == "2 integrity queries passed"
    assert not failing.ok
    assert "query 2 (SELECT customer FROM orders WHERE customer = 'customer-1') returned " in failing.detail
    assert "query 3 (SELECT count(*) = 0 FROM orders) answered false" in failing.detail
    assert "query 4 (SELECT amount_cents FROM no_such_table) could not run: UndefinedTable" in failing.detail
    assert "query 1" not in failing.detail


async def test_integrity_queries_cannot_change_the_data(opened: Opened) -> None:
    report = await opened.adapter(integrity=["DELETE FROM refunds RETURNING true"]).check_integrity(
        ServiceRequest(service=SERVICE)
    )

    assert not report.ok and "could not run: ReadOnlySqlTransaction" in report.detail
    assert opened.app_db.count("refunds") == 12


async def test_check_wants_the_client_binaries_of_the_servers_major_version(opened: Opened) -> None:
    good = await opened.adapter().check()
    assert good.ok and "PostgreSQL 16, client binaries 16" in good.detail

    if shutil.which("pg_dump", path="/usr/bin") is None:
        pytest.skip("no Debian pg_dump on this machine to mismatch with")
    older = opened.adapter(bin_dir="/usr/bin")
    bad = await older.check()
    with pytest.raises(ApplicationError) as backing_up:
        await older.backup_database(ServiceRequest(service=SERVICE, idempotency_key=f"{KEY}/backup"))

    assert not bad.ok and "server 16, pg_dump 15" in bad.detail
    assert "set bin_dir to the binaries of PostgreSQL 16" in refusal(backing_up)
    assert opened.dumps() == []


async def test_an_unreachable_database_is_retried_and_its_password_never_shown(
    app_db: AppDatabase, tmp_path: Path
) -> None:
    password = "hunter2-db-secret"
    closed = Opened(app_db, tmp_path, dsn=f"postgresql://postgres:{password}@127.0.0.1:9/nowhere")
    adapter = closed.adapter(top={"connect_timeout_s": 1})

    with pytest.raises(ApplicationError) as reading:
        await adapter.database_state(ServiceRequest(service=SERVICE))
    check = await adapter.check()

    assert not reading.value.non_retryable and "OperationalError" in str(reading.value)
    assert not check.ok
    assert password not in str(reading.value) and password not in check.detail


async def test_a_failing_migration_tool_is_retried_with_its_stderr_scrubbed(
    app_db: AppDatabase, tmp_path: Path
) -> None:
    password = "hunter2-db-secret"
    # The server trusts local connections, so the password is carried but never checked.
    opened = Opened(app_db, tmp_path, dsn=make_conninfo(app_db.dsn, password=password))
    leaky = [
        "sh",
        "-c",
        'echo "cannot reach postgresql://$PGUSER:$PGPASSWORD@$PGHOST/$PGDATABASE" >&2; exit 1',
    ]
    adapter = opened.adapter(migrate_down=leaky)
    verified = await backup_and_verify(adapter)

    with pytest.raises(ApplicationError) as migrating:
        await adapter.migrate_down(migrate_down(verified.id))

    message = str(migrating.value)
    assert not migrating.value.non_retryable
    assert "the migration tool exited with 1" in message and "postgresql://postgres:***@127.0.0.1" in message
    assert password not in message
    assert app_db.head() == HEAD


async def test_a_hanging_migration_tool_is_killed_at_the_timeout(opened: Opened, tmp_path: Path) -> None:
    pid_file = tmp_path / "tool.pid"
    hanging = [
        sys.executable,
        "-c",
        f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(60)",
    ]
    adapter = opened.adapter(migrate_down=hanging, top={"timeout_s": 2})
    verified = await backup_and_verify(adapter)

    with pytest.raises(ApplicationError) as migrating:
        await adapter.migrate_down(migrate_down(verified.id))

    assert not migrating.value.non_retryable and "did not finish within 2 s" in str(migrating.value)
    assert not alive(int(pid_file.read_text()))
    assert opened.app_db.head() == HEAD


async def test_a_service_without_a_configured_database_is_refused(opened: Opened) -> None:
    with pytest.raises(ApplicationError) as unknown:
        await opened.adapter().backup_database(ServiceRequest(service="billing", idempotency_key="k"))

    assert "no database is configured for service 'billing' (configured: orders-api)" in refusal(unknown)
    assert not opened.backups.exists()


def test_the_connection_string_is_never_written_in_the_policy(tmp_path: Path) -> None:
    context = AdapterContext(platform_url="http://unused", environ={})
    table = service_settings(DSN_ENV, tmp_path)
    written = {"dsn": "postgresql://app:pw@db/app", **{k: v for k, v in table.items() if k != "dsn_env"}}

    with pytest.raises(AdapterConfigError, match="name its variable in dsn_env"):
        open_adapter("database", "postgres", {"services": {SERVICE: written}}, context)
    with pytest.raises(AdapterConfigError, match=f"services.{SERVICE}.dsn_env: environment variable"):
        open_adapter("database", "postgres", {"services": {SERVICE: table}}, context)
    with pytest.raises(AdapterConfigError, match="exactly one of migrations"):
        open_adapter(
            "database",
            "postgres",
            {"services": {SERVICE: {**table, "migrations_query": "SELECT 1"}}},
            AdapterContext(platform_url="http://unused", environ={DSN_ENV: "dbname=app"}),
        )
