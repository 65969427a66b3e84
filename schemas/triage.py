"""Triage incidents: an alert Stanch cannot act on by itself goes to a human, never to a 4xx or to nowhere.

The intake opens one (workflow type `triage`, id `incident-triage-<key>`) for an alert a route matched but
cannot act on (a target label missing, too long, or invalid for the runbook's target model), an alert no
route matched, and an item of a body whose fields could not be read. The key names the cause — route name
(or `unrouted`) + alertname + the fields at fault — so a storm of alike broken alerts opens one triage
incident and repeats join it. A human hands it to a runbook with the `run_runbook` update.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from schemas.incidents import IncidentInput
from schemas.signatures import SignedDecision

TRIAGE_WORKFLOW = "triage"


class TriageProblem(BaseModel):
    """One reason the alert could not start its runbook, naming the field a human would fix."""

    field: str = Field(description="e.g. labels.agent, or alerts.3.labels for an item that did not parse")
    problem: str = Field(description="what is wrong with it, in words")


class TriageInput(IncidentInput):
    """An incident whose runbook is `triage`: what the alert said and why no runbook took it."""

    route: str | None = Field(None, description="the route the alert matched; None when no route did")
    suggested_runbook: str | None = Field(None, description="the matched route's runbook, if any")
    problems: list[TriageProblem] = Field(default_factory=list)
    # The workflow cannot read the policy file, so the intake says where a hand-over goes: per runbook,
    # the incident id this alert would get on the policy's route for it (the matched route for its own
    # runbook, else the first route that runs that runbook). A runbook left out gets
    # `incident-<runbook>-<fingerprint as an id part>`.
    runbook_incident_ids: dict[str, str] = Field(
        default_factory=dict, description="runbook → incident-<dedupe key> a hand-over to it starts"
    )


class RunRunbook(BaseModel):
    """The `run_runbook` update: a human hands a triage incident to a runbook with the target it lacked."""

    by: str = Field(min_length=1)
    runbook: str = Field(min_length=1)
    target: dict[str, str] = Field(default_factory=dict)
    signed: SignedDecision | None = None


class RunbookStarted(BaseModel):
    """What `run_runbook` answers: the incident the runbook now runs as."""

    workflow_id: str
    runbook: str
