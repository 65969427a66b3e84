"""The post-incident learning (seed 003) and the post-mortem workflow that asks for it.

When an incident closes `resolved` at P0 or P1 (a war room at any severity it assembled for), a workflow
`postmortem-<incident id>` asks the people who handled it for the learning — root cause, impact,
prevention, alert changes, automation — reminds at 24 h, files the preventive stories by 48 h (seed 001)
and stores a post-incident report built from the incident's timeline and the learning.

`Learning` is what a person sends (signal or update `learning`, `stanch learning`): every field has a
default and unknown keys are kept, so the workflow sees each payload whole and `problems()` can name the
field that is wrong — a payload that failed to decode would be dropped (signal) or refused with a
decoder's message (update), and nobody would learn what to fix.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from schemas.briefs import Brief, PostmortemLink, TimelineEntry
from schemas.documents import PostmortemRequest, timeline_lines
from schemas.incidents import IncidentInput, IncidentResult
from stanch import markup

POSTMORTEM_WORKFLOW = "postmortem"
LEARNING = "learning"  # the signal's and the update's name
LEARNING_DUE = timedelta(hours=24)  # seed 001: the incident report is shared within 24 hours ...
STORIES_DUE = timedelta(hours=48)  # ... and the preventive stories are in the backlog within 48 hours

MAX_TEXT_CHARS = 10_000
MAX_ITEM_CHARS = 300  # each list item may become a backlog story's title
MAX_ITEMS = 20
LIST_FIELDS = ("prevention", "alert_changes", "automation")


def postmortem_workflow_id(incident_id: str) -> str:
    return f"{POSTMORTEM_WORKFLOW}-{incident_id}"


def report_address(incident_id: str) -> str:
    """Where the report is stored: the platform's post-mortems, where every runbook's post-mortem goes."""
    return f"/postmortems?incident_id={incident_id}"


class Learning(BaseModel):
    """Payload of `learning`: what the people who handled the incident learned from it."""

    model_config = ConfigDict(extra="allow")

    by: str = Field("", description="who writes this learning")
    root_cause: str = Field("", description="what failed and why")
    impact: str = Field("", description="who was affected, how long, what it cost")
    prevention: list[str] = Field(default_factory=list, description="steps that stop it coming back")
    alert_changes: list[str] = Field(default_factory=list, description="alerts to add or tune")
    automation: list[str] = Field(default_factory=list, description="what Stanch could do by itself")

    @field_validator(*LIST_FIELDS, mode="before")
    @classmethod
    def _one_item_as_a_list(cls, value: Any) -> Any:
        # Typed by hand in the Temporal UI, a single step is often sent as a string.
        return [value] if isinstance(value, str) else value

    def problems(self) -> list[str]:
        """What is wrong with this learning, each naming its field; empty when it can be taken."""
        found = [
            f"{key}: unknown field (known: {', '.join(type(self).model_fields)})"
            for key in (self.model_extra or {})
        ]
        for name, what in (
            ("by", "who writes this learning"),
            ("root_cause", "what failed and why"),
            ("impact", "who was affected and for how long"),
        ):
            value: str = getattr(self, name)
            if not value.strip():
                found.append(f"{name}: empty; say {what}")
            elif len(value) > MAX_TEXT_CHARS:
                found.append(f"{name}: {len(value)} characters, at most {MAX_TEXT_CHARS}")
        if not self.prevention:
            found.append("prevention: at least one step that stops this coming back")
        for name in LIST_FIELDS:
            items: list[str] = getattr(self, name)
            if len(items) > MAX_ITEMS:
                found.append(f"{name}: {len(items)} items, at most {MAX_ITEMS}")
            for index, item in enumerate(items):
                if not item.strip():
                    found.append(f"{name}[{index}]: empty")
                elif len(item) > MAX_ITEM_CHARS:
                    found.append(f"{name}[{index}]: {len(item)} characters, at most {MAX_ITEM_CHARS}")
        return found

    def stories(self) -> list[str]:
        """The backlog stories this learning asks for: every step, alert change and automation."""
        return [
            *self.prevention,
            *(f"Alerting: {item}" for item in self.alert_changes),
            *(f"Automation: {item}" for item in self.automation),
        ]


class PostmortemDraft(BaseModel):
    """What the runbook itself can say before anyone writes the learning (the war room's post-mortem, or
    a plain account from the timeline); the report falls back on it for what the learning does not say."""

    root_cause: str
    impact: str
    response: str
    prevention: list[str] = Field(default_factory=list)


class PostmortemInput(IncidentInput):
    """Input of `postmortem-<incident id>`: the closed incident's brief and timeline travel with it, since
    a closed workflow can no longer be asked for them cheaply."""

    of_incident: str = Field(description="the incident this post-mortem learns from")
    incident_runbook: str
    incident_run_id: str
    incident_brief: Brief
    incident_timeline: list[TimelineEntry] = Field(default_factory=list)
    resolved_by: str | None = None
    resolution_note: str = ""
    resolved_at: datetime
    draft: PostmortemDraft
    learning_due: timedelta = LEARNING_DUE
    stories_due: timedelta = STORIES_DUE


class OpenPostmortem(BaseModel):
    """Request of the `postmortem_open` activity."""

    postmortem: PostmortemInput


class PostmortemOpened(BaseModel):
    workflow_id: str
    run_id: str
    replayed: bool = Field(False, description="already started by an earlier attempt of this activity")


class LearningAnswer(BaseModel):
    """What the `learning` update answers once the report is stored and the stories are filed."""

    workflow_id: str
    by: str
    report_id: str | None = Field(None, description="None: the report could not be stored (on-call paged)")
    stories: list[str] = Field(default_factory=list, description="the preventive stories filed")


class PostmortemReport(BaseModel):
    """The post-incident report: the incident's timeline and the learning (or, without one, the draft)."""

    incident_id: str
    runbook: str
    severity: str
    service: str
    summary: str
    opened_at: datetime
    resolved_at: datetime
    resolved_by: str | None = None
    resolution_note: str = ""
    automatic_actions: list[str] = Field(default_factory=list)
    timeline: list[TimelineEntry] = Field(default_factory=list)
    learning: Learning | None = None
    draft: PostmortemDraft
    stories: list[str] = Field(default_factory=list)
    written_at: datetime

    @property
    def title(self) -> str:
        return f"{self.severity} {self.service}: {self.summary}"

    @property
    def root_cause(self) -> str:
        return self.learning.root_cause if self.learning else self.draft.root_cause

    @property
    def impact(self) -> str:
        return self.learning.impact if self.learning else self.draft.impact

    def as_markdown(self) -> str:
        """The report as a person reads it. Headings and labels are Stanch's; every value is escaped: the
        summary and service come from the alert, the learning from whoever sent it."""
        md = markup.markdown
        minutes = max(0, int((self.resolved_at - self.opened_at).total_seconds() // 60))
        learned = (
            f"by {md(self.learning.by)}"
            if self.learning
            else "none was sent within 48 hours; the runbook's draft"
        )
        lines = [
            f"# Post-incident report: {md(self.title)}",
            f"**Incident:** `{md(self.incident_id)}` ({md(self.runbook)}), {md(self.severity)}",
            f"**Open:** {self.opened_at:%Y-%m-%d %H:%M:%S} UTC to {self.resolved_at:%Y-%m-%d %H:%M:%S} UTC "
            f"({minutes} min); resolved by {md(self.resolved_by or 'unknown')}"
            + (f" ({md(self.resolution_note)})" if self.resolution_note else ""),
            f"**Learning:** {learned}",
            "## Root cause",
            md(self.root_cause),
            "## Impact",
            md(self.impact),
            "## Response",
            md(self.draft.response),
            "Automatic actions:\n" + ("\n".join(f"- {md(a)}" for a in self.automatic_actions) or "- none"),
            "## Prevention (filed as backlog stories)",
            "\n".join(f"- {md(story)}" for story in self.stories) or "- none",
        ]
        if self.learning and self.learning.alert_changes:
            lines += ["## Alert changes", "\n".join(f"- {md(i)}" for i in self.learning.alert_changes)]
        if self.learning and self.learning.automation:
            lines += ["## Automation", "\n".join(f"- {md(i)}" for i in self.learning.automation)]
        if self.learning:
            suggested = "\n".join(f"- {md(step)}" for step in self.draft.prevention) or "- nothing"
            lines += ["## What the runbook saw", md(self.draft.root_cause), "It suggested:\n" + suggested]
        lines += [
            "## Timeline",
            "\n".join(
                f"- {entry.at:%Y-%m-%d %H:%M:%S} · {md(entry.kind)} · {md(entry.actor)}: {md(entry.text)}"
                for entry in self.timeline
            )
            or "- nothing recorded",
            f"_Written {self.written_at:%Y-%m-%d %H:%M:%S} UTC by Stanch._",
        ]
        return "\n\n".join(lines)

    def request(self) -> PostmortemRequest:
        """The report as the document store keeps it, beside every runbook's post-mortems: the timeline
        as readable lines (as the war room's post-mortems always were) and the whole report as Markdown."""
        return PostmortemRequest(
            incident_id=self.incident_id,
            subject=self.title,
            what_happened=f"{self.severity} incident on {self.service} ({self.runbook})",
            root_cause=self.root_cause,
            impact=self.impact,
            remediation=self.draft.response,
            prevention=self.stories,
            timeline=timeline_lines(self.timeline),
            markdown=self.as_markdown(),
        )


class PostmortemResult(IncidentResult):
    of_incident: str
    learned_by: str | None = None
    report: PostmortemLink | None = None
    stories: list[str] = Field(default_factory=list)
