"""Who the war room calls in, how fast it must answer and how often it posts where things stand (seed 001).

Pure: no workflow calls, so it is unit-tested on its own and safe to import anywhere.
"""

from __future__ import annotations

from datetime import timedelta

from schemas.severity import Severity

RESPONSE_TARGET = {
    Severity.P0: "within minutes",
    Severity.P1: "within 1 hour",
    Severity.P2: "within 4 hours",
    Severity.P3: "in the next sprint",
}
STATUS_EVERY = {Severity.P0: timedelta(minutes=15), Severity.P1: timedelta(minutes=30)}
# A day of 15-minute updates. Past it the room is stuck and the updates only grow the history; the brief
# and the escalation chain carry on without them.
MAX_STATUS_UPDATES = 96
ROLES = {
    "devops": "infrastructure and deploys",
    "dev": "code investigation and fixes",
    "qa": "verification and regression tests",
    "architect": "system-level analysis",
}


def roles_for(severity: Severity) -> list[str]:
    """The people who act, in the order they are called: the architect joins on a P0 only."""
    return ["devops", "dev", "qa", *(["architect"] if severity is Severity.P0 else [])]


def status_cadence(severity: Severity) -> timedelta | None:
    """How often stakeholders hear where things stand; None below P1 (P2 is expedited without a cadence)."""
    return STATUS_EVERY.get(severity)
