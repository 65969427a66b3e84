"""Cross-checking a workflow's history against its rows in the Postgres audit log.

Two independent records of one incident: Temporal's history (what the workflow did) and the audit log
(what it wrote down). Each must account for the other, so that neither a missing row nor a row for
something that never happened goes unnoticed.

The rule, from how runbooks work (`IncidentWorkflow.act` runs an effect, then audits it under the same
step; `notify` and the approval gate do the same):
- An *audit write* is one row an audit activity asked to write: a `write_audit` writes one, an
  `audit_write_rows` every row of its batch (an incident's queued rows, issue 15). Rows are counted, not
  activities.
- An *effect* is a completed or failed activity, other than the audit activities themselves, whose request
  carries a top-level `idempotency_key` `<workflow id>/<run id>/<step>`. Effects change something outside
  Temporal, so they must be idempotent and carry that key; reads (health checks, version diffs, dependents
  ...) do not, and the guardrail ask keeps its key inside its check and changes only Temporal's own state.
  Each effect's step must have been audited in the history (an audit write with that step key).
- Each audit write of a completed audit activity must have its row in Postgres (same workflow id, run id
  and step key) with the same actor, action, outcome and reason.
- Each row of that run in Postgres must have its audit write in the history.
The hash chain itself is checked by `stanch.audit_store.verify_chains`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHistory

from stanch.audit_store import AuditRow
from stanch.history_timeline import AUDIT_ACTIVITIES, audit_rows_requested, effect_step, first_value

_COMPARED = ("actor", "action", "outcome", "reason")


@dataclass
class CrossCheck:
    workflow_id: str
    run_id: str
    effects: int = 0
    audit_writes: int = 0  # rows written by completed audit activities
    audit_activities: int = 0  # the completed audit activities that wrote them
    rows: int = 0
    problems: list[str] = field(default_factory=list)

    def summary(self) -> str:
        counts = (
            f"{self.effects} effect(s), {self.audit_writes} audit write(s) in {self.audit_activities} "
            f"activit{'y' if self.audit_activities == 1 else 'ies'}, {self.rows} row(s)"
        )
        if not self.problems:
            return f"history and audit log agree for {self.workflow_id} run {self.run_id}: {counts}"
        listed = "\n".join(f"  - {problem}" for problem in self.problems)
        return (
            f"history and audit log DISAGREE for {self.workflow_id} run {self.run_id} ({counts}):\n{listed}"
        )


@dataclass
class _Activity:
    event_id: int
    name: str
    request: Any


def audited_run(history: WorkflowHistory) -> tuple[str, str]:
    """The (workflow id, run id) the workflow wrote its audit rows under, from its first audit write.

    Taken from the history rather than the file: a downloaded history need not carry its workflow id.
    """
    for event in history.events:
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            attrs = event.activity_task_scheduled_event_attributes
            for request in audit_rows_requested(attrs.activity_type.name, first_value(attrs.input)):
                return str(request.get("workflow_id", "")), str(request.get("run_id", ""))
    return "", ""


def cross_check(history: WorkflowHistory, rows: list[AuditRow]) -> CrossCheck:
    workflow_id, run_id = audited_run(history)
    check = CrossCheck(workflow_id=workflow_id, run_id=run_id)
    scheduled: dict[int, _Activity] = {}
    effects: list[_Activity] = []
    writes: dict[str, tuple[int, dict[str, Any]]] = {}  # step key -> (event id, completed audit event)
    requested: set[str] = set()  # every step the workflow asked to audit, completed or not

    for event in history.events:
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            attrs = event.activity_task_scheduled_event_attributes
            activity = _Activity(event.event_id, attrs.activity_type.name, first_value(attrs.input))
            scheduled[event.event_id] = activity
            requested.update(
                str(asked.get("step_key", ""))
                for asked in audit_rows_requested(activity.name, activity.request)
            )
        elif event.event_type in (
            EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED,
            EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED,
        ):
            scheduled_id = (
                event.activity_task_completed_event_attributes.scheduled_event_id
                or event.activity_task_failed_event_attributes.scheduled_event_id
            )
            done = scheduled.get(scheduled_id)
            if done is None:
                continue
            if done.name not in AUDIT_ACTIVITIES:
                if effect_step(done.request):
                    effects.append(done)
            elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
                check.audit_activities += 1
                for written in audit_rows_requested(done.name, done.request):
                    writes[str(written.get("step_key", ""))] = (done.event_id, written)

    check.effects, check.audit_writes = len(effects), len(writes)
    for effect in effects:
        step = effect_step(effect.request)
        if step not in requested:
            check.problems.append(
                f"effect {effect.name} step {step!r} (event {effect.event_id}) was never audited"
            )

    run_rows = {row.step_key: row for row in rows if row.run_id == run_id}
    check.rows = len(run_rows)
    for step, (event_id, written) in writes.items():
        row = run_rows.get(step)
        if row is None:
            check.problems.append(f"audit write {step!r} (event {event_id}) has no row in the audit log")
            continue
        differing = [name for name in _COMPARED if str(written.get(name, "")) != getattr(row, name)]
        if differing:
            check.problems.append(
                f"row {row.id} ({step!r}) differs from its audit write (event {event_id}) in {', '.join(differing)}"
            )
    for step, row in run_rows.items():
        if step not in requested:
            check.problems.append(f"row {row.id} ({step!r}) has no audit write in the history")
    return check
