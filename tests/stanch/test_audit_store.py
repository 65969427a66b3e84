"""Reading the audit log (stanch/audit_store.py) as `stanch audit log` and the console print it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from psycopg_pool import AsyncConnectionPool

from activities.audit import AuditActivities
from schemas.audit import AuditEvent
from stanch.audit_store import read_rows, verify_chains
from stanch.settings import Settings


def row(workflow_id: str, run_id: str, step: str) -> AuditEvent:
    return AuditEvent(
        workflow_id=workflow_id,
        run_id=run_id,
        step_key=step,
        actor="stanch",
        action=f"do {step}",
        outcome="done",
        occurred_at=datetime.now(UTC),
    )


async def test_an_incident_opened_again_lists_its_runs_oldest_first_each_run_together(
    postgres_settings: Settings,
) -> None:
    workflow_id = f"incident-reopened-{uuid.uuid4().hex[:8]}"
    # The second run's id sorts before the first's, as random run ids often do.
    first, second = "run-z-first", "run-a-second"
    async with AsyncConnectionPool(postgres_settings.database_url, min_size=1, max_size=1) as pool:
        audit = AuditActivities(pool)
        for event in (row(workflow_id, first, "pause"), row(workflow_id, first, "closed")):
            await audit.write_audit(event)
        for event in (row(workflow_id, second, "pause"), row(workflow_id, second, "closed")):
            await audit.write_audit(event)

    listed = [
        (found.run_id, found.step_key) for found in read_rows(postgres_settings.database_url, workflow_id)
    ]
    assert listed == [(first, "pause"), (first, "closed"), (second, "pause"), (second, "closed")]
    report = verify_chains(postgres_settings.database_url, workflow_id)
    assert (report.chains, report.rows, report.broken) == (2, 4, [])
