"""Requests to, and answers from, the documents and reviews system: post-mortems, backlog stories, the
hand-off desk and the cockpit's report shelf. One set, shared by the runbooks, the adapters
(`activities/documents/`) and the sandbox that implements the http contract.

Every post-mortem — the war room's, the security runbook's and the post-incident report the learning
completes — is one `PostmortemRequest`: the runbook fills it (`Postmortem.request()`,
`PostmortemReport.request()`), the adapter stores it.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from schemas.actions import SET_BY_ACT
from schemas.briefs import TimelineEntry
from schemas.handoff import Handoff

# ---- post-mortems -------------------------------------------------------------------------------------


class PostmortemBody(BaseModel):
    """A post-mortem as the document store keeps it (the body of `POST /postmortems`)."""

    incident_id: str
    subject: str
    what_happened: str
    root_cause: str
    impact: str
    remediation: str
    prevention: list[str] = Field(default_factory=list)
    timeline: list[str] = Field(default_factory=list, description="one readable line per entry")
    markdown: str = Field("", description="the whole report, as a person reads it; may be empty")


class PostmortemRequest(PostmortemBody):
    idempotency_key: str = Field("", description=SET_BY_ACT)

    def body(self) -> PostmortemBody:
        return PostmortemBody.model_validate(self.model_dump(exclude={"idempotency_key"}))


def timeline_lines(entries: list[TimelineEntry]) -> list[str]:
    """A timeline as the document store keeps it: one readable line per entry."""
    return [f"{entry.at:%Y-%m-%d %H:%M:%S} [{entry.kind}] {entry.actor}: {entry.text}" for entry in entries]


class DocumentReceipt(BaseModel):
    """Where the store keeps a post-mortem or a report: its id. (The war room's post-mortem receipts,
    recorded before the post-mortems shared this model, also named the incident; nothing read it.)"""

    id: str
    replayed: bool = False


# ---- backlog stories ----------------------------------------------------------------------------------


class StoryBody(BaseModel):
    incident_id: str
    title: str


class StoryRequest(StoryBody):
    idempotency_key: str = Field("", description=SET_BY_ACT)

    def body(self) -> StoryBody:
        return StoryBody(incident_id=self.incident_id, title=self.title)


class StoryReceipt(StoryBody):
    id: str
    replayed: bool = False


# ---- the hand-off desk --------------------------------------------------------------------------------


class HandoffBody(BaseModel):
    """A hand-off as the desk keeps it (the body of `POST /handoffs`)."""

    handoff_id: str
    incident_id: str
    priority: str
    subject: str
    markdown: str
    handoff: dict[str, Any] = Field(default_factory=dict, description="the structured hand-off, as JSON")


class HandoffDocument(BaseModel):
    idempotency_key: str = Field("", description=SET_BY_ACT)
    handoff_id: str
    incident_id: str
    priority: str
    subject: str
    markdown: str
    handoff: Handoff

    def body(self) -> HandoffBody:
        return HandoffBody(
            handoff_id=self.handoff_id,
            incident_id=self.incident_id,
            priority=self.priority,
            subject=self.subject,
            markdown=self.markdown,
            handoff=self.handoff.model_dump(mode="json"),
        )


class HandoffDecision(BaseModel):
    """The body of `POST /handoffs/{handoff_id}/execute`: the option a person chose."""

    option: str
    decided_by: str
    comment: str = ""


class HandoffExecution(HandoffDecision):
    idempotency_key: str = Field("", description=SET_BY_ACT)
    handoff_id: str

    def body(self) -> HandoffDecision:
        return HandoffDecision(option=self.option, decided_by=self.decided_by, comment=self.comment)


class HandoffRecord(BaseModel):
    """The desk's view of one hand-off."""

    handoff_id: str
    status: str = Field(description="open, or executed once a decision was carried out")
    executed_option: str | None = None
    decided_by: str | None = None
    replayed: bool = False


# ---- the report shelf ---------------------------------------------------------------------------------


class ReportBody(BaseModel):
    """A report as the shelf keeps it (the body of `POST /reports`)."""

    report_id: str
    title: str
    markdown: str
    urgent: bool = False
    data: dict[str, Any] = Field(default_factory=dict)


class ReportDocument(ReportBody):
    idempotency_key: str

    def body(self) -> ReportBody:
        return ReportBody.model_validate(self.model_dump(exclude={"idempotency_key"}))
