"""The audit log: one row per step whatever the retries, append-only, and a verifiable hash chain."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from activities.audit import AuditActivities
from schemas.audit import AuditEvent
from stanch.audit_store import verify_chains
from stanch.settings import Settings
from tests.helpers import audit_event


async def write(settings: Settings, *events: AuditEvent) -> list[bool]:
    async with AsyncConnectionPool(settings.database_url, min_size=1, max_size=2) as pool:
        audit = AuditActivities(pool)
        return [(await audit.write_audit(e)).inserted for e in events]


def count(settings: Settings, workflow_id: str) -> int:
    with psycopg.connect(settings.database_url) as conn:
        row = conn.execute("SELECT count(*) FROM audit_log WHERE workflow_id = %s", (workflow_id,)).fetchone()
        return int(row[0]) if row else 0


async def test_retried_audit_write_adds_no_second_row(postgres_settings: Settings) -> None:
    workflow_id = f"incident-audit-{uuid.uuid4().hex[:8]}"
    pause = audit_event(workflow_id, "pause")
    assert await write(postgres_settings, pause, pause) == [True, False]
    assert count(postgres_settings, workflow_id) == 1


async def test_worker_role_cannot_update_or_delete(postgres_settings: Settings) -> None:
    workflow_id = f"incident-audit-{uuid.uuid4().hex[:8]}"
    await write(postgres_settings, audit_event(workflow_id, "pause"))
    for statement in ("UPDATE audit_log SET reason = 'x'", "DELETE FROM audit_log"):
        with psycopg.connect(postgres_settings.database_url) as conn, pytest.raises(psycopg.Error):
            conn.execute(statement + " WHERE workflow_id = %s", (workflow_id,))
    # The owner is stopped by the trigger too.
    with (
        psycopg.connect(postgres_settings.database_admin_url) as conn,
        pytest.raises(psycopg.Error, match="append-only"),
    ):
        conn.execute("UPDATE audit_log SET reason = 'x' WHERE workflow_id = %s", (workflow_id,))
    assert count(postgres_settings, workflow_id) == 1


def tamper(settings: Settings, statement: str, workflow_id: str, step: str) -> None:
    """What a rogue owner could do: switch the trigger off, change history, switch it back on."""
    with psycopg.connect(settings.database_admin_url) as conn:
        conn.execute("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only")
        conn.execute(statement, (workflow_id, step))
        conn.execute("ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only")


async def test_verify_reports_the_first_edited_row(postgres_settings: Settings) -> None:
    workflow_id = f"incident-audit-{uuid.uuid4().hex[:8]}"
    await write(
        postgres_settings, *(audit_event(workflow_id, step) for step in ("pause", "notify", "rollback"))
    )
    intact = verify_chains(postgres_settings.database_url, workflow_id)
    assert intact.rows == 3 and not intact.broken

    tamper(
        postgres_settings,
        "UPDATE audit_log SET actor = 'nobody' WHERE workflow_id = %s AND step_key = %s",
        workflow_id,
        "notify",
    )
    report = verify_chains(postgres_settings.database_url, workflow_id)
    assert [(b.step_key, b.problem) for b in report.broken] == [
        ("notify", "contents do not match their hash (the row was edited)")
    ]


async def test_verify_reports_a_removed_row(postgres_settings: Settings) -> None:
    workflow_id = f"incident-audit-{uuid.uuid4().hex[:8]}"
    await write(
        postgres_settings, *(audit_event(workflow_id, step) for step in ("pause", "notify", "rollback"))
    )
    tamper(
        postgres_settings,
        "DELETE FROM audit_log WHERE workflow_id = %s AND step_key = %s",
        workflow_id,
        "notify",
    )
    report = verify_chains(postgres_settings.database_url, workflow_id)
    assert len(report.broken) == 1 and report.broken[0].step_key == "rollback"
    assert "not the previous one" in report.broken[0].problem
