"""Reading the audit log (stanch/audit_store.py) as `stanch audit log` and the console print it."""

from __future__ import annotations

import uuid

from psycopg_pool import AsyncConnectionPool

from activities.audit import AuditActivities
from stanch.audit_store import read_rows, verify_chains
from stanch.settings import Settings
from tests.helpers import audit_event


async def test_an_incident_opened_again_lists_its_runs_oldest_first_each_run_together(
    postgres_settings: Settings,
) -> None:
    workflow_id = f"incident-reopened-{uuid.uuid4().hex[:8]}"
    # The second run's id sorts before the first's, as random run ids often do.
    first, second = "run-z-first", "run-a-second"
    async with AsyncConnectionPool(postgres_settings.database_url, min_size=1, max_size=1) as pool:
        audit = AuditActivities(pool)
        for event in (
            audit_event(workflow_id, "pause", run_id=first),
            audit_event(workflow_id, "closed", run_id=first),
        ):
            await audit.write_audit(event)
        for event in (
            audit_event(workflow_id, "pause", run_id=second),
            audit_event(workflow_id, "closed", run_id=second),
        ):
            await audit.write_audit(event)

    listed = [
        (found.run_id, found.step_key) for found in read_rows(postgres_settings.database_url, workflow_id)
    ]
    assert listed == [(first, "pause"), (first, "closed"), (second, "pause"), (second, "closed")]
    report = verify_chains(postgres_settings.database_url, workflow_id)
    assert (report.chains, report.rows, report.broken) == (2, 4, [])
