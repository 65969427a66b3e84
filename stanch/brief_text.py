"""The decision brief and the timeline as plain text, from their JSON form: the one layout the CLI prints.

It reads the JSON the `brief` / `timeline` queries answer (what `model_dump(mode="json")` gives), not the
pydantic models, so `stanch brief` over Temporal's HTTP API prints without importing pydantic (~0.1 s of a
command the `temporal` CLI answers in about that; bench/README.md). `Brief.as_text` and `Reading.line`
(schemas/briefs.py) call these functions with their own dump, so the SDK path, a closed incident read from
its history and the HTTP path print the same bytes from one layout. The defaults below are the models'
own, for briefs written before a field existed (tests/stanch/test_brief_text.py compares them).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from stanch.markup import plain


def _time(value: str) -> datetime:
    # Pydantic writes datetimes as ISO 8601 (`...Z` for UTC); Python 3.11 reads that form back.
    return datetime.fromisoformat(value)


def reading_line(reading: Mapping[str, Any], escape: Callable[[str], str]) -> str:
    """One "Current system state" line, every part escaped by the sink's own function (platform values can
    carry names an alert chose, e.g. a template or a version)."""
    limit = f" (limit: {escape(reading['limit'])})" if reading.get("limit") else ""
    read_at = reading.get("read_at")
    when = f" · read {_time(read_at):%H:%M:%S} UTC" if read_at else ""
    return f"{escape(reading['name'])}: {escape(reading['value'])}{limit}{when}"


def brief_text(brief: Mapping[str, Any]) -> str:
    """For the CLI: plain text, no markup to render, control characters made visible."""
    text = plain
    actions = "\n".join(f"  - {text(a)}" for a in brief.get("automatic_actions", [])) or "  - none yet"
    readings = [f"  - {reading_line(reading, text)}" for reading in brief.get("system_state", [])]
    recommendation = brief.get("recommendation", "")
    risk = brief.get("risk_if_no_action", "")
    lines = [
        f"{text(brief['severity'])} · {text(brief['runbook'])} · {text(brief['service'])}  "
        f"({text(brief['incident_id'])})",
        f"Summary: {text(brief['summary'])}",
        f"Time window: since {_time(brief['started_at']):%Y-%m-%d %H:%M:%S} UTC "
        f"(last update {_time(brief['last_update_at']):%H:%M:%S} UTC)",
        f"State: {text(brief['state'])}",
        "Automatic actions taken:",
        actions,
        "Current system state:",
        "\n".join(readings) or "  - nothing read yet",
        f"Recommendation: {text(recommendation) if recommendation else 'none'}",
        f"Risk if no action: {text(risk) if risk else 'none stated'}",
    ]
    if brief.get("awaiting"):
        lines.append(f"Waiting for: {text(brief['awaiting'])}")
    if brief.get("pending_reviews"):
        lines.append("Customer messages awaiting review:")
        lines.extend(f"  - {text(review)}" for review in brief["pending_reviews"])
    if brief.get("postmortem"):
        link = brief["postmortem"]
        lines.append(f"Post-mortem: {text(link['workflow_id'])}, report at {text(link['report'])}")
    return "\n".join(lines)


def timeline_text(entries: Sequence[Mapping[str, Any]]) -> str:
    """The `--timeline` part of `stanch brief`: a heading line, then one line per entry."""
    lines = ["\nTimeline:"]
    for entry in entries:
        lines.append(
            f"  {_time(entry['at']):%H:%M:%S} {entry['kind']:<11} {entry.get('actor', 'stanch'):<12} "
            f"{plain(entry['text'])}"
        )
    return "\n".join(lines)
