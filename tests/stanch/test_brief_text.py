"""The brief's plain text from its JSON form (stanch/brief_text.py): the one layout `stanch brief` prints on
every path — from the HTTP API's JSON without pydantic, and through `Brief.as_text` from a model."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from schemas.briefs import Brief, Timeline
from stanch.brief_text import brief_text, timeline_text

AT = datetime(2026, 12, 4, 1, 2, 3, 456789, tzinfo=UTC)
# Only the fields every brief has carried: a brief from a worker before the others existed.
OLDEST: dict[str, Any] = {
    "incident_id": "incident-a",
    "runbook": "rollback",
    "severity": "P1",
    "service": "checkout",
    "summary": "error rate",
    "started_at": "2026-12-04T01:02:03Z",
    "last_update_at": "2026-12-04T01:05:00.5Z",
    "state": "contained",
}


def test_a_brief_missing_the_later_fields_renders_with_the_models_defaults() -> None:
    assert brief_text(OLDEST) == Brief.model_validate(OLDEST).as_text()
    assert brief_text(OLDEST) == (
        "P1 · rollback · checkout  (incident-a)\n"
        "Summary: error rate\n"
        "Time window: since 2026-12-04 01:02:03 UTC (last update 01:05:00 UTC)\n"
        "State: contained\n"
        "Automatic actions taken:\n"
        "  - none yet\n"
        "Current system state:\n"
        "  - nothing read yet\n"
        "Recommendation: none\n"
        "Risk if no action: none stated"
    )


def test_the_query_json_of_a_full_brief_prints_every_part_with_controls_made_visible() -> None:
    brief = Brief.model_validate(
        OLDEST
        | {
            "started_at": AT,
            "automatic_actions": ["paused agent a1", "bell \x07"],
            "recommendation": "rollback",
            "risk_if_no_action": "more errors",
            "awaiting": "approval by oncall",
            "system_state": [
                {"name": "memory", "value": "3.4 GB", "limit": "3 GB", "read_at": AT},
                {"name": "deploy", "value": "v2"},
            ],
            "pending_reviews": ["'Assistant paused' to acme"],
            "postmortem": {"workflow_id": "postmortem-incident-a", "report": "pm-1"},
        }
    )
    as_queried = json.loads(brief.model_dump_json())  # what the HTTP API's answer holds
    assert (
        brief_text(as_queried)
        == brief.as_text()
        == (
            "P1 · rollback · checkout  (incident-a)\n"
            "Summary: error rate\n"
            "Time window: since 2026-12-04 01:02:03 UTC (last update 01:05:00 UTC)\n"
            "State: contained\n"
            "Automatic actions taken:\n"
            "  - paused agent a1\n"
            "  - bell \\x07\n"
            "Current system state:\n"
            "  - memory: 3.4 GB (limit: 3 GB) · read 01:02:03 UTC\n"
            "  - deploy: v2\n"
            "Recommendation: rollback\n"
            "Risk if no action: more errors\n"
            "Waiting for: approval by oncall\n"
            "Customer messages awaiting review:\n"
            "  - 'Assistant paused' to acme\n"
            "Post-mortem: postmortem-incident-a, report at pm-1"
        )
    )


def test_the_timeline_prints_one_aligned_line_per_entry_and_defaults_the_actor() -> None:
    timeline = Timeline.model_validate(
        {
            "entries": [
                {"at": AT, "kind": "alert", "text": "fired \x1b[2J"},
                {"at": AT, "kind": "action", "text": "paused", "actor": "alice"},
            ]
        }
    )
    as_queried = json.loads(timeline.model_dump_json())["entries"]
    del as_queried[0]["actor"]  # an entry written before `actor` existed
    assert timeline_text(as_queried) == (
        "\nTimeline:\n"
        "  01:02:03 alert       stanch       fired \\x1b[2J\n"
        "  01:02:03 action      alice        paused"
    )
