"""Writing one audit row from workflow code: the one activity, its timeout and its retry policy, in one place.

Every workflow that writes the audit log calls this (the incident base through its queue, the guardrail, the
daily report, the unrouted-alert record), so a change to how a row is written is made once.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.audit import AuditActivities
    from schemas.audit import AuditEvent, AuditReceipt
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
