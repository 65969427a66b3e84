"""Handing a decision to a human: what triggered it, what the human needs to decide, and what came of it.

`Handoff` is the clean model other runbooks fill when they start `escalation_to_human` as a child
(`workflows/steps/handoff.py`); an alert routed to the runbook is turned into one by `handoff_from_alert`.
"""

from __future__ import annotations

import re
from enum import StrEnum

from pydantic import BaseModel, Field, model_validator

from schemas.alerts import Alert
from schemas.incidents import IncidentInput, IncidentResult
from schemas.severity import Severity
from stanch import markup

# Below this gold-set or review score an agent's work goes to a human instead of a customer.
QUALITY_THRESHOLD = 0.70

OPTION_NAME = r"[a-z0-9][a-z0-9-]*"


class Trigger(StrEnum):
    """Why a human is needed. Each is one of the cases the fleet's procedures name."""

    low_quality = "low_quality"  # quality score under QUALITY_THRESHOLD
    out_of_scope = "out_of_scope"  # a decision outside what the agent may decide
    over_threshold = "over_threshold"  # cost or risk above the agreed ceiling
    persistent_doubt = "persistent_doubt"  # the agent or runbook keeps failing to settle it
    explicit_request = "explicit_request"  # someone asked for a human


class HandoffOption(BaseModel):
    """One course of action the human may pick; `name` is what they type."""

    name: str = Field(pattern=f"^{OPTION_NAME}$", description="kebab-case, e.g. human-takeover")
    description: str
    destructive: bool = False


class Handoff(BaseModel):
    """The handoff document: everything a person needs to decide without reading raw logs."""

    trigger: Trigger
    subject: str = Field(description="what it is about, e.g. the agent id")
    context: str = Field(description="the situation, in a few sentences")
    tried: list[str] = Field(default_factory=list, description="what was already attempted")
    options: list[HandoffOption] = Field(min_length=1)
    recommendation: str | None = Field(None, description="name of the recommended option, if any")
    priority: Severity = Severity.P2
    requested_by: str = "stanch"
    quality_score: float | None = Field(None, ge=0, le=1)

    @model_validator(mode="after")
    def _consistent(self) -> Handoff:
        names = [option.name for option in self.options]
        if len(set(names)) != len(names):
            raise ValueError(f"option names must be distinct: {names}")
        if self.recommendation is not None and self.recommendation not in names:
            raise ValueError(f"recommendation {self.recommendation!r} is not one of the options {names}")
        return self

    def option(self, name: str) -> HandoffOption:
        return next(option for option in self.options if option.name == name)

    @property
    def proposed(self) -> HandoffOption:
        """What the approval gate asks for: the recommendation, else the first option."""
        return self.option(self.recommendation) if self.recommendation else self.options[0]

    def alternative_in(self, comment: str) -> HandoffOption | None:
        """The first other option a rejection's comment names as a whole word, or None."""
        words = set(re.findall(OPTION_NAME, comment.lower()))
        return next((o for o in self.options if o.name != self.proposed.name and o.name in words), None)

    def as_markdown(self) -> str:
        # Headings, labels and option names are Stanch's; subject, context, steps and descriptions come
        # from the alert or the agent and are escaped (stanch.markup), so they render as typed.
        md = markup.markdown
        tried = "\n".join(f"- {md(step)}" for step in self.tried) or "- nothing yet"
        options = "\n".join(
            f"- `{o.name}`{' (destructive)' if o.destructive else ''}: {md(o.description)}"
            for o in self.options
        )
        score = f" (quality score {self.quality_score:.0%})" if self.quality_score is not None else ""
        return "\n\n".join(
            [
                f"# Handoff · {self.priority.value} · {md(self.subject)}",
                f"**Why a human:** {self.trigger.value}{score}, raised by {md(self.requested_by)}",
                f"**Context:** {md(self.context)}",
                "**Already tried:**",
                tried,
                "**Options:**",
                options,
                f"**Recommendation:** `{self.recommendation}`"
                if self.recommendation
                else "**Recommendation:** none",
            ]
        )


class HandoffInput(IncidentInput):
    """Input of `escalation_to_human`. An alert-routed start carries no `handoff`: it is built from the alert."""

    handoff: Handoff | None = None


class HandoffResult(IncidentResult):
    """What the parent runbook learns: which option a human chose and whether it was carried out."""

    chosen_option: str | None = None
    decided_by: str | None = None
    carried_out: bool = False


# ---- an alert that asks for a human ----------------------------------------------------------------

# Options offered when an alert asks for a human about an agent without listing its own.
DEFAULT_AGENT_OPTIONS = [
    HandoffOption(name="human-takeover", description="a person finishes the agent's current task"),
    HandoffOption(name="let-agent-continue", description="the agent carries on as it is"),
    HandoffOption(name="pause-agent", description="stop the agent until someone reviews it"),
]


def handoff_from_alert(incident: IncidentInput) -> Handoff:
    """Labels `trigger`, `priority`, `options` (comma-separated), `recommendation`, `quality_score`
    and annotations `description`, `tried` (semicolon-separated) fill the handoff; all are optional."""
    alert: Alert = incident.alert
    target = incident.target
    names = [n.strip() for n in target.get("options", "").split(",") if n.strip()]
    options = [
        next((o for o in DEFAULT_AGENT_OPTIONS if o.name == n), HandoffOption(name=n, description=n))
        for n in names
    ] or list(DEFAULT_AGENT_OPTIONS)
    score = float(target["quality_score"]) if target.get("quality_score") else None
    trigger = Trigger(target.get("trigger", "")) if target.get("trigger") in set(Trigger) else None
    if trigger is None:
        trigger = (
            Trigger.low_quality
            if score is not None and score < QUALITY_THRESHOLD
            else Trigger.explicit_request
        )
    recommendation = target.get("recommendation") or options[0].name
    return Handoff(
        trigger=trigger,
        subject=target.get("agent_id", incident.service),
        context=alert.annotations.get("description") or incident.summary,
        tried=[t.strip() for t in alert.annotations.get("tried", "").split(";") if t.strip()],
        options=options,
        recommendation=recommendation if recommendation in {o.name for o in options} else None,
        priority=Severity(target["priority"])
        if target.get("priority") in set(Severity)
        else incident.severity,
        requested_by=alert.source,
        quality_score=score,
    )
