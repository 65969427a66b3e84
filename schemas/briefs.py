"""The calm decision brief and the timeline every incident keeps."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from pydantic import BaseModel, Field

from schemas.signatures import ToSign
from stanch import markup
from stanch.brief_text import brief_text, reading_line


class TimelineEntry(BaseModel):
    at: datetime
    kind: str = Field(description="alert, action, decision, refused, escalation, notification, state, note")
    text: str
    actor: str = "stanch"


class Timeline(BaseModel):
    entries: list[TimelineEntry] = Field(default_factory=list)


class Reading(BaseModel):
    """One thing a runbook read about the system it acts on, as the brief shows it under "Current system
    state": memory against its watermark, webhook lag, a balance, a gold-set score, the deploy in place.

    Values are text the runbook formatted (with their unit), since they come from many systems; a newer
    reading of the same name replaces the older one (`workflows.steps.system_state.observe`).
    """

    name: str
    value: str
    limit: str | None = Field(None, description="the threshold or watermark the value is judged against")
    read_at: datetime | None = None

    def line(self, escape: Callable[[str], str]) -> str:
        """One line for the brief, every part escaped by the sink's own function (platform values can carry
        names an alert chose, e.g. a template or a version): stanch.brief_text's, the CLI's layout too."""
        return reading_line(self.model_dump(mode="json"), escape)


class PostmortemLink(BaseModel):
    """Where a resolved incident's post-incident learning happens and its report is kept."""

    workflow_id: str = Field(description="the post-mortem workflow: query its brief, send it `learning`")
    report: str = Field(description="the stored report's address (its id once stored)")


class Brief(BaseModel):
    incident_id: str
    runbook: str
    severity: str
    service: str
    summary: str
    started_at: datetime
    last_update_at: datetime
    automatic_actions: list[str] = Field(default_factory=list)
    state: str
    recommendation: str = ""
    risk_if_no_action: str = ""
    awaiting: str | None = None
    # What the runbook last read of the systems it acts on (the seed's "metrics snapshot"); `state` above
    # stays the workflow's own state. Empty by default, so briefs from before it decode.
    system_state: list[Reading] = Field(default_factory=list)
    # Customer messages held for review beside the runbook, one line each (empty when none waits).
    pending_reviews: list[str] = Field(default_factory=list)
    postmortem: PostmortemLink | None = None
    # The decisions open now with what a client needs to sign each (issue 13): the question's gate,
    # customer-message reviews, resolve. Empty in briefs from before.
    to_sign: list[ToSign] = Field(default_factory=list)

    def as_markdown(self) -> str:
        """For `workflow.set_current_details` (the Temporal UI renders it as Markdown).

        The headings, bold labels and bullets are Stanch's; every field value is escaped, since the
        summary, service and incident id come from the alert, and the actions and recommendation quote
        its labels: an `<img>`, `**APPROVED**` or `[link](url)` in an alert shows as typed. The fields
        themselves stay raw (the `brief` query returns them as received).
        """
        md = markup.markdown
        actions = "\n".join(f"- {md(a)}" for a in self.automatic_actions) or "- none yet"
        lines = [
            f"## {md(self.severity)} · {md(self.runbook)} · {md(self.service)}",
            f"**Summary:** {md(self.summary)}",
            f"**Time window:** since {self.started_at:%Y-%m-%d %H:%M:%S} UTC "
            f"(last update {self.last_update_at:%H:%M:%S} UTC)",
            f"**State:** `{self.state}`",  # one of the runbook's own states, never alert text
            "**Automatic actions taken:**",
            actions,
            "**Current system state:**",
            "\n".join(f"- {reading.line(md)}" for reading in self.system_state) or "- nothing read yet",
            f"**Recommendation:** {md(self.recommendation) if self.recommendation else 'none'}",
            f"**Risk if no action:** {md(self.risk_if_no_action) if self.risk_if_no_action else 'none stated'}",
        ]
        if self.awaiting:
            lines.append(f"**Waiting for:** {md(self.awaiting)}")
        if self.pending_reviews:
            reviews = "\n".join(f"- {md(review)}" for review in self.pending_reviews)
            lines.append(f"**Customer messages awaiting review:**\n\n{reviews}")
        if self.postmortem:
            link = self.postmortem
            lines.append(f"**Post-mortem:** `{md(link.workflow_id)}`, report at {md(link.report)}")
        return "\n\n".join(lines)

    def as_text(self) -> str:
        """For the CLI: plain text, no markup to render, control characters made visible. The layout is
        stanch.brief_text's, which `stanch brief` over the HTTP API renders from the query's JSON without
        this model (issue 15): one layout, the same bytes on every path."""
        return brief_text(self.model_dump(mode="json"))
