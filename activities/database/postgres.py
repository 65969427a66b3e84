"""The application database on a real Postgres: `pg_dump` backups read back by `pg_restore` before anything
is touched, the reverse migration through the application's own migration tool, the policy's integrity
queries after it (docs/connect-your-systems.md#the-postgres-adapter).

    [systems.database]
    adapter = "postgres"

    [systems.database.services.support-bot-api]
    dsn_env = "APP_DATABASE_DSN"                   # the variable holding the connection string (a secret)
    bin_dir = "/usr/lib/postgresql/16/bin"         # pg_dump / pg_restore of the server's major version
    backup_dir = "/var/backups/stanch/support-bot-api"
    migrate_down = ["alembic", "-c", "/srv/app/alembic.ini", "downgrade", "-1"]
    migrations = ["python", "/srv/app/applied_migrations.py", "/srv/app/alembic.ini"]
    integrity = ["SELECT count(*) = 0 FROM orders WHERE total_cents < 0"]

The rule of the seeds, kept here whatever the caller believes: never change a database without a backup of
it as it is now, verified by reading it back. `migrate_down` refuses unless the named backup was verified,
is unchanged since, and was taken at the migration it is asked to reverse — which must still be the head.

Exactly once per idempotency key: a backup's file is named from its key (a retry finds it and answers it);
a reverse migration records its key before the tool runs and its result after, so a retry answers the
first result, and a retry after a crash in between sees the head already moved and answers that. Every
effect on one service's database holds a Postgres advisory lock on it, so two attempts never overlap.

The connection string never reaches a command line, a log line or an error: commands get it as libpq's
PG* environment variables, and every text that leaves the adapter is scrubbed of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import re
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import psycopg
from psycopg.conninfo import conninfo_to_dict
from pydantic import Field, SecretStr, model_validator
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.adapters import AdapterConfigError, AdapterContext, AdapterSettings, refused
from activities.database.interface import Database
from activities.processes import Finished, run_command
from schemas.database import (
    BackupRef,
    DatabaseBackup,
    DatabaseState,
    IntegrityReport,
    MigrateDown,
    ServiceRequest,
)
from schemas.systems import SystemCheck
from stanch.redact import remember, scrub

# Alembic keeps the applied head in this one-row table; other tools are a setting away.
ALEMBIC_HEAD_QUERY = "SELECT version_num FROM alembic_version"
# An estimate from the statistics: exact counts of every table would scan a production database.
ESTIMATED_ROWS_QUERY = "SELECT coalesce(sum(n_live_tup), 0)::bigint FROM pg_stat_user_tables"
# The tables pg_dump writes out: ordinary and partitioned ones outside the system schemas, less those an
# extension owns (CREATE EXTENSION makes them again on restore).
TABLES_QUERY = r"""
SELECT n.nspname, c.relname
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p')
  AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\_%'
  AND NOT EXISTS (
    SELECT 1 FROM pg_depend d
    WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e'
  )
ORDER BY 1, 2
"""
# libpq's connection parameters and the environment variables that carry them to a command (libpq docs,
# "Environment Variables"). A parameter without a variable cannot be handed over without argv.
LIBPQ_VARIABLES = {
    "host": "PGHOST",
    "hostaddr": "PGHOSTADDR",
    "port": "PGPORT",
    "dbname": "PGDATABASE",
    "user": "PGUSER",
    "password": "PGPASSWORD",
    "passfile": "PGPASSFILE",
    "service": "PGSERVICE",
    "options": "PGOPTIONS",
    "application_name": "PGAPPNAME",
    "sslmode": "PGSSLMODE",
    "sslcert": "PGSSLCERT",
    "sslkey": "PGSSLKEY",
    "sslrootcert": "PGSSLROOTCERT",
    "sslcrl": "PGSSLCRL",
    "sslcrldir": "PGSSLCRLDIR",
    "sslsni": "PGSSLSNI",
    "sslcompression": "PGSSLCOMPRESSION",
    "requirepeer": "PGREQUIREPEER",
    "require_auth": "PGREQUIREAUTH",
    "ssl_min_protocol_version": "PGSSLMINPROTOCOLVERSION",
    "ssl_max_protocol_version": "PGSSLMAXPROTOCOLVERSION",
    "gssencmode": "PGGSSENCMODE",
    "krbsrvname": "PGKRBSRVNAME",
    "gsslib": "PGGSSLIB",
    "channel_binding": "PGCHANNELBINDING",
    "connect_timeout": "PGCONNECT_TIMEOUT",
    "client_encoding": "PGCLIENTENCODING",
    "target_session_attrs": "PGTARGETSESSIONATTRS",
    "load_balance_hosts": "PGLOADBALANCEHOSTS",
}
SERVICE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
BACKUP_ID = re.compile(r"^backup-[A-Za-z0-9._-]+$")
# The end of a command's stderr kept in a failure: enough to see why, not a whole migration log.
STDERR_TAIL = 2000
# A user:password@ in any URL a tool prints, besides the exact secrets the adapter knows.
URL_PASSWORD = re.compile(r"(://[^:/@\s]+:)[^@\s]+@")
VERSION = re.compile(r"\(PostgreSQL\)\s+(\d+)")


class ServiceDatabaseSettings(AdapterSettings):
    """`[systems.database.services.<service>]`: one service's database and how to act on it."""

    dsn_env: str = Field(
        min_length=1,
        description="the environment variable holding the libpq connection string (URI or key=value); "
        "the connection string is a secret and is never written in the policy",
    )
    bin_dir: str | None = Field(
        None,
        description="the directory of pg_dump and pg_restore, of the server's major version (pg_dump "
        "refuses a newer server); unset: the ones on PATH",
    )
    backup_dir: str = Field(min_length=1, description="where backups and their records are kept")
    migrate_down: list[str] = Field(
        min_length=1, description="argv of the application's reverse migration of its head (no shell)"
    )
    current_migration: list[str] | None = Field(
        None, description="argv printing the head migration (its first word); unset: current_migration_query"
    )
    current_migration_query: str = Field(ALEMBIC_HEAD_QUERY, description="SQL answering the head migration")
    migrations: list[str] | None = Field(
        None, description="argv listing the applied migrations, oldest first, one per line (first word)"
    )
    migrations_query: str | None = Field(
        None, description="SQL answering the applied migrations, one per row, oldest first"
    )
    integrity: list[str] = Field(
        min_length=1,
        description="SQL queries run after a reverse migration; each passes when it returns no rows or "
        "only rows whose first value is true",
    )
    rows_query: str = Field(
        ESTIMATED_ROWS_QUERY, description="SQL answering the number of rows, for the brief"
    )

    @model_validator(mode="before")
    @classmethod
    def _no_secret_in_the_policy(cls, data: Any) -> Any:
        if isinstance(data, dict) and "dsn" in data:
            raise ValueError("dsn: a secret is never written in the policy; name its variable in dsn_env")
        return data

    @model_validator(mode="after")
    def _one_source_each(self) -> ServiceDatabaseSettings:
        if (self.migrations is None) == (self.migrations_query is None):
            raise ValueError("give exactly one of migrations (a command) or migrations_query (SQL)")
        if self.current_migration is not None and "current_migration_query" in self.model_fields_set:
            raise ValueError("give current_migration (a command) or current_migration_query (SQL), not both")
        for name in ("migrate_down", "current_migration", "migrations"):
            argv = getattr(self, name)
            if argv is not None and not all(argv):
                raise ValueError(f"{name}: an empty argument")
        return self


class PostgresSettings(AdapterSettings):
    services: dict[str, ServiceDatabaseSettings] = Field(
        min_length=1, description="the databases Stanch may act on, by the service name alerts carry"
    )
    timeout_s: float = Field(
        25.0,
        gt=0,
        description="the longest any one command or query may take; inside the effect's 30 s attempt, so "
        "a slow step fails here with its reason rather than as a timed-out attempt",
    )
    connect_timeout_s: int = Field(10, ge=1, description="libpq's connect_timeout")

    @model_validator(mode="after")
    def _service_names(self) -> PostgresSettings:
        for name in self.services:
            if not SERVICE_NAME.match(name):
                raise ValueError(f"services.{name}: a service name is letters, digits, '.', '_' and '-'")
        return self


@dataclass(frozen=True)
class _Service:
    """One configured database, its connection string resolved."""

    name: str
    spec: ServiceDatabaseSettings
    dsn: SecretStr
    libpq_environment: dict[str, str]
    bin_dir: Path | None
    backups: Path

    @property
    def secrets(self) -> list[str]:
        password = self.libpq_environment.get("PGPASSWORD", "")
        return [self.dsn.get_secret_value(), password]

    def lock_key(self) -> int:
        """The advisory lock every effect on this database holds (a signed 64-bit key)."""
        digest = hashlib.sha256(f"stanch:database:{self.name}".encode()).digest()
        return int.from_bytes(digest[:8], "big", signed=True)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _first_words(text: str) -> list[str]:
    return [line.split()[0] for line in text.splitlines() if line.strip()]


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync_directory(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    """Write a record whole or not at all: a reader never sees half of one, even after a crash."""
    scratch = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(
            os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w", encoding="utf-8"
        ) as file:
            json.dump(data, file, indent=2, sort_keys=True)
            file.flush()
            os.fsync(file.fileno())
        os.replace(scratch, path)
    finally:
        scratch.unlink(missing_ok=True)
    _fsync_directory(path.parent)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    return data if isinstance(data, dict) else None


def libpq_environment(dsn: str) -> dict[str, str]:
    """The PG* variables that carry a libpq connection string to a command, so it never is on one.
    `ValueError` (never quoting the string, which may hold a password) when it cannot be handed over."""
    try:
        parameters = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        # The parser's message quotes the string.
        raise ValueError("not a libpq connection string") from None
    unknown = sorted(set(parameters) - set(LIBPQ_VARIABLES))
    if unknown:
        raise ValueError(
            f"connection parameter(s) {', '.join(unknown)} have no PG* environment variable; set them in the "
            "tools' environment instead"
        )
    return {LIBPQ_VARIABLES[key]: str(value) for key, value in parameters.items() if value is not None}


def _resolve_service(
    name: str, spec: ServiceDatabaseSettings, environ: dict[str, str], context: AdapterContext
) -> _Service:
    where = f"services.{name}.dsn_env"
    if spec.dsn_env not in environ:
        raise AdapterConfigError(f"{where}: environment variable {spec.dsn_env!r} is not set")
    dsn = environ[spec.dsn_env]
    try:
        libpq = libpq_environment(dsn)
    except ValueError as error:
        raise AdapterConfigError(f"{where}: {spec.dsn_env}: {error}") from None
    return _Service(
        name=name,
        spec=spec,
        dsn=SecretStr(dsn),
        libpq_environment=libpq,
        bin_dir=context.resolve(spec.bin_dir) if spec.bin_dir else None,
        backups=context.resolve(spec.backup_dir),
    )


class PostgresDatabase(Database):
    """The application databases the policy lists, acted on with Postgres' own tools."""

    adapter: ClassVar[str] = "postgres"
    Settings = PostgresSettings

    def __init__(self, settings: AdapterSettings, context: AdapterContext) -> None:
        super().__init__(settings, context)
        assert isinstance(settings, PostgresSettings)
        self._settings = settings
        environ = {**os.environ, **context.environ}
        self._services = {
            name: _resolve_service(name, spec, environ, context) for name, spec in settings.services.items()
        }
        # Whatever else this process writes down (logs, spans, other errors) is scrubbed of them too.
        remember(secret for service in self._services.values() for secret in service.secrets)

    # ---- the interface --------------------------------------------------------------------------------

    async def database_state(self, request: ServiceRequest) -> DatabaseState:
        service = self._service(request.service, "reading the database")
        async with self._session(service, "reading the database") as conn:
            return await self._state(service, conn)

    async def backup_database(self, request: ServiceRequest) -> DatabaseBackup:
        what = f"backup of {request.service}"
        service = self._service(request.service, what)
        if not request.idempotency_key:
            raise refused(what, "no idempotency key: a backup is named from it")
        backup_id = f"backup-{service.name}-{_digest(request.idempotency_key)[:16]}"
        taken = self._backup_record(service, backup_id)
        if taken is not None:
            return self._backup_answer(service, taken, replayed=True)
        async with self._session(service, what) as conn:
            await self._lock(service, conn, what)
            # Another attempt with the same key may have finished while this one waited for the lock.
            taken = self._backup_record(service, backup_id)
            if taken is not None:
                return self._backup_answer(service, taken, replayed=True)
            await self._same_major_version(service, conn, what)
            head = await self._head(service, conn, what)
            rows = await self._rows(service, conn)
            tables = [[schema, table] for schema, table in await self._query(conn, TABLES_QUERY)]
            # A backup holds the application's data: readable by the worker's user alone.
            service.backups.mkdir(mode=0o700, parents=True, exist_ok=True)
            dump = self._dump_path(service, backup_id)
            scratch = dump.with_name(f".{dump.name}.{uuid.uuid4().hex}.tmp")
            try:
                done = await self._run(
                    service,
                    [
                        self._tool(service, "pg_dump", what),
                        "--format=custom",
                        "--no-password",
                        "--file",
                        str(scratch),
                    ],
                    what,
                )
                if done.returncode != 0:
                    raise self._failed(service, what, f"pg_dump exited with {done.returncode}", done.stderr)
                # pg_dump syncs its file before it exits; the rename makes it appear whole or not at all.
                scratch.chmod(0o600)
                sha256 = await asyncio.to_thread(_file_sha256, scratch)
                size = scratch.stat().st_size
                os.replace(scratch, dump)
            finally:
                scratch.unlink(missing_ok=True)
            record = {
                "id": backup_id,
                "service": service.name,
                "idempotency_key": request.idempotency_key,
                "file": dump.name,
                "migration": head or "",
                "rows": rows,
                "tables": tables,
                "sha256": sha256,
                "size": size,
                "at": _now(),
            }
            # The record is written last: it is what says the backup exists (a retry answers it).
            _write_json(self._record_path(service, backup_id), record)
        activity.logger.info("database %s: backup %s taken (%d bytes)", service.name, backup_id, size)
        return self._backup_answer(service, record, replayed=False)

    async def verify_backup(self, request: BackupRef) -> DatabaseBackup:
        what = f"verification of backup {request.backup_id}"
        service = self._service(request.service, what)
        record = self._known_backup(service, request.backup_id, what)
        dump = self._dump_path(service, request.backup_id)
        if not dump.is_file():
            raise refused(what, f"the file {dump} is gone")
        sha256 = await asyncio.to_thread(_file_sha256, dump)
        proof = _read_json(self._verified_path(service, request.backup_id))
        if proof is not None and proof.get("sha256") == sha256 == record["sha256"]:
            return self._backup_answer(service, record, replayed=True)
        pg_restore = self._tool(service, "pg_restore", what)
        listed = await self._run(service, [pg_restore, "--list", str(dump)], what)
        if listed.returncode != 0:
            raise self._unreadable(service, what, dump, listed.stderr)
        entries = listed.stdout.splitlines()
        missing = [
            f"{schema}.{table}"
            for schema, table in record["tables"]
            if not (
                _listed(entries, "TABLE", schema, table) and _listed(entries, "TABLE DATA", schema, table)
            )
        ]
        if missing:
            raise refused(
                what, f"{dump} does not list the table(s) {', '.join(missing)}; nothing was touched"
            )
        # --list reads only the table of contents, which a truncated file still holds; reading every entry
        # (into an SQL script nobody keeps) reaches the data itself, as a restore would.
        read = await self._run(service, [pg_restore, "--file", os.devnull, str(dump)], what)
        if read.returncode != 0:
            raise self._unreadable(service, what, dump, read.stderr)
        if sha256 != record["sha256"]:
            raise refused(what, f"{dump} changed since it was taken; nothing was touched")
        _write_json(
            self._verified_path(service, request.backup_id),
            {"id": request.backup_id, "sha256": sha256, "tables": len(record["tables"]), "at": _now()},
        )
        activity.logger.info("database %s: backup %s verified", service.name, request.backup_id)
        return self._backup_answer(service, record, replayed=False)

    async def migrate_down(self, request: MigrateDown) -> DatabaseState:
        what = f"reverse migration {request.migration} of {request.service}"
        service = self._service(request.service, what)
        if not request.idempotency_key:
            raise refused(what, "no idempotency key")
        journal = self._journal_path(service, request.idempotency_key)
        async with self._session(service, what) as conn:
            await self._lock(service, conn, what)
            entry = _read_json(journal)
            if entry is not None and entry.get("state") == "done":
                return DatabaseState.model_validate({**entry["result"], "replayed": True})
            head = await self._head(service, conn, what)
            if entry is not None and head != request.migration:
                # The tool ran for this key and the attempt was lost before it wrote so down.
                state = await self._state(service, conn)
                _write_json(journal, {**entry, "state": "done", "result": state.model_dump(mode="json")})
                return state.model_copy(update={"replayed": True})
            # Never delete without a backup: a verified one, unchanged since, of the schema as it is now.
            record = self._known_backup(service, request.backup_id, what)
            if not await self._still_verified(service, record):
                raise refused(
                    what,
                    f"backup {request.backup_id} ({self._dump_path(service, request.backup_id)}) is not "
                    "verified; nothing was touched",
                )
            if head != request.migration:
                raise refused(
                    what, f"{request.migration} is not the head migration (the head is {head or 'none'})"
                )
            if record["migration"] != head:
                raise refused(
                    what,
                    f"backup {request.backup_id} was taken at {record['migration'] or 'no migration'}, the "
                    f"database is at {head} now; take a new backup",
                )
            _write_json(
                journal,
                {
                    "idempotency_key": request.idempotency_key,
                    "service": service.name,
                    "migration": request.migration,
                    "backup_id": request.backup_id,
                    "state": "started",
                    "at": _now(),
                },
            )
            done = await self._run(
                service,
                service.spec.migrate_down,
                what,
                {
                    "STANCH_IDEMPOTENCY_KEY": request.idempotency_key,
                    "STANCH_SERVICE": service.name,
                    "STANCH_MIGRATION": request.migration,
                    "STANCH_BACKUP_ID": request.backup_id,
                },
            )
            if done.returncode != 0:
                raise self._failed(
                    service, what, f"the migration tool exited with {done.returncode}", done.stderr
                )
            after = await self._head(service, conn, what)
            if after == request.migration:
                raise refused(what, f"the migration tool exited 0 but {request.migration} is still the head")
            state = await self._state(service, conn)
            _write_json(
                journal,
                {**(_read_json(journal) or {}), "state": "done", "result": state.model_dump(mode="json")},
            )
        activity.logger.info("database %s: %s reversed, head now %s", service.name, request.migration, after)
        return state

    async def check_integrity(self, request: ServiceRequest) -> IntegrityReport:
        what = f"integrity check of {request.service}"
        service = self._service(request.service, what)
        failures: list[str] = []
        async with self._session(service, what) as conn:
            for number, query in enumerate(service.spec.integrity, start=1):
                verdict = await self._integrity_verdict(service, conn, query, what)
                if verdict:
                    failures.append(f"query {number} ({_shortened(query)}) {verdict}")
        if failures:
            return IntegrityReport(service=service.name, ok=False, detail="; ".join(failures))
        count = len(service.spec.integrity)
        return IntegrityReport(service=service.name, ok=True, detail=f"{count} integrity queries passed")

    async def check(self) -> SystemCheck:
        problems: list[str] = []
        found: list[str] = []
        for service in self._services.values():
            try:
                found.append(await self._check_service(service))
            except ApplicationError as error:
                problems.append(f"{service.name}: {error.message}")
            except Exception as error:  # check() never raises: it says what is wrong
                problems.append(f"{service.name}: {self._scrub(service, str(error))}")
        if problems:
            return self.checked(False, "; ".join(problems))
        return self.checked(True, "; ".join(found))

    # ---- configuration --------------------------------------------------------------------------------

    def _service(self, name: str, what: str) -> _Service:
        service = self._services.get(name)
        if service is None:
            known = ", ".join(sorted(self._services))
            raise refused(what, f"no database is configured for service {name!r} (configured: {known})")
        return service

    def _tool(self, service: _Service, name: str, what: str) -> str:
        if service.bin_dir is None:
            found = shutil.which(name)
            if found is None:
                raise refused(what, f"{name} is not on PATH; set bin_dir")
            return found
        path = service.bin_dir / name
        if not os.access(path, os.X_OK):
            raise refused(what, f"{path} is not an executable (bin_dir)")
        return str(path)

    async def _tool_major_version(self, service: _Service, name: str, what: str) -> int:
        done = await self._run(service, [self._tool(service, name, what), "--version"], what)
        found = VERSION.search(done.stdout)
        if done.returncode != 0 or found is None:
            raise refused(what, f"{name} --version answered {done.stdout.strip()!r}")
        return int(found.group(1))

    async def _same_major_version(
        self, service: _Service, conn: psycopg.AsyncConnection[Any], what: str
    ) -> None:
        [[server_number]] = await self._query(conn, "SELECT current_setting('server_version_num')::int")
        server = int(server_number) // 10000
        client = await self._tool_major_version(service, "pg_dump", what)
        if client != server:
            raise refused(
                what,
                f"pg_dump is version {client}, the server {server}: set bin_dir to the binaries of "
                f"PostgreSQL {server}",
            )

    async def _check_service(self, service: _Service) -> str:
        what = f"check of {service.name}"
        async with self._session(service, what) as conn:
            [[server_number]] = await self._query(conn, "SELECT current_setting('server_version_num')::int")
        server = int(server_number) // 10000
        dump = await self._tool_major_version(service, "pg_dump", what)
        restore = await self._tool_major_version(service, "pg_restore", what)
        if not dump == restore == server:
            raise refused(
                what,
                f"server {server}, pg_dump {dump}, pg_restore {restore}: the binaries must be of the server's "
                f"major version (bin_dir {service.bin_dir or 'PATH'})",
            )
        existing = next((p for p in (service.backups, *service.backups.parents) if p.exists()), None)
        if existing is None or not os.access(existing, os.W_OK | os.X_OK):
            raise refused(what, f"backup_dir {service.backups} cannot be written")
        return f"{service.name}: PostgreSQL {server}, client binaries {dump}, backups in {service.backups}"

    # ---- connections, queries, commands -----------------------------------------------------------------

    def _scrub(self, service: _Service, text: str) -> str:
        return URL_PASSWORD.sub(r"\1***@", scrub(text, service.secrets))

    def _failed(self, service: _Service, what: str, why: str, stderr: str = "") -> ApplicationError:
        """A failure worth another attempt (a lost connection, a tool that failed): Temporal retries it."""
        tail = self._scrub(service, stderr.strip()[-STDERR_TAIL:])
        return ApplicationError(
            f"{what} failed: {why}" + (f": {tail}" if tail else ""), type="DatabaseFailed"
        )

    def _unreadable(self, service: _Service, what: str, dump: Path, stderr: str) -> ApplicationError:
        tail = self._scrub(service, stderr.strip()[-STDERR_TAIL:])
        return refused(
            what, f"{dump} cannot be read back ({tail or 'pg_restore failed'}); nothing was touched"
        )

    @contextlib.asynccontextmanager
    async def _session(self, service: _Service, what: str) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        with self._database_errors(service, what):
            conn = await psycopg.AsyncConnection.connect(
                service.dsn.get_secret_value(),
                autocommit=True,
                connect_timeout=self._settings.connect_timeout_s,
                application_name="stanch",
            )
        try:
            with self._database_errors(service, what):
                await conn.execute(f"SET statement_timeout = {int(self._settings.timeout_s * 1000)}")
                yield conn
        finally:
            await conn.close()

    @contextlib.contextmanager
    def _database_errors(self, service: _Service, what: str) -> Iterator[None]:
        # psycopg's messages name the host and may quote the connection string: scrubbed, then retried.
        try:
            yield
        except psycopg.Error as error:
            raise self._failed(service, what, type(error).__name__, str(error)) from None

    async def _lock(self, service: _Service, conn: psycopg.AsyncConnection[Any], what: str) -> None:
        """Hold the database's advisory lock until the session ends; waits at most timeout_s."""
        await conn.execute(f"SET lock_timeout = {int(self._settings.timeout_s * 1000)}")
        try:
            await conn.execute("SELECT pg_advisory_lock(%s)", (service.lock_key(),))
        except psycopg.errors.LockNotAvailable:
            raise self._failed(service, what, "another effect on this database holds its lock") from None
        finally:
            await conn.execute("SET lock_timeout = 0")

    @staticmethod
    async def _query(conn: psycopg.AsyncConnection[Any], query: str) -> list[tuple[Any, ...]]:
        """Rows of a query run read-only: a setting's SQL can look, never change."""
        async with conn.transaction():
            await conn.execute("SET TRANSACTION READ ONLY")
            cursor = await conn.execute(query)
            return list(await cursor.fetchall()) if cursor.description is not None else []

    async def _integrity_verdict(
        self, service: _Service, conn: psycopg.AsyncConnection[Any], query: str, what: str
    ) -> str:
        """'' when the query passes, else what it answered. Only counts leave here: rows of the
        application's data have no place in an audit log or a page."""
        try:
            rows = await self._query(conn, query)
        except psycopg.Error as error:
            if conn.broken:
                raise self._failed(service, what, type(error).__name__, str(error)) from None
            # A check that cannot run (a column the reverse migration dropped) is a check that failed.
            return f"could not run: {type(error).__name__}"
        if all(row and row[0] is True for row in rows):
            return ""
        if len(rows) == 1 and len(rows[0]) >= 1 and rows[0][0] is False:
            return "answered false"
        return f"returned {len(rows)} row(s)"

    async def _head(self, service: _Service, conn: psycopg.AsyncConnection[Any], what: str) -> str | None:
        command = service.spec.current_migration
        if command is not None:
            done = await self._run(service, command, what)
            if done.returncode != 0:
                raise self._failed(
                    service, what, f"current_migration exited with {done.returncode}", done.stderr
                )
            words = _first_words(done.stdout)
            return words[0] if words else None
        try:
            rows = await self._query(conn, service.spec.current_migration_query)
        except psycopg.errors.UndefinedTable:
            return None  # never migrated: Alembic makes its table on the first upgrade
        return str(rows[0][0]) if rows and rows[0][0] is not None else None

    async def _migrations(self, service: _Service, conn: psycopg.AsyncConnection[Any]) -> list[str]:
        what = f"reading the migrations of {service.name}"
        if service.spec.migrations is not None:
            done = await self._run(service, service.spec.migrations, what)
            if done.returncode != 0:
                raise self._failed(service, what, f"migrations exited with {done.returncode}", done.stderr)
            return _first_words(done.stdout)
        assert service.spec.migrations_query is not None
        return [str(row[0]) for row in await self._query(conn, service.spec.migrations_query)]

    async def _rows(self, service: _Service, conn: psycopg.AsyncConnection[Any]) -> int:
        rows = await self._query(conn, service.spec.rows_query)
        return int(rows[0][0]) if rows and rows[0][0] is not None else 0

    async def _state(self, service: _Service, conn: psycopg.AsyncConnection[Any]) -> DatabaseState:
        records = sorted(self._backup_records(service), key=lambda record: (record["at"], record["id"]))
        verified = [record["id"] for record in records if self._looks_verified(service, record)]
        return DatabaseState(
            service=service.name,
            migrations=await self._migrations(service, conn),
            rows=await self._rows(service, conn),
            backups=[record["id"] for record in records],
            verified_backups=verified,
        )

    def _environment(self, service: _Service, extra: dict[str, str]) -> dict[str, str]:
        inherited = {**os.environ, **self.context.environ}
        # The worker's own PG* settings must not point a tool at another database than this service's.
        environment = {key: value for key, value in inherited.items() if key not in LIBPQ_VARIABLES.values()}
        return {**environment, **service.libpq_environment, **extra}

    async def _run(
        self, service: _Service, argv: list[str], what: str, extra: dict[str, str] | None = None
    ) -> Finished:
        """Run one command, no shell, in the policy file's directory, killed (with whatever it started) when
        it outlives timeout_s or the activity is cancelled."""
        try:
            finished = await run_command(
                argv, self._environment(service, extra or {}), self.context.base_dir, self._settings.timeout_s
            )
        except OSError as error:
            raise refused(what, f"cannot run {argv[0]}: {error.strerror}") from None
        if finished.timed_out:
            raise self._failed(
                service, what, f"{Path(argv[0]).name} did not finish within {self._settings.timeout_s:g} s"
            )
        return finished

    # ---- backup files -----------------------------------------------------------------------------------

    @staticmethod
    def _dump_path(service: _Service, backup_id: str) -> Path:
        return service.backups / f"{backup_id}.dump"

    @staticmethod
    def _record_path(service: _Service, backup_id: str) -> Path:
        return service.backups / f"{backup_id}.backup.json"

    @staticmethod
    def _verified_path(service: _Service, backup_id: str) -> Path:
        return service.backups / f"{backup_id}.verified.json"

    @staticmethod
    def _journal_path(service: _Service, key: str) -> Path:
        folder = service.backups / "reversals"
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        return folder / f"{_digest(key)[:32]}.json"

    def _backup_record(self, service: _Service, backup_id: str) -> dict[str, Any] | None:
        record = _read_json(self._record_path(service, backup_id))
        return record if record is not None and record.get("service") == service.name else None

    def _backup_records(self, service: _Service) -> list[dict[str, Any]]:
        if not service.backups.is_dir():
            return []
        records = (_read_json(path) for path in service.backups.glob("backup-*.backup.json"))
        return [record for record in records if record is not None and record.get("service") == service.name]

    def _known_backup(self, service: _Service, backup_id: str, what: str) -> dict[str, Any]:
        record = self._backup_record(service, backup_id) if BACKUP_ID.match(backup_id) else None
        if record is None:
            raise refused(what, f"no backup {backup_id!r} of {service.name} in {service.backups}")
        return record

    def _looks_verified(self, service: _Service, record: dict[str, Any]) -> bool:
        """Verified, and still the size it was (cheap, for the state); `_still_verified` hashes the file."""
        proof = _read_json(self._verified_path(service, record["id"]))
        dump = self._dump_path(service, record["id"])
        return proof is not None and dump.is_file() and dump.stat().st_size == record["size"]

    async def _still_verified(self, service: _Service, record: dict[str, Any]) -> bool:
        proof = _read_json(self._verified_path(service, record["id"]))
        dump = self._dump_path(service, record["id"])
        if proof is None or not dump.is_file():
            return False
        return proof.get("sha256") == record["sha256"] == await asyncio.to_thread(_file_sha256, dump)

    def _backup_answer(self, service: _Service, record: dict[str, Any], *, replayed: bool) -> DatabaseBackup:
        return DatabaseBackup(
            id=record["id"],
            service=service.name,
            migration=record["migration"],
            rows=record["rows"],
            verified=self._looks_verified(service, record),
            replayed=replayed,
        )


def _listed(entries: list[str], kind: str, schema: str, table: str) -> bool:
    """Whether `pg_restore --list` names `kind` (TABLE, TABLE DATA) of schema.table: lines read
    `<dump id>; <catalog oid> <oid> <kind> <schema> <name> <owner>`."""
    wanted = f" {kind} {schema} {table} "
    return any(not line.startswith(";") and wanted in line for line in entries)


def _shortened(query: str, limit: int = 80) -> str:
    flat = " ".join(query.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
