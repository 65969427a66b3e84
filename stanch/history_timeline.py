"""An incident's story told from its Temporal history alone: no database, no running worker.

The history is the record Temporal keeps of every message in and every command out, so an auditor holding
only an exported file can still answer: which alerts came in, what Stanch did and with what result, who
approved or rejected what (and whose answers were refused), when it escalated, which timers fired, and how
it ended.

Choices, so the reader knows what an entry means:
- Every `approve`/`reject` signal is listed. One is marked *refused* when the workflow audited a refusal for
  it: the gate audits each refused signal as step `refused-N` with the answerer as actor, in the same
  workflow task that handled the signal, so the earliest unmatched answer from that person is the one.
- `decide` updates appear only once accepted: the validator keeps refused updates out of the history.
- The gate's own verdict (the `gateN-decision` / `gateN-safe-default` audit steps) is listed as a
  `decision`: that is the answer that counted, including "nobody answered, safe default".
- Audit writes (one row each, or a batch of an incident's queued rows) are otherwise not listed as actions:
  they restate the entries around them.
- An escalation is a notification whose step key contains "escalate", or an `escalate` signal.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.api.enums.v1 import EventType
from temporalio.api.failure.v1 import Failure
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter

# The activities that write audit rows: one row each (`write_audit`), or every row an incident's audit
# queue held at once (`audit_write_rows`, issue 15). `audit_rows_requested` reads the rows of either.
AUDIT_ACTIVITY = "write_audit"
AUDIT_ROWS_ACTIVITY = "audit_write_rows"
AUDIT_ACTIVITIES = frozenset({AUDIT_ACTIVITY, AUDIT_ROWS_ACTIVITY})
ANSWER_SIGNALS = {"approve": True, "reject": False}
# Keys that identify rather than describe; left out of the highlights an auditor reads.
_NOISE = {"idempotency_key", "workflow_id", "run_id", "text", "policy"}
_MAX_VALUE = 80


@dataclass
class Entry:
    at: datetime
    kind: str
    actor: str
    text: str
    event_id: int
    details: dict[str, str] = field(default_factory=dict)
    refused: bool = False


@dataclass
class HistoryTimeline:
    workflow_id: str
    workflow_type: str
    started_at: datetime | None
    entries: list[Entry] = field(default_factory=list)
    outcome: str = "running"  # completed | failed | cancelled | terminated | timed out | continued as new
    final_state: str = ""
    outcome_detail: str = ""

    def kinds(self, kind: str) -> list[Entry]:
        return [entry for entry in self.entries if entry.kind == kind]

    # ---- renderings ---------------------------------------------------------------------------------

    def as_json(self) -> str:
        def plain(value: Any) -> Any:
            return value.isoformat() if isinstance(value, datetime) else value

        data = {key: plain(value) for key, value in asdict(self).items() if key != "entries"}
        data["entries"] = [
            {key: plain(value) for key, value in asdict(entry).items()} for entry in self.entries
        ]
        return json.dumps(data, indent=2)

    def as_text(self) -> str:
        lines = [f"{self.workflow_id} ({self.workflow_type}) started {_when(self.started_at)}"]
        for entry in self.entries:
            lines.append(f"{_when(entry.at)}  {_label(entry):<11} {entry.actor:<14} {_line(entry)}")
        lines.append(f"outcome: {self.outcome_line()}")
        return "\n".join(lines)

    def as_markdown(self) -> str:
        lines = [
            f"# {self.workflow_id}",
            "",
            f"Workflow `{self.workflow_type}`, started {_when(self.started_at)}.",
            "",
            "| time (UTC) | kind | who | what |",
            "|---|---|---|---|",
        ]
        for entry in self.entries:
            what = _line(entry).replace("|", "\\|")
            lines.append(f"| {_when(entry.at)} | {_label(entry)} | {entry.actor} | {what} |")
        lines += ["", f"**Outcome:** {self.outcome_line()}"]
        return "\n".join(lines)

    def outcome_line(self) -> str:
        parts = [self.outcome]
        if self.final_state:
            parts.append(f"final state {self.final_state}")
        if self.outcome_detail:
            parts.append(self.outcome_detail)
        return ", ".join(parts)


def _when(at: datetime | None) -> str:
    return f"{at:%Y-%m-%d %H:%M:%S}" if at else "?"


def _label(entry: Entry) -> str:
    return f"{entry.kind} REFUSED" if entry.refused else entry.kind


def _line(entry: Entry) -> str:
    extra = ", ".join(f"{key}={value}" for key, value in entry.details.items())
    return f"{entry.text} [{extra}]" if extra else entry.text


# ---- decoding -------------------------------------------------------------------------------------------


def _decode(payloads: Payloads | None) -> list[Any]:
    """Payloads as plain JSON values (dicts, strings ...): no workflow types needed to read a history."""
    if payloads is None or not payloads.payloads:
        return []
    try:
        return list(pydantic_data_converter.payload_converter.from_payloads(list(payloads.payloads)))
    except Exception:  # an encrypted or foreign payload: say so rather than fail the whole timeline
        return ["<undecodable payload>"] * len(payloads.payloads)


def decode_one(payload: Payload) -> Any:
    """One payload as a plain JSON value; None when empty or undecodable."""
    if not payload.data and not payload.metadata:
        return None
    try:
        return pydantic_data_converter.payload_converter.from_payloads([payload])[0]
    except Exception:
        return None


def first_value(payloads: Payloads | None) -> Any:
    values = _decode(payloads)
    return values[0] if values else None


def _summary(event: HistoryEvent) -> str:
    if not event.HasField("user_metadata") or not event.user_metadata.HasField("summary"):
        return ""
    value = decode_one(event.user_metadata.summary)
    return value if isinstance(value, str) else ""


def stamp_time(stamp: Timestamp) -> datetime:
    return stamp.ToDatetime(tzinfo=UTC)


def highlights(value: Any) -> dict[str, str]:
    """The short scalar fields of a decoded payload: what an auditor scans, not the whole document."""
    if not isinstance(value, dict):
        return {} if value is None else {"value": str(value)[:_MAX_VALUE]}
    picked = {}
    for key, item in value.items():
        if key in _NOISE or item is None or item == "" or isinstance(item, (dict, list)):
            continue
        text = str(item)
        picked[key] = text if len(text) <= _MAX_VALUE else text[: _MAX_VALUE - 1] + "…"
    return picked


def audit_rows_requested(activity: str, request: Any) -> list[dict[str, Any]]:
    """The audit rows (decoded `AuditEvent`s) an activity of this name asked to write, in their order: one
    for `write_audit`, each of the batch for `audit_write_rows`, none for any other activity."""
    if activity == AUDIT_ACTIVITY:
        return [request] if isinstance(request, dict) else []
    if activity == AUDIT_ROWS_ACTIVITY and isinstance(request, dict):
        rows = request.get("rows")
        return [row for row in rows if isinstance(row, dict)] if isinstance(rows, list) else []
    return []


def effect_step(value: Any) -> str:
    """The step of an effect, from its idempotency key `<workflow id>/<run id>/<step>`."""
    if isinstance(value, dict) and isinstance(value.get("idempotency_key"), str):
        return str(value["idempotency_key"]).rsplit("/", 1)[-1]
    return ""


# ---- the walk ---------------------------------------------------------------------------------------------


@dataclass
class _Scheduled:
    name: str
    summary: str
    request: Any
    at: datetime


def build_timeline(history: WorkflowHistory) -> HistoryTimeline:
    events = list(history.events)
    start = events[0].workflow_execution_started_event_attributes if events else None
    timeline = HistoryTimeline(
        workflow_id=history.workflow_id,
        workflow_type=start.workflow_type.name if start else "?",
        started_at=stamp_time(events[0].event_time) if events else None,
    )
    scheduled: dict[int, _Scheduled] = {}
    timers: dict[str, str] = {}
    unmatched_answers: list[Entry] = []

    for event in events:
        at, eid = stamp_time(event.event_time), event.event_id
        kind = event.event_type

        if kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
            incident = highlights(first_value(event.workflow_execution_started_event_attributes.input))
            if incident:
                timeline.entries.append(Entry(at, "started", "stanch", "incident opened", eid, incident))

        elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
            attrs = event.workflow_execution_signaled_event_attributes
            body = first_value(attrs.input)
            body = body if isinstance(body, dict) else {}
            name = attrs.signal_name
            if name == "alert":
                status = body.get("status", "firing")
                text = f"{body.get('name', '?')} {status}: {body.get('summary') or ''}".rstrip(": ")
                details = {k: str(body[k]) for k in ("fingerprint", "severity") if body.get(k)}
                timeline.entries.append(Entry(at, "alert", str(body.get("source", "?")), text, eid, details))
            elif name in ANSWER_SIGNALS:
                entry = _answer(at, eid, body, approved=ANSWER_SIGNALS[name], via="signal")
                timeline.entries.append(entry)
                unmatched_answers.append(entry)
            elif name == "escalate":
                text = f"asks to escalate now: {body.get('reason', '')}".rstrip(": ")
                timeline.entries.append(Entry(at, "escalation", str(body.get("by", "?")), text, eid))
            else:
                actor = str(body.get("by") or attrs.identity or "?")
                timeline.entries.append(Entry(at, "signal", actor, name, eid, highlights(body)))

        elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
            request = event.workflow_execution_update_accepted_event_attributes.accepted_request.input
            if request.name == "decide":
                body = first_value(request.args)
                body = body if isinstance(body, dict) else {}
                approved = bool(body.get("approved"))
                timeline.entries.append(_answer(at, eid, body, approved=approved, via="update"))

        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            attrs_s = event.activity_task_scheduled_event_attributes
            request = first_value(attrs_s.input)
            scheduled[eid] = _Scheduled(attrs_s.activity_type.name, _summary(event), request, at)
            for row in audit_rows_requested(attrs_s.activity_type.name, request):
                _audit_written(timeline, at, eid, row, unmatched_answers)

        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            attrs_c = event.activity_task_completed_event_attributes
            done = scheduled.pop(attrs_c.scheduled_event_id, None)
            if done and done.name not in AUDIT_ACTIVITIES:
                result = highlights(first_value(attrs_c.result))
                timeline.entries.append(_effect(done, at, eid, "done", result))

        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED:
            attrs_f = event.activity_task_failed_event_attributes
            failed = scheduled.pop(attrs_f.scheduled_event_id, None)
            if failed and failed.name not in AUDIT_ACTIVITIES:
                reason = {"error": _failure_text(attrs_f.failure)}
                timeline.entries.append(_effect(failed, at, eid, "failed", reason))

        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT:
            attrs_t = event.activity_task_timed_out_event_attributes
            lost = scheduled.pop(attrs_t.scheduled_event_id, None)
            if lost and lost.name not in AUDIT_ACTIVITIES:
                timeline.entries.append(_effect(lost, at, eid, "timed out", {}))

        elif kind == EventType.EVENT_TYPE_TIMER_STARTED:
            attrs_ts = event.timer_started_event_attributes
            timeout = attrs_ts.start_to_fire_timeout.ToTimedelta()
            timers[attrs_ts.timer_id] = _summary(event) or f"timer of {timeout}"

        elif kind == EventType.EVENT_TYPE_TIMER_FIRED:
            timer_id = event.timer_fired_event_attributes.timer_id
            text = timers.pop(timer_id, f"timer {timer_id}")
            timeline.entries.append(Entry(at, "timer", "stanch", f"fired: {text}", eid))

        elif kind == EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED:
            attrs_ci = event.start_child_workflow_execution_initiated_event_attributes
            text = f"started {attrs_ci.workflow_type.name} {attrs_ci.workflow_id}"
            timeline.entries.append(Entry(at, "child", "stanch", text, eid))

        elif kind == EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED:
            attrs_cc = event.child_workflow_execution_completed_event_attributes
            child = attrs_cc.workflow_execution.workflow_id
            result = highlights(first_value(attrs_cc.result))
            timeline.entries.append(Entry(at, "child", "stanch", f"{child} completed", eid, result))

        elif kind == EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_FAILED:
            attrs_cf = event.child_workflow_execution_failed_event_attributes
            text = f"{attrs_cf.workflow_execution.workflow_id} failed: {_failure_text(attrs_cf.failure)}"
            timeline.entries.append(Entry(at, "child", "stanch", text, eid))

        else:
            _maybe_close(timeline, event)

    for pending in scheduled.values():
        if pending.name not in AUDIT_ACTIVITIES:
            timeline.entries.append(_effect(pending, pending.at, 0, "still running", {}))
    return timeline


def _answer(at: datetime, eid: int, body: dict[str, Any], *, approved: bool, via: str) -> Entry:
    verb = "approves" if approved else "rejects"
    comment = body.get("comment") or ""
    text = f"{verb} {body.get('action') or '?'}" + (f': "{comment}"' if comment else "")
    return Entry(
        at,
        "approval" if approved else "rejection",
        str(body.get("approver", "?")),
        text,
        eid,
        {"via": via},
    )


def _audit_written(
    timeline: HistoryTimeline, at: datetime, eid: int, event: dict[str, Any], unmatched: list[Entry]
) -> None:
    step = str(event.get("step_key", ""))
    actor = str(event.get("actor", "?"))
    if step.startswith("refused-"):
        for answer in unmatched:
            if answer.actor == actor:
                answer.refused = True
                answer.details["refused"] = str(event.get("reason", ""))
                unmatched.remove(answer)
                break
    elif step.endswith("-decision") or step.endswith("-safe-default"):
        verdict = "safe default, action not taken" if step.endswith("-safe-default") else event.get("outcome")
        reason = event.get("reason") or ""
        text = f"{event.get('action', '?')} {verdict}" + (f': "{reason}"' if reason else "")
        timeline.entries.append(Entry(at, "decision", actor, text, eid, {"step": step}))


def _effect(scheduled: _Scheduled, at: datetime, eid: int, outcome: str, result: dict[str, str]) -> Entry:
    step = effect_step(scheduled.request)
    kind = "escalation" if "escalate" in step else "action"
    details = {"activity": scheduled.name}
    if step:
        details["step"] = step
    details.update({f"in.{k}": v for k, v in highlights(scheduled.request).items()})
    details.update({f"out.{k}": v for k, v in result.items()})
    text = f"{scheduled.summary or scheduled.name}: {outcome}"
    return Entry(at, kind, "stanch", text, eid, details)


def _failure_text(failure: Failure) -> str:
    message = failure.message
    # An activity failure's message is generic ("Activity task failed"); the cause says what went wrong.
    if failure.HasField("cause") and failure.cause.message:
        message = f"{message}: {failure.cause.message}" if message else failure.cause.message
    return message[:200]


def _maybe_close(timeline: HistoryTimeline, event: HistoryEvent) -> None:
    kind = event.event_type
    if kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED:
        timeline.outcome = "completed"
        result = first_value(event.workflow_execution_completed_event_attributes.result)
        if isinstance(result, dict):
            timeline.final_state = str(result.get("final_state") or "")
    elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED:
        timeline.outcome = "failed"
        timeline.outcome_detail = _failure_text(event.workflow_execution_failed_event_attributes.failure)
    elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED:
        timeline.outcome = "cancelled"
    elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED:
        timeline.outcome = "terminated"
        timeline.outcome_detail = event.workflow_execution_terminated_event_attributes.reason
    elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT:
        timeline.outcome = "timed out"
    elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
        timeline.outcome = "continued as new"
    else:
        return
    timeline.entries.append(
        Entry(stamp_time(event.event_time), "outcome", "stanch", timeline.outcome_line(), 0)
    )
    timeline.entries[-1].event_id = event.event_id


def render(timeline: HistoryTimeline, fmt: str) -> str:
    if fmt == "json":
        return timeline.as_json()
    if fmt == "markdown":
        return timeline.as_markdown()
    return timeline.as_text()
