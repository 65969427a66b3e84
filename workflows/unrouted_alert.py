"""An alert no routing rule matched: write it to the audit log, so it is on record instead of dropped.

Not a runbook: it opens no incident and acts on nothing. The audit log is written only through the audit
activity, so the intake starts this tiny workflow (id `unrouted-<fingerprint>-<status>-<startsAt>`, one per
alert occurrence) instead of writing the row itself; a repeated delivery finds that id taken and writes
nothing new.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from schemas.alerts import Alert
    from schemas.audit import AuditEvent, AuditReceipt
    from workflows.steps.audit import write_audit_row

# Labels are what an operator needs to write the missing rule; each becomes one `label.<name>` detail.
MAX_LABELS_AUDITED = 50


@workflow.defn(name="unrouted_alert")
class UnroutedAlert:
    @workflow.run
    async def run(self, alert: Alert) -> AuditReceipt:
        info = workflow.info()
        details = {
            "source": alert.source,
            "alert": alert.name,
            "fingerprint": alert.fingerprint,
            "status": alert.status.value,
        }
        if alert.starts_at is not None:
            details["starts_at"] = alert.starts_at.isoformat()
        for label in sorted(alert.labels)[:MAX_LABELS_AUDITED]:
            details[f"label.{label}"] = alert.labels[label]
        return await write_audit_row(
            AuditEvent(
                workflow_id=info.workflow_id,
                run_id=info.run_id,
                step_key="unrouted",
                actor=alert.source,
                action=f"route alert {alert.name}",
                outcome="unrouted",
                reason="no route in the policy matches its labels, and there is no default_route",
                occurred_at=workflow.now(),
                details=details,
            ),
            summary=f"audit unrouted {alert.name}",
        )
