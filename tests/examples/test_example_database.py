"""examples/app-db/ and the dev stack's ExampleDatabase, in the session's real Postgres: created at the head
of its Alembic migrations once, found as it was left on the next start, and reachable by the postgres
adapter with config/dev.toml's `[systems.database]` as it is written."""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from activities.adapters import AdapterContext, open_adapter
from activities.database.postgres import PostgresDatabase
from schemas.database import ServiceRequest
from stanch.ops.devstack.example_database import DATABASE, SERVICE, ExampleDatabase, alembic
from stanch.settings import REPO_ROOT, Settings
from tests.helpers_database import BELOW_HEAD, HEAD, AppDatabase

# Slow tier (`make test` runs it, `make test-fast` does not): migrates the example application database for real (~3 s).
pytestmark = pytest.mark.slow

DEV_POLICY = REPO_ROOT / "config" / "dev.toml"


@pytest.fixture
def example_home(postgres_settings: Settings, tmp_path: Path) -> Iterator[Path]:
    """The example's own directory under a dev home; database `app` is dropped afterwards."""
    yield tmp_path / "examples" / "database"
    maintenance = make_conninfo(postgres_settings.database_admin_url, dbname="postgres")
    with psycopg.connect(maintenance, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")


def test_the_example_database_is_migrated_once_and_kept_as_it_was_left(
    postgres_settings: Settings, example_home: Path
) -> None:
    example = ExampleDatabase()
    said: list[str] = []

    assert example.start(example_home, postgres_settings, said.append) is None
    dsn = example.environment(example_home, postgres_settings)["STANCH_EXAMPLE_DATABASE_DSN"]
    app = AppDatabase(DATABASE, dsn)
    assert app.head() == HEAD and app.count("orders") == 240 and app.count("refunds") == 12
    assert said == ["database: created 'app' at the head of examples/app-db's migrations"]

    assert alembic(dsn, "downgrade", "-1").returncode == 0
    example.start(example_home, postgres_settings, said.append)

    assert app.head() == BELOW_HEAD and not app.has_table("refunds")
    assert len(said) == 1 and (example_home / "backups").is_dir()


async def test_the_dev_policy_snippet_reaches_the_example_with_its_environment(
    postgres_settings: Settings, example_home: Path
) -> None:
    example = ExampleDatabase()
    example.start(example_home, postgres_settings, lambda line: None)
    table = dict(tomllib.loads(DEV_POLICY.read_text(encoding="utf-8"))["systems"]["database"])
    assert table.pop("adapter") == "postgres"
    context = AdapterContext(
        platform_url="http://unused",
        base_dir=REPO_ROOT / "config",
        environ=example.environment(example_home, postgres_settings),
    )
    adapter = open_adapter("database", "postgres", table, context)
    assert isinstance(adapter, PostgresDatabase)

    check = await adapter.check()
    state = await adapter.database_state(ServiceRequest(service=SERVICE))

    assert check.ok, check.detail
    assert state.migrations == ["0001_init", BELOW_HEAD, HEAD] and state.rows == 240
