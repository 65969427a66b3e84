"""The calm decision brief and the timeline every incident keeps."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class TimelineEntry(BaseModel):
    at: datetime
    kind: str = Field(description="alert, action, decision, refused, escalation, notification, state, note")
    text: str
    actor: str = "stanch"


class Timeline(BaseModel):
    entries: list[TimelineEntry] = Field(default_factory=list)


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

    def as_markdown(self) -> str:
        actions = "\n".join(f"- {a}" for a in self.automatic_actions) or "- none yet"
        lines = [
            f"## {self.severity} · {self.runbook} · {self.service}",
            f"**Summary:** {self.summary}",
            f"**Time window:** since {self.started_at:%Y-%m-%d %H:%M:%S} UTC "
            f"(last update {self.last_update_at:%H:%M:%S} UTC)",
            f"**State:** `{self.state}`",
            "**Automatic actions taken:**",
            actions,
            f"**Recommendation:** {self.recommendation or 'none'}",
            f"**Risk if no action:** {self.risk_if_no_action or 'none stated'}",
        ]
        if self.awaiting:
            lines.append(f"**Waiting for:** {self.awaiting}")
        return "\n\n".join(lines)
