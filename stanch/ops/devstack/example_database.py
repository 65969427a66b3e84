"""The example application database (examples/app-db/): database `app` in the dev stack's own Postgres,
at the head of its Alembic migrations, with a few hundred orders in it — what `make dev`'s database
rollback acts on through the postgres adapter (config/dev.toml's `[systems.database]`).

It is migrated once, when it is created: a later start finds it as the last rollback left it, one
migration down included, as `make dev` after `make dev` finds the gateway's sessions where they were.
"""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from activities.database.postgres import libpq_environment
from stanch.ops.devstack.supervisor import Child, LogFn, StartupFailed
from stanch.settings import REPO_ROOT, Settings

with warnings.catch_warnings():
    # As in postgres.py: importing pgserver warns when XDG_RUNTIME_DIR is unset; only its path is used.
    warnings.simplefilter("ignore")
    from pgserver._commands import POSTGRES_BIN_PATH

APP_DB = REPO_ROOT / "examples" / "app-db"
ALEMBIC_INI = APP_DB / "alembic.ini"
DATABASE = "app"
SERVICE = "support-bot-api"
ALEMBIC_TIMEOUT_SECONDS = 60.0
SEED_ORDERS = 240


def database_url(settings: Settings, dbname: str = DATABASE) -> str:
    """The example database as its owner reaches it: the stack's superuser (trust auth on 127.0.0.1)."""
    return make_conninfo(settings.database_admin_url, dbname=dbname)


def alembic(dsn: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`alembic -c examples/app-db/alembic.ini <args>` on `dsn`, handed over as PG* variables like the
    adapter does; the Python running this has alembic installed (the `dev` extra)."""
    environment = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
    return subprocess.run(
        [sys.executable, "-m", "alembic", "-c", str(ALEMBIC_INI), *args],
        env={**environment, **libpq_environment(dsn)},
        capture_output=True,
        text=True,
        timeout=ALEMBIC_TIMEOUT_SECONDS,
        check=False,
    )


def create_example_database(admin_url: str, dbname: str = DATABASE) -> bool:
    """Create `dbname` on the server of `admin_url` if it is missing and, if it was never migrated, upgrade
    it to head and add the demo's orders. True when it did so now."""
    maintenance = make_conninfo(admin_url, dbname="postgres")
    with psycopg.connect(maintenance, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone() is None:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
    dsn = make_conninfo(admin_url, dbname=dbname)
    with psycopg.connect(dsn) as conn:
        migrated = conn.execute("SELECT to_regclass('public.alembic_version')").fetchone()
    if migrated is not None and migrated[0] is not None:
        return False
    done = alembic(dsn, "upgrade", "head")
    if done.returncode != 0:
        raise StartupFailed(f"examples/app-db: alembic upgrade head failed:\n{done.stderr.strip()}")
    with psycopg.connect(dsn) as conn:
        conn.execute(
            "INSERT INTO orders (customer, total_cents) "
            "SELECT 'customer-' || (n %% 37), (n * 731) %% 20000 FROM generate_series(1, %s) AS n",
            (SEED_ORDERS,),
        )
        conn.execute(
            "INSERT INTO refunds (order_id, amount_cents) SELECT id, total_cents / 2 FROM orders WHERE id % 20 = 0"
        )
    return True


class ExampleDatabase:
    """`ExampleSystem` "database": lives inside the stack's Postgres, so nothing keeps running of its own."""

    name = "database"

    def start(self, home: Path, settings: Settings, log: LogFn) -> Child | None:
        (home / "backups").mkdir(parents=True, exist_ok=True)
        if create_example_database(settings.database_admin_url):
            log(f"database: created {DATABASE!r} at the head of examples/app-db's migrations")
        return None

    def environment(self, home: Path, settings: Settings) -> dict[str, str]:
        return {
            "STANCH_EXAMPLE_DATABASE_DSN": database_url(settings),
            # The server is the pgserver wheel's PostgreSQL 16: its pg_dump, not Debian's 15, can dump it.
            "STANCH_EXAMPLE_DATABASE_BIN_DIR": str(POSTGRES_BIN_PATH),
            "STANCH_EXAMPLE_DATABASE_BACKUP_DIR": str(home / "backups"),
            "STANCH_EXAMPLE_DATABASE_DIR": str(APP_DB),
            "STANCH_EXAMPLE_DATABASE_PYTHON": sys.executable,
        }

    def describe(self, home: Path, settings: Settings) -> str:
        return f"database {DATABASE!r} (Alembic, examples/app-db), postgres adapter: backups in {home / 'backups'}"
