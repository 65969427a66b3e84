"""Writing audit rows from workflow code: the activities, their timeout and their retry policy, in one place.

Every workflow that writes the audit log calls one of these (the incident base through its queue, the
guardrail, the daily report, the unrouted-alert record), so a change to how a row is written is made once.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.audit import AuditActivities
    from schemas.audit import AuditEvent, AuditReceipt, AuditRows, AuditRowsReceipt
    from workflows.steps.policies import AUDIT_RETRY, AUDIT_TIMEOUT


async def write_audit_row(event: AuditEvent, *, summary: str | None = None) -> AuditReceipt:
    """Write `event` once (the activity is idempotent by workflow, run and step), retrying until Postgres
    takes it. `summary` labels the activity in the Temporal UI; by default `audit <step>`."""
    return await workflow.execute_activity_method(
        AuditActivities.write_audit,
        event,
        start_to_close_timeout=AUDIT_TIMEOUT,
        retry_policy=AUDIT_RETRY,
        summary=summary or f"audit {event.step_key}",
    )


async def write_audit_rows(events: list[AuditEvent]) -> AuditRowsReceipt:
    """Write `events` (one run's, in order) in one activity, each once, retrying until Postgres takes them:
    one activity's history events instead of one activity per row."""
    return await workflow.execute_activity_method(
        AuditActivities.write_audit_rows,
        AuditRows(rows=events),
        start_to_close_timeout=AUDIT_TIMEOUT,
        retry_policy=AUDIT_RETRY,
        summary=f"audit {', '.join(event.step_key for event in events)}",
    )
