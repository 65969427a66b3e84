"""From a parsed alert to the incident it belongs to: pure functions of the policy and the alert."""

from __future__ import annotations

import hashlib
import re

from pydantic import BaseModel

from schemas.alerts import Alert
from schemas.incidents import IncidentInput
from stanch.policy import DedupeBy, Policy, Route

# What may appear verbatim in a workflow id; anything else is hashed, so two keys never collide.
_SAFE_ID_PART = re.compile(r"[A-Za-z0-9_.-]{1,80}")
# The service becomes the StanchService search attribute, whose values Temporal caps (2 KB by default):
# an oversized label must not leave the runbook failing its first workflow task forever.
MAX_SERVICE_CHARS = 200
# Target labels name things on the platform (an agent, a gateway, a channel, a guardrail subsystem) and end
# up in URL paths and workflow ids: a value of a few hundred KB passes the body limit, then fails every
# platform call (httpx refuses the URL, and the activity retries for minutes) or the workflow id. Such names
# stay far shorter (Kubernetes and DNS cap theirs at 253), so a longer value is refused here, naming the label.
MAX_TARGET_CHARS = 253


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

    @property
    def workflow_id(self) -> str:
        """The workflow this alert goes to: its incident, or the audit record of an unrouted alert."""
        return self.incident.incident_id if self.incident else unrouted_workflow_id(self.alert)


def id_part(text: str) -> str:
    """`text` as it may stand in a workflow id: itself when short and plain, else a readable prefix + hash."""
    if _SAFE_ID_PART.fullmatch(text):
        return text
    prefix = re.sub(r"[^A-Za-z0-9_.-]", "_", text)[:40]
    return f"{prefix}-{hashlib.sha256(text.encode()).hexdigest()[:16]}"


def dedupe_key(alert: Alert, route: Route) -> str:
    if route.dedupe_by is DedupeBy.group_key and alert.group_key:
        raw = alert.group_key
    elif route.dedupe_by is DedupeBy.labels:
        raw = "|".join(f"{label}={alert.labels.get(label, '')}" for label in route.dedupe_labels)
    else:
        # Also the fallback for group_key when the source sends none (the generic format).
        return f"{route.name}-{id_part(alert.fingerprint)}"
    return f"{route.name}-{hashlib.sha256(raw.encode()).hexdigest()[:16]}"


def unrouted_workflow_id(alert: Alert) -> str:
    """One id per occurrence of an unrouted alert: a re-delivery maps to the same id (and is refused),
    while the same alert firing again later (a new startsAt) is audited again."""
    parts = ["unrouted", id_part(alert.fingerprint), alert.status.value]
    if alert.starts_at is not None:
        parts.append(id_part(alert.starts_at.isoformat()))
    return "-".join(parts)


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
    for field, label in {**route.target_labels, **route.optional_target_labels}.items():
        if len(target.get(field, "")) > MAX_TARGET_CHARS:
            raise RoutingError(
                f"{field_prefix}.labels.{label}",
                f"longer than {MAX_TARGET_CHARS} characters (route {route.name!r} takes it as the {field})",
            )
    service = alert.labels.get("service") or next(iter(target.values()), "unknown")
    incident = IncidentInput(
        incident_id=f"incident-{dedupe_key(alert, route)}",
        runbook=route.runbook,
        severity=route.severity,
        service=service[:MAX_SERVICE_CHARS],
        summary=alert.summary,
        alert=alert,
        target=target,
        policy=policy.incident_policy(),
    )
    return RoutedAlert(alert=alert, route=route, incident=incident)
