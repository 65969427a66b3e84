"""A closed incident's decision brief, rebuilt from its Temporal history: no worker needed (issue 16).

A query is answered by a worker, and a closed run's only by a worker of the version it was pinned to; once
those are gone, `brief` would get no answer at all. The history always answers. What it gives:
- who, what, where from the start input (`IncidentInput`: id, runbook, severity, service, summary, the
  alert's start);
- the state: the result's `final_state` when the run completed, else the last `StanchState` it upserted
  followed by how it ended ("awaiting_approval (terminated)");
- the automatic actions: every effect that completed, labelled with its step's summary and time, as the
  runbook lists them (stanch.history_timeline reads them);
- the last update: when the run closed.
The brief of a closed run lists no open decision (`to_sign` is empty) and no recommendation: nothing
is waiting for anyone.

The console calls `closed_brief(client, workflow_id)` with its own client (its converter's codec decodes
encrypted payloads) when no worker answers a closed incident's queries, and renders `.brief` like a queried
one. Core, beside history_timeline.py, so the console (runtime code) may import it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHistory

from schemas.briefs import Brief, Timeline, TimelineEntry
from stanch.codec import decoded_history
from stanch.history_timeline import build_timeline, decode_one, first_value, stamp_time

STATE_ATTRIBUTE = "StanchState"
INCIDENT_FIELDS = ("incident_id", "runbook", "severity", "service", "summary")
DONE = ": done"


class ClosedBriefError(Exception):
    """The history holds no incident brief to rebuild (still open, not an incident, unreadable payloads)."""


@dataclass
class ClosedBrief:
    brief: Brief
    timeline: Timeline
    status: (
        str  # how the run ended: completed | failed | cancelled | terminated | timed out | continued as new
    )


async def closed_brief(client: Client, workflow_id: str) -> ClosedBrief:
    """The brief of a closed incident from its history (the latest run of `workflow_id`)."""
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    codec = client.data_converter.payload_codec
    if codec is not None:
        history = await decoded_history(history, codec)
    return brief_from_history(history)


def brief_from_history(history: WorkflowHistory) -> ClosedBrief:
    events = list(history.events)
    if not events:
        raise ClosedBriefError(f"{history.workflow_id} has an empty history")
    incident = first_value(events[0].workflow_execution_started_event_attributes.input)
    if not isinstance(incident, dict) or any(not isinstance(incident.get(f), str) for f in INCIDENT_FIELDS):
        raise ClosedBriefError(f"{history.workflow_id}'s history does not start an incident this can read")
    story = build_timeline(history)
    if story.outcome == "running":
        raise ClosedBriefError(f"{history.workflow_id} is still open: its workers answer its brief")
    state = story.final_state if story.outcome == "completed" and story.final_state else None
    if state is None:
        state = f"{_last_state(history) or 'triggered'} ({story.outcome})"
    alert = incident.get("alert")
    alert = alert if isinstance(alert, dict) else {}
    brief = Brief(
        incident_id=incident["incident_id"],
        runbook=incident["runbook"],
        severity=incident["severity"],
        service=incident["service"],
        summary=incident["summary"],
        started_at=alert.get("starts_at") or stamp_time(events[0].event_time),
        last_update_at=stamp_time(events[-1].event_time),
        automatic_actions=[
            f"{_seen_at(events, entry.event_id, entry.at):%H:%M:%S} {entry.text.removesuffix(DONE)}"
            for entry in story.entries
            if entry.kind == "action" and entry.actor == "stanch" and entry.text.endswith(DONE)
        ],
        state=state,
    )
    timeline = Timeline(
        entries=[
            TimelineEntry(at=entry.at, kind=entry.kind, text=entry.text, actor=entry.actor)
            for entry in story.entries
        ]
    )
    return ClosedBrief(brief=brief, timeline=timeline, status=story.outcome)


def _seen_at(events: list[Any], event_id: int, otherwise: datetime) -> datetime:
    """When the runbook saw the event: the start of the first workflow task after it, whose time is the
    `workflow.now()` the running incident stamped its brief with (the event's own time can be a second
    earlier)."""
    for event in events:
        if event.event_id > event_id and event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED:
            return stamp_time(event.event_time)
    return otherwise


def _last_state(history: WorkflowHistory) -> str | None:
    """The last StanchState the run upserted (what the incident list showed when it ended)."""
    state: str | None = None
    for event in history.events:
        if event.event_type != EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES:
            continue
        fields = event.upsert_workflow_search_attributes_event_attributes.search_attributes.indexed_fields
        if STATE_ATTRIBUTE in fields:
            value: Any = decode_one(fields[STATE_ATTRIBUTE])
            state = value if isinstance(value, str) else state
    return state
