"""Wire models of the documents humans read after or during an incident: post-mortems, backlog stories, hand-offs and reports."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel


class StoryBody(BaseModel):
    incident_id: str
    title: str


class StoryRecord(StoryBody):
    id: str
    at: str
    replayed: bool = False


class HandoffIn(BaseModel):
    handoff_id: str
    incident_id: str
    priority: str
    subject: str
    markdown: str
    handoff: dict[str, Any] = {}


class HandoffDesk(BaseModel):
    handoff_id: str
    incident_id: str
    priority: str
    subject: str
    markdown: str
    handoff: dict[str, Any] = {}
    status: Literal["open", "executed"] = "open"
    executed_option: str | None = None
    decided_by: str | None = None
    comment: str = ""
    log: list[str] = []


class HandoffExecute(BaseModel):
    option: str
    decided_by: str
    comment: str = ""


class HandoffReceipt(BaseModel):
    handoff_id: str
    status: str
    executed_option: str | None = None
    decided_by: str | None = None
    replayed: bool = False


class PostMortemIn(BaseModel):
    incident_id: str
    subject: str
    what_happened: str
    root_cause: str
    impact: str
    remediation: str
    prevention: list[str] = []
    timeline: list[str] = []
    markdown: str = ""  # the whole report, as a person reads it (post-incident reports)


class PostMortem(PostMortemIn):
    postmortem_id: str
    at: str


class DocumentReceipt(BaseModel):
    id: str
    replayed: bool = False


class ReportIn(BaseModel):
    report_id: str
    title: str
    markdown: str
    urgent: bool = False
    data: dict[str, Any] = {}


class Report(ReportIn):
    at: str
