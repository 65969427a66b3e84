"""Alembic's environment for the example application: online migrations only, one transaction each.

The URL names the driver and nothing else, so psycopg (libpq) takes host, port, database, user and
password from the PG* environment variables the caller set: the postgres adapter, the dev stack or a
person at a shell (`PGDATABASE=app alembic -c examples/app-db/alembic.ini current`).
"""

from __future__ import annotations

from logging.config import fileConfig

from alembic import context
from sqlalchemy import create_engine, pool

URL = "postgresql+psycopg://"

# alembic.ini's logging: each migration it runs is one line on stderr, which the adapter keeps on failure.
if context.config.config_file_name is not None:
    fileConfig(context.config.config_file_name, disable_existing_loggers=False)


def run_migrations_online() -> None:
    # NullPool: a migration command is one short process; nothing to keep open after it.
    engine = create_engine(URL, poolclass=pool.NullPool)
    with engine.connect() as connection:
        # Postgres runs DDL inside transactions: a migration that fails half-way leaves nothing behind.
        context.configure(connection=connection, transaction_per_migration=True)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("the example application migrates online only (no --sql)")
run_migrations_online()
