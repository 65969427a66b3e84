"""The Postgres schema: an append-only, hash-chained audit log.

Workers connect as `stanch_app`, a role that may read and insert but never update or delete; a trigger
refuses updates and deletes for every role, so an edit needs a deliberate `DISABLE TRIGGER` by an owner
and is then caught by `stanch audit verify`.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

import psycopg

GENESIS_HASH = "0" * 64
APP_ROLE = "stanch_app"

MIGRATIONS: list[str] = [
    """
    CREATE TABLE IF NOT EXISTS audit_log (
        id          bigserial PRIMARY KEY,
        workflow_id text        NOT NULL,
        run_id      text        NOT NULL,
        step_key    text        NOT NULL,
        actor       text        NOT NULL,
        action      text        NOT NULL,
        outcome     text        NOT NULL,
        reason      text        NOT NULL DEFAULT '',
        details     jsonb       NOT NULL DEFAULT '{}'::jsonb,
        occurred_at timestamptz NOT NULL,
        recorded_at timestamptz NOT NULL DEFAULT now(),
        prev_hash   text        NOT NULL,
        row_hash    text        NOT NULL,
        UNIQUE (workflow_id, run_id, step_key)
    );
    CREATE INDEX IF NOT EXISTS audit_log_by_incident ON audit_log (workflow_id, run_id, id);
    CREATE OR REPLACE FUNCTION audit_log_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP;
    END $$;
    DROP TRIGGER IF EXISTS audit_log_append_only ON audit_log;
    CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_log
        FOR EACH STATEMENT EXECUTE FUNCTION audit_log_refuse_change();
    """,
    f"""
    DO $$ BEGIN
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{APP_ROLE}') THEN
            CREATE ROLE {APP_ROLE} LOGIN;
        END IF;
    END $$;
    REVOKE ALL ON audit_log FROM {APP_ROLE};
    GRANT SELECT, INSERT ON audit_log TO {APP_ROLE};
    GRANT USAGE ON SEQUENCE audit_log_id_seq TO {APP_ROLE};
    """,
    # The notification delivery ledger: which channel already took which notification, so a retried
    # notify activity skips it (Slack, Telegram, Discord and email have no idempotency key of their own).
    f"""
    CREATE TABLE IF NOT EXISTS notification_deliveries (
        idempotency_key text        NOT NULL,
        channel         text        NOT NULL,
        delivered_at    timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (idempotency_key, channel)
    );
    REVOKE ALL ON notification_deliveries FROM {APP_ROLE};
    GRANT SELECT, INSERT ON notification_deliveries TO {APP_ROLE};
    """,
]


def migrate(admin_url: str) -> None:
    """Bring the schema up to date; safe to run on every start."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version int PRIMARY KEY)")
        conn.execute("SELECT pg_advisory_lock(727274)")
        try:
            row = conn.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()
            current = row[0] if row else 0
            for version, sql in enumerate(MIGRATIONS, start=1):
                if version > current:
                    with conn.transaction():
                        conn.execute(sql)
                        conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (version,))
        finally:
            conn.execute("SELECT pg_advisory_unlock(727274)")


def row_hash(prev_hash: str, fields: dict[str, Any]) -> str:
    """The chain link: sha256 over the previous hash and the row's hashed columns, in a canonical form.

    Writer and verifier both call this with the columns named in HASHED_COLUMNS; timestamps are normalised
    to UTC microseconds, which is exactly what timestamptz keeps.
    """
    canonical = json.dumps(
        {name: _canonical(fields[name]) for name in HASHED_COLUMNS},
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256((prev_hash + canonical).encode()).hexdigest()


def _canonical(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="microseconds")
    return value


HASHED_COLUMNS = (
    "workflow_id",
    "run_id",
    "step_key",
    "actor",
    "action",
    "outcome",
    "reason",
    "details",
    "occurred_at",
)
