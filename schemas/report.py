"""The daily cockpit report: what it is asked for, what it reads of the audit log, what it flags.

What it reads of the agent platform (usage) is in `schemas/agents.py`; what it publishes (a report on the
shelf) in `schemas/documents.py`."""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel, Field

from schemas.agents import AgentUsage


class AnomalyThresholds(BaseModel):
    """When a metric becomes a signal. Defaults are deliberately plain; tune them per fleet."""

    token_spike_factor: float = Field(2.0, gt=1, description="tokens today above this x the daily average")
    token_spike_urgent_factor: float = Field(3.0, gt=1, description="…and above this x it is urgent")
    min_tokens: int = Field(10_000, ge=0, description="spikes on fewer tokens than this are noise")
    failure_rate: float = Field(0.20, gt=0, le=1, description="failed / (done + failed) above this")
    failure_rate_urgent: float = Field(0.50, gt=0, le=1)
    min_tasks: int = Field(5, ge=1, description="error rates on fewer tasks than this are noise")
    escalations: int = Field(3, ge=0, description="more escalations and handoffs than this in a day")


class ReportRequest(BaseModel):
    """Input of `daily_cockpit_report`; the Schedule starts it with the defaults."""

    window: timedelta = timedelta(hours=24)
    window_end: datetime | None = Field(None, description="None: the moment the report runs")
    incident_prefix: str = Field("incident-", description="which workflow ids in the audit log count")
    agent_ids: list[str] = Field(default_factory=list, description="empty: every agent the platform knows")
    thresholds: AnomalyThresholds = Field(default_factory=AnomalyThresholds)


class AuditWindow(BaseModel):
    start: datetime
    end: datetime
    incident_prefix: str = "incident-"


class AuditSummary(BaseModel):
    """Counts read from the audit log over one window (see `ReportActivities.audit_summary` for each rule)."""

    incidents: int = 0
    closed: int = 0
    escalations: int = 0
    handoffs: int = 0
    security_incidents: int = 0
    failed_actions: int = 0

    @property
    def still_open(self) -> int:
        return max(self.incidents - self.closed, 0)


class Level(StrEnum):
    watch = "watch"
    urgent = "urgent"


class Anomaly(BaseModel):
    kind: str = Field(description="cost, errors, escalations, security, failed_actions")
    subject: str
    level: Level
    detail: str
    action: str = Field(description="the recommended next step")


class CockpitReport(BaseModel):
    report_id: str
    window_start: datetime
    window_end: datetime
    agents: list[AgentUsage]
    audit: AuditSummary
    anomalies: list[Anomaly] = Field(default_factory=list)
    highlight: str = ""
    urgent: bool = False
    markdown: str = ""
    published: bool = False
    notified: bool = False
