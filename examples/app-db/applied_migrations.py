"""Print the Alembic migrations applied to the database, oldest first, one per line.

Alembic keeps only the head in `alembic_version`; the chain below it lives in the migration scripts. The
postgres adapter's `migrations` setting runs this to list what is applied (its last line is the migration
a rollback reverses). Any Alembic project can use it as it is:

    python applied_migrations.py path/to/alembic.ini

The connection comes from the PG* environment variables, as for `alembic` itself (see migrations/env.py).
"""

from __future__ import annotations

import sys

from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, pool

URL = "postgresql+psycopg://"


def applied(config_path: str) -> list[str]:
    script = ScriptDirectory.from_config(Config(config_path))
    engine = create_engine(URL, poolclass=pool.NullPool)
    with engine.connect() as connection:
        heads = MigrationContext.configure(connection).get_current_heads()
    if len(heads) > 1:
        raise SystemExit(f"the database has {len(heads)} heads ({', '.join(heads)}): merge them first")
    if not heads:
        return []
    # iterate_revisions walks from the head down to the base; the adapter wants the oldest first.
    return [revision.revision for revision in reversed(list(script.iterate_revisions(heads[0], "base")))]


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: applied_migrations.py ALEMBIC_INI")
    for name in applied(sys.argv[1]):
        print(name)
