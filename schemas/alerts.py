"""Alerts as every monitoring source reduces to: one alert, one status, one fingerprint."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field

# An incident a person opens by hand (the console's New incident form) carries an alert from this source,
# with the person in this label: workers/intake/routing.py `route_by_hand` builds it, and the incident audits
# who opened it (workflows/steps/incident.py).
OPENED_BY_HAND = "console"
OPENED_BY_LABEL = "opened_by"


class AlertStatus(StrEnum):
    firing = "firing"
    resolved = "resolved"


class Alert(BaseModel):
    source: str = Field(description="alertmanager, grafana or generic")
    name: str
    status: AlertStatus = AlertStatus.firing
    fingerprint: str
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    group_key: str | None = None
    generator_url: str | None = None

    @property
    def summary(self) -> str:
        return self.annotations.get("summary") or self.annotations.get("description") or self.name


class AlertBatch(BaseModel):
    """Repeats of one incident's alert that reached the intake together, delivered as one `alerts` signal:
    a storm of repeats costs the incident one workflow task per batch instead of one per POST."""

    alerts: list[Alert] = Field(min_length=1)
