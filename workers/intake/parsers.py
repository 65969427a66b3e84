"""Pure functions from a vendor's webhook body to Stanch alerts. Tested on recorded payloads."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

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


def _alertmanager_alert(alert: AlertmanagerAlert, group_key: str | None) -> Alert:
    return Alert(
        source="alertmanager",
        name=alert.labels.get("alertname", "unnamed"),
        status=alert.status,
        fingerprint=alert.fingerprint,
        labels=alert.labels,
        annotations=alert.annotations,
        starts_at=_ended(alert.startsAt),
        ends_at=_ended(alert.endsAt),
        group_key=group_key or None,
        generator_url=alert.generatorURL or None,
    )


def _grafana_alert(alert: GrafanaAlert, group_key: str | None, title: str) -> Alert:
    name = alert.labels.get("alertname", title or "unnamed")
    annotations = dict(alert.annotations)
    if alert.valueString:
        annotations.setdefault("values", alert.valueString)
    return Alert(
        source="grafana",
        name=name,
        status=alert.status,
        fingerprint=alert.fingerprint or labels_fingerprint(name, alert.labels),
        labels=alert.labels,
        annotations=annotations,
        starts_at=_ended(alert.startsAt),
        ends_at=_ended(alert.endsAt),
        group_key=group_key or None,
        generator_url=alert.generatorURL or alert.panelURL or None,
    )


def _generic_alert(alert: GenericAlert) -> Alert:
    annotations = dict(alert.annotations)
    if alert.summary:
        annotations.setdefault("summary", alert.summary)
    labels = {"alertname": alert.name, **alert.labels}
    return Alert(
        source="generic",
        name=alert.name,
        status=alert.status,
        fingerprint=alert.fingerprint or labels_fingerprint(alert.name, labels),
        labels=labels,
        annotations=annotations,
        starts_at=alert.starts_at,
        ends_at=alert.ends_at,
    )


# ---- strict: the whole body or nothing (the policy's `[intake] unroutable = "audit"`) -------------------


def parse_alertmanager(body: Any) -> list[Alert]:
    webhook = TypeAdapter(AlertmanagerWebhook).validate_python(body)
    return [_alertmanager_alert(alert, webhook.groupKey) for alert in webhook.alerts]


def parse_grafana(body: Any) -> list[Alert]:
    webhook = TypeAdapter(GrafanaWebhook).validate_python(body)
    return [_grafana_alert(alert, webhook.groupKey, webhook.title) for alert in webhook.alerts]


def parse_generic(body: Any) -> list[Alert]:
    """Either one alert object or {"alerts": [...]}."""
    webhook = (
        TypeAdapter(GenericWebhook).validate_python(body)
        if isinstance(body, dict) and "alerts" in body
        else GenericWebhook(alerts=[TypeAdapter(GenericAlert).validate_python(body)])
    )
    return [_generic_alert(alert) for alert in webhook.alerts]


PARSERS = {
    "alertmanager": parse_alertmanager,
    "grafana": parse_grafana,
    "generic": parse_generic,
}


# ---- item by item: every alert of a body that is the format is read on its own ----------------------------
# A body is "the format" when it is what the source sends at all: for Alertmanager and Grafana a JSON object
# whose `alerts` is a list; for the generic format the same, or one object with a `name` (a single alert).
# Anything else is refused (422, naming the field). In a body that is the format, an item whose fields cannot
# be read becomes a BrokenItem, which the intake turns into a triage incident: one broken alert never keeps
# the others of its body from starting, and never makes the sender drop the page.

# The name of an item whose name cannot be read.
UNREADABLE_NAME = "UnreadableAlert"
# The raw item is kept in the triage alert's annotations, cut to this many characters: enough for a human to
# see what was sent, bounded so that a body of one huge item cannot bloat the incident's history.
RAW_ITEM_CHARS = 2_000
RAW_ITEM_ANNOTATION = "raw_item"


class NotTheFormat(ValueError):
    """The body is not what the source sends at all: names the field at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class Problem(BaseModel):
    """One field of an item that could not be read."""

    field: str = Field(description="relative to the item (labels.agent): part of the triage key")
    path: str = Field(description="where in the body (alerts.3.labels.agent): what a human fixes")
    problem: str


class BrokenItem(BaseModel):
    """An item of a body that is the format, whose fields could not be read: a best-effort alert of what it
    says, and the fields at fault."""

    alert: Alert
    problems: list[Problem]


Item = Alert | BrokenItem


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def _strings(value: Any) -> dict[str, str]:
    """The readable part of a labels/annotations object: its string → string pairs."""
    if not isinstance(value, dict):
        return {}
    return {key: text for key, text in value.items() if isinstance(key, str) and isinstance(text, str)}


def _when(value: Any) -> datetime | None:
    try:
        return _ended(TypeAdapter(datetime).validate_python(value)) if value is not None else None
    except ValidationError:
        return None


def _problems(error: ValidationError, where: str) -> list[Problem]:
    found: dict[str, str] = {}
    for detail in error.errors():
        found.setdefault(".".join(str(part) for part in detail["loc"]), detail["msg"])
    return [
        Problem(
            field=field or "item",
            path=".".join(part for part in (where, field) if part) or "body",
            problem=message,
        )
        for field, message in found.items()
    ]


def broken_item(source: str, item: Any, problems: list[Problem], group_key: str | None = None) -> BrokenItem:
    """What can be read of an item that does not parse, for the human who will look at it."""
    fields = item if isinstance(item, dict) else {}
    labels = _strings(fields.get("labels"))
    name = labels.get("alertname") or ""
    if not name and source == "generic" and isinstance(fields.get("name"), str):
        name = fields["name"]
    name = name.strip() or UNREADABLE_NAME
    if source == "generic":
        labels = {"alertname": name, **labels}
    status = AlertStatus.resolved if fields.get("status") == "resolved" else AlertStatus.firing
    raw = canonical_json(item)
    annotations = _strings(fields.get("annotations"))
    if source == "generic" and isinstance(fields.get("summary"), str):
        annotations.setdefault("summary", fields["summary"])
    annotations[RAW_ITEM_ANNOTATION] = raw if len(raw) <= RAW_ITEM_CHARS else raw[:RAW_ITEM_CHARS] + "…"
    starts, ends = ("starts_at", "ends_at") if source == "generic" else ("startsAt", "endsAt")
    alert = Alert(
        source=source,
        name=name,
        status=status,
        # The same broken item sent again (Alertmanager re-sends whole bodies) has the same fingerprint.
        fingerprint=hashlib.sha256(raw.encode()).hexdigest()[:16],
        labels=labels,
        annotations=annotations,
        starts_at=_when(fields.get(starts)),
        ends_at=_when(fields.get(ends)),
        group_key=group_key,
    )
    return BrokenItem(alert=alert, problems=problems)


def _read_items(
    source: str,
    model: type[BaseModel],
    alerts: list[Any],
    to_alert: Callable[[Any], Alert],
    *,
    where: Callable[[int], str] = lambda index: f"alerts.{index}",
    envelope: list[Problem] | None = None,
    group_key: str | None = None,
) -> list[Item]:
    """Each item read on its own: an Alert when it parses (and the body's envelope has no problem), else a
    BrokenItem naming its fields at fault."""
    items: list[Item] = []
    for index, item in enumerate(alerts):
        problems = list(envelope or [])
        try:
            parsed = TypeAdapter(model).validate_python(item)
        except ValidationError as error:
            problems += _problems(error, where(index))
        if problems:
            items.append(broken_item(source, item, problems, group_key))
        else:
            items.append(to_alert(parsed))
    return items


def _alert_list(body: Any) -> list[Any]:
    if not isinstance(body, dict):
        raise NotTheFormat("body", "not a JSON object with an `alerts` list")
    if "alerts" not in body:
        raise NotTheFormat("alerts", "required: a list of alerts")
    alerts = body["alerts"]
    if not isinstance(alerts, list):
        raise NotTheFormat("alerts", "must be a list of alerts")
    return alerts


def _group_key(body: dict[str, Any]) -> str | None:
    value = body.get("groupKey")
    return value if isinstance(value, str) and value else None


def read_alertmanager(body: Any) -> list[Item]:
    alerts = _alert_list(body)
    group_key = _group_key(body)
    # Another version may mean another shape: rather than misread it quietly, every alert goes to a human.
    envelope = (
        [
            Problem(
                field="version",
                path="version",
                problem=f"unsupported webhook version {body['version']!r}; expected '4'",
            )
        ]
        if "version" in body and body["version"] != "4"
        else []
    )
    return _read_items(
        "alertmanager",
        AlertmanagerAlert,
        alerts,
        lambda alert: _alertmanager_alert(alert, group_key),
        envelope=envelope,
        group_key=group_key,
    )


def read_grafana(body: Any) -> list[Item]:
    alerts = _alert_list(body)
    group_key = _group_key(body)
    title = body["title"] if isinstance(body.get("title"), str) else ""
    return _read_items(
        "grafana",
        GrafanaAlert,
        alerts,
        lambda alert: _grafana_alert(alert, group_key, title),
        group_key=group_key,
    )


def read_generic(body: Any) -> list[Item]:
    if not isinstance(body, dict):
        raise NotTheFormat("body", 'not a JSON object: send one alert, or {"alerts": [...]}')
    if "alerts" not in body and "name" not in body:
        raise NotTheFormat("name", 'required: one alert needs a name; several go in {"alerts": [...]}')
    if "alerts" in body:
        return _read_items("generic", GenericAlert, _alert_list(body), _generic_alert)
    # One alert on its own: its fields are named from the body's top.
    return _read_items("generic", GenericAlert, [body], _generic_alert, where=lambda index: "")


READERS = {
    "alertmanager": read_alertmanager,
    "grafana": read_grafana,
    "generic": read_generic,
}
