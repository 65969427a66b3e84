"""The workflow that puts an alert no route matched on record (the intake starts it; see test_intake)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from schemas.alerts import Alert
from schemas.audit import AuditReceipt
from tests.helpers import Running, audit_rows


async def test_unrouted_alert_is_written_to_the_audit_log_with_its_labels(stanch: Running) -> None:
    alert = Alert(
        source="alertmanager",
        name="DiskAlmostFull",
        fingerprint=uuid.uuid4().hex[:16],
        labels={"alertname": "DiskAlmostFull", "instance": "db-3", "team": "storage"},
        starts_at=datetime(2026, 11, 21, 21, 52, 22, tzinfo=UTC),
    )
    workflow_id = f"unrouted-{alert.fingerprint}-firing"
    handle = await stanch.client.start_workflow(
        "unrouted_alert", alert, id=workflow_id, task_queue=stanch.task_queue, result_type=AuditReceipt
    )
    receipt = await handle.result()

    assert receipt.inserted and receipt.step_key == "unrouted"
    [row] = audit_rows(stanch.settings, workflow_id)
    assert (row["actor"], row["action"], row["outcome"]) == (
        "alertmanager",
        "route alert DiskAlmostFull",
        "unrouted",
    )
    assert "no route" in row["reason"]
