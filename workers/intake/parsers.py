"""Pure functions from a vendor's webhook body to Stanch alerts. Tested on recorded payloads."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from schemas.alerts import Alert, AlertStatus

# Alertmanager and Grafana send this for "not ended yet".
ZERO_TIME_YEAR = 1


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


class AlertmanagerAlert(_Lenient):
    status: AlertStatus
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: datetime
    endsAt: datetime | None = None
    generatorURL: str = ""
    fingerprint: str = Field(min_length=1)


class AlertmanagerWebhook(_Lenient):
    """Alertmanager webhook version 4; one body may mix firing and resolved alerts.

    Each alert carries its own status: the body's `status` is only "firing if any alert still fires".
    """

    # Another version may mean another shape; refusing it loudly beats misreading it quietly.
    version: Literal["4"] = "4"
    status: AlertStatus
    groupKey: str = ""
    alerts: list[AlertmanagerAlert]


class GrafanaAlert(AlertmanagerAlert):
    # Grafana before 8.x sent no fingerprint; one is derived from the labels instead.
    fingerprint: str = ""
    valueString: str = ""
    dashboardURL: str = ""
    panelURL: str = ""


class GrafanaWebhook(_Lenient):
    """Grafana unified alerting webhook: Alertmanager's shape with Grafana's extra fields.

    Shape from Grafana's documentation ("Configure the webhook notifier for Alerting", payload version
    "1"): orgId, title, state and message at the top; values, valueString, silenceURL, dashboardURL and
    panelURL per alert. Fields Stanch does not use are ignored, so Grafana can add more.
    """

    status: AlertStatus
    groupKey: str = ""
    title: str = ""
    alerts: list[GrafanaAlert]


class GenericAlert(BaseModel):
    """The documented plain-JSON format for anything that is not Alertmanager or Grafana."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    status: AlertStatus = AlertStatus.firing
    fingerprint: str | None = Field(None, min_length=1)
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    summary: str | None = None
    starts_at: datetime | None = None
    ends_at: datetime | None = None


class GenericWebhook(BaseModel):
    model_config = ConfigDict(extra="forbid")

    alerts: list[GenericAlert] = Field(min_length=1)


def _ended(value: datetime | None) -> datetime | None:
    """Go's zero time (0001-01-01T00:00:00Z) means "not set", e.g. the endsAt of a firing alert."""
    return None if value is None or value.year == ZERO_TIME_YEAR else value


def labels_fingerprint(name: str, labels: dict[str, str]) -> str:
    canonical = name + "\x00" + "\x00".join(f"{key}={labels[key]}" for key in sorted(labels))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def parse_alertmanager(body: Any) -> list[Alert]:
    webhook = TypeAdapter(AlertmanagerWebhook).validate_python(body)
    return [
        Alert(
            source="alertmanager",
            name=alert.labels.get("alertname", "unnamed"),
            status=alert.status,
            fingerprint=alert.fingerprint,
            labels=alert.labels,
            annotations=alert.annotations,
            starts_at=_ended(alert.startsAt),
            ends_at=_ended(alert.endsAt),
            group_key=webhook.groupKey or None,
            generator_url=alert.generatorURL or None,
        )
        for alert in webhook.alerts
    ]


def parse_grafana(body: Any) -> list[Alert]:
    webhook = TypeAdapter(GrafanaWebhook).validate_python(body)
    alerts = []
    for alert in webhook.alerts:
        name = alert.labels.get("alertname", webhook.title or "unnamed")
        annotations = dict(alert.annotations)
        if alert.valueString:
            annotations.setdefault("values", alert.valueString)
        alerts.append(
            Alert(
                source="grafana",
                name=name,
                status=alert.status,
                fingerprint=alert.fingerprint or labels_fingerprint(name, alert.labels),
                labels=alert.labels,
                annotations=annotations,
                starts_at=_ended(alert.startsAt),
                ends_at=_ended(alert.endsAt),
                group_key=webhook.groupKey or None,
                generator_url=alert.generatorURL or alert.panelURL or None,
            )
        )
    return alerts


def parse_generic(body: Any) -> list[Alert]:
    """Either one alert object or {"alerts": [...]}."""
    webhook = (
        TypeAdapter(GenericWebhook).validate_python(body)
        if isinstance(body, dict) and "alerts" in body
        else GenericWebhook(alerts=[TypeAdapter(GenericAlert).validate_python(body)])
    )
    alerts = []
    for alert in webhook.alerts:
        annotations = dict(alert.annotations)
        if alert.summary:
            annotations.setdefault("summary", alert.summary)
        labels = {"alertname": alert.name, **alert.labels}
        alerts.append(
            Alert(
                source="generic",
                name=alert.name,
                status=alert.status,
                fingerprint=alert.fingerprint or labels_fingerprint(alert.name, labels),
                labels=labels,
                annotations=annotations,
                starts_at=alert.starts_at,
                ends_at=alert.ends_at,
            )
        )
    return alerts


PARSERS = {
    "alertmanager": parse_alertmanager,
    "grafana": parse_grafana,
    "generic": parse_generic,
}
