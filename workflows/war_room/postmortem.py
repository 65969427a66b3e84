"""The war room's post-mortem draft (seed 001): timeline, root cause, impact, response and prevention,
from what the room itself saw and did. A person's learning completes it (workflows/postmortem.py).

Pure: built from the room's timeline and findings, no workflow calls.
"""

from __future__ import annotations

from datetime import datetime

from schemas.approvals import Resolution
from schemas.briefs import TimelineEntry
from schemas.hotfix import Postmortem
from schemas.incidents import IncidentInput
from schemas.learning import PostmortemDraft

CAUSE_BY_CONTAINMENT = {
    "rollback": "the latest deploy: rolling it back contained the incident",
    "feature-flag": "the feature behind the flag: switching it off contained the incident",
    "hotfix": "a code defect, fixed by the hotfix cycle",
}


def build_postmortem(
    incident: IncidentInput,
    *,
    service: str,
    timeline: list[TimelineEntry],
    findings: list[str],
    contained_by: str | None,
    resolution: Resolution | None,
    opened_at: datetime,
    resolved_at: datetime,
    has_flag: bool,
    could_roll_back: bool,
) -> Postmortem:
    minutes = max(0, int((resolved_at - opened_at).total_seconds() // 60))
    actions = [entry for entry in timeline if entry.kind in ("action", "decision")]
    first_action = next((entry.at for entry in actions if entry.kind == "action"), None)
    cause = CAUSE_BY_CONTAINMENT.get(
        contained_by or "", "not established by the runbook; the team completes it"
    )
    prevention = [f"Add a regression test for: {incident.summary}"]
    if not has_flag:
        prevention.append(f"Put {service}'s risky features behind feature flags")
    if not could_roll_back:
        prevention.append(f"Keep a previous stable deploy of {service} ready to roll back to")
    prevention.append(f"Update alerts and dashboards for {service} to catch this earlier")
    return Postmortem(
        incident_id=incident.incident_id,
        service=service,
        severity=incident.severity.value,
        title=f"{incident.severity.value} {service}: {incident.summary}",
        timeline=timeline,
        root_cause=f"Most likely {cause}. Triage found: {'; '.join(findings)}.",
        impact=f"{service} affected for {minutes} min from detection to resolution "
        f"({incident.severity.value}: {incident.summary}).",
        response=(
            f"{len(actions)} actions and decisions; first action "
            f"{f'at {first_action:%H:%M:%S} UTC' if first_action else 'none'}; "
            f"contained by {contained_by or 'nothing automatic'}; resolved by "
            f"{resolution.by if resolution else 'unknown'}"
            f"{f' ({resolution.note})' if resolution and resolution.note else ''}."
        ),
        prevention=prevention,
        written_at=resolved_at,
    )


def draft_of(postmortem: Postmortem) -> PostmortemDraft:
    """What the post-mortem workflow starts from (and falls back on without a learning)."""
    return PostmortemDraft(
        root_cause=postmortem.root_cause,
        impact=postmortem.impact,
        response=postmortem.response,
        prevention=postmortem.prevention,
    )
