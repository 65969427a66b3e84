"""The war room's shapes: the hotfix cycle's own input and output, and what it files after the incident.

What the deploy system answers is in `schemas/deploys.py`; what the document store takes and answers (the
post-mortem, the backlog stories) in `schemas/documents.py`.

`HotfixInput` and `HotfixResult` extend the incident models rather than replace them, so the hotfix cycle
keeps every human message of an incident (approve, escalate, brief, timeline …) and a route could start it
on its own; the war room starts it as a child with the extra fields filled in.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from schemas.briefs import TimelineEntry
from schemas.deploys import Verdict
from schemas.documents import PostmortemRequest, timeline_lines
from schemas.incidents import IncidentInput, IncidentResult

# ---- the hotfix cycle ---------------------------------------------------------------------------------


class EscalationTrigger(StrEnum):
    max_iterations_reached = "max_iterations_reached"
    verdict_blocked = "verdict_blocked"
    fix_failure = "fix_failure"
    manual_escalate = "manual_escalate"


class HotfixInput(IncidentInput):
    issue: str = Field("", description="short name of the problem; the decision log is named after it")
    max_iterations: int = Field(5, ge=1, description="fix → QA rounds before the loop escalates")
    fix_attempts: int = Field(3, ge=1, description="builds tried per round before the fix is a failure")
    parent_workflow_id: str | None = Field(None, description="the war room that started this cycle")


class HotfixResult(IncidentResult):
    outcome: str = Field(description="fixed or escalated")
    iterations: int = 0
    build_id: str | None = None
    deployed_version: str | None = None
    escalation_trigger: EscalationTrigger | None = None
    escalated_to: str | None = None
    decision_log: list[TimelineEntry] = Field(default_factory=list)


class StopRequest(BaseModel):
    """Payload of the `stop` signal: pause the loop, keep what it has done."""

    by: str
    reason: str = ""


class ResumeRequest(BaseModel):
    """Payload of the `resume` signal: carry on from the saved point."""

    by: str
    note: str = ""


class SavedLoop(BaseModel):
    """Where a stopped loop stands; the `saved_loop` query returns it."""

    iteration: int
    phase: str = Field(description="the step the loop resumes with: build or qa")
    build_id: str | None = None
    last_verdict: Verdict | None = None
    stopped: bool
    stopped_by: str | None = None


# ---- after the incident -------------------------------------------------------------------------------


class Postmortem(BaseModel):
    incident_id: str
    service: str
    severity: str
    title: str
    timeline: list[TimelineEntry]
    root_cause: str
    impact: str
    response: str
    prevention: list[str]
    written_at: datetime

    def request(self) -> PostmortemRequest:
        """The post-mortem as the document store keeps it."""
        return PostmortemRequest(
            incident_id=self.incident_id,
            subject=self.title,
            what_happened=f"{self.severity} incident on {self.service}",
            root_cause=self.root_cause,
            impact=self.impact,
            remediation=self.response,
            prevention=self.prevention,
            timeline=timeline_lines(self.timeline),
        )


class ReportFiled(BaseModel):
    """Payload of the war room's `report_filed` signal: the incident report was shared."""

    by: str
    url: str = ""
    stories: list[str] = Field(
        default_factory=list, description="preventive stories to file; empty: the post-mortem's own list"
    )
