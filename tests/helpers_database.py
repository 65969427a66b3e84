"""Helpers for tests of the postgres adapter: a scratch copy of the example application database
(examples/app-db/, at its head, with its orders) in the session's Postgres, and what it looks like now."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from stanch.ops.devstack.example_database import ALEMBIC_INI, APP_DB, create_example_database
from stanch.settings import Settings

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from pgserver._commands import POSTGRES_BIN_PATH

HEAD = "0003_add_refunds"
BELOW_HEAD = "0002_add_totals"
# The integrity queries the example's policy runs: both hold on the seeded data, before and after 0003 goes.
EXAMPLE_INTEGRITY = [
    "SELECT count(*) = 0 FROM orders WHERE total_cents < 0",
    "SELECT id FROM orders WHERE customer = ''",
]


@dataclass(frozen=True)
class AppDatabase:
    """One scratch database of the example application, and its connection string."""

    name: str
    dsn: str

    def head(self) -> str | None:
        with psycopg.connect(self.dsn) as conn:
            row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        return None if row is None else str(row[0])

    def has_table(self, table: str) -> bool:
        with psycopg.connect(self.dsn) as conn:
            row = conn.execute("SELECT to_regclass(%s)", (f"public.{table}",)).fetchone()
        return row is not None and row[0] is not None

    def count(self, table: str) -> int:
        with psycopg.connect(self.dsn) as conn:
            row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))).fetchone()
        assert row is not None
        return int(row[0])


@contextlib.contextmanager
def scratch_app_database(settings: Settings) -> Iterator[AppDatabase]:
    """A fresh `app_<hex>` at the example's head, dropped afterwards (with whatever still holds it)."""
    name = f"app_{uuid.uuid4().hex[:10]}"
    create_example_database(settings.database_admin_url, name)
    try:
        yield AppDatabase(name, make_conninfo(settings.database_admin_url, dbname=name))
    finally:
        maintenance = make_conninfo(settings.database_admin_url, dbname="postgres")
        with psycopg.connect(maintenance, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def service_settings(dsn_env: str, backup_dir: Path, **overrides: Any) -> dict[str, Any]:
    """One service's `[systems.database.services.<service>]` table, as config/dev.toml's for the example."""
    return {
        "dsn_env": dsn_env,
        "bin_dir": str(POSTGRES_BIN_PATH),
        "backup_dir": str(backup_dir),
        "migrate_down": [sys.executable, "-m", "alembic", "-c", str(ALEMBIC_INI), "downgrade", "-1"],
        "migrations": [sys.executable, str(APP_DB / "applied_migrations.py"), str(ALEMBIC_INI)],
        "rows_query": "SELECT count(*) FROM orders",
        "integrity": EXAMPLE_INTEGRITY,
        **overrides,
    }


def listed_tables(dump: Path) -> list[str]:
    """`pg_restore --list` of a backup, read by the test itself: the TABLE entries it names."""
    listing = subprocess.run(
        [str(POSTGRES_BIN_PATH / "pg_restore"), "--list", str(dump)],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    return sorted(
        line.split()[5]
        for line in listing.splitlines()
        if not line.startswith(";") and " TABLE public " in line
    )
