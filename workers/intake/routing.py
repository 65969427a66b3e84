"""From a parsed alert to the incident it belongs to."""

from __future__ import annotations

import hashlib
import re

from pydantic import BaseModel

from schemas.alerts import Alert
from schemas.incidents import IncidentInput
from stanch.policy import DedupeBy, Policy, Route


class RoutingError(ValueError):
    """An alert a route matched but cannot start: names the field at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class RoutedAlert(BaseModel):
    alert: Alert
    route: Route | None
    incident: IncidentInput | None


def dedupe_key(alert: Alert, route: Route) -> str:
    if route.dedupe_by is DedupeBy.group_key and alert.group_key:
        raw = alert.group_key
    elif route.dedupe_by is DedupeBy.labels:
        raw = "|".join(f"{label}={alert.labels.get(label, '')}" for label in route.dedupe_labels)
    else:
        return f"{route.name}-{_safe(alert.fingerprint)}"
    return f"{route.name}-{hashlib.sha256(raw.encode()).hexdigest()[:16]}"


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", text)[:80]


def route_alert(policy: Policy, alert: Alert, field_prefix: str) -> RoutedAlert:
    route = policy.route_for(alert.labels)
    if route is None:
        return RoutedAlert(alert=alert, route=None, incident=None)
    target: dict[str, str] = {}
    for field, label in route.target_labels.items():
        value = alert.labels.get(label)
        if not value:
            raise RoutingError(
                f"{field_prefix}.labels.{label}", f"required by route {route.name!r} (it names the {field})"
            )
        target[field] = value
    for field, label in route.optional_target_labels.items():
        if alert.labels.get(label):
            target[field] = alert.labels[label]
    incident = IncidentInput(
        incident_id=f"incident-{dedupe_key(alert, route)}",
        runbook=route.runbook,
        severity=route.severity,
        service=alert.labels.get("service") or next(iter(target.values()), "unknown"),
        summary=alert.summary,
        alert=alert,
        target=target,
        policy=policy.incident_policy(),
    )
    return RoutedAlert(alert=alert, route=route, incident=incident)
