"""From a parsed alert to the incident it belongs to: pure functions of the policy and the alert.

No FastAPI or Temporal here: the triage workflow imports `runbook_incident_id` to hand an alert to the same
incident the intake would have opened for it."""

from __future__ import annotations

import hashlib
import re

from pydantic import BaseModel, ValidationError

from schemas import targets
from schemas.alerts import OPENED_BY_HAND, OPENED_BY_LABEL, Alert
from schemas.incidents import IncidentInput
from schemas.severity import Severity
from schemas.triage import TRIAGE_WORKFLOW, TriageInput, TriageProblem
from stanch.policy import DedupeBy, Policy, Route
from workers.intake.parsers import BrokenItem

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
    # A runbook's incident, a triage incident (TriageInput), or None: an unrouted alert only audited.
    incident: TriageInput | IncidentInput | None
    # For a triage incident of an alert a route matched: the runbook incident this alert would have opened.
    # A human may have handed an earlier alert of the group to that runbook; while it runs, repeats join it.
    runbook_incident_id: str | None = None

    @property
    def workflow_id(self) -> str:
        """The workflow this alert goes to: its incident, or the audit record of an unrouted alert."""
        return self.incident.incident_id if self.incident else unrouted_workflow_id(self.alert)

    @property
    def triage(self) -> TriageInput | None:
        return self.incident if isinstance(self.incident, TriageInput) else None


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


def runbook_incident_id(alert: Alert, route: Route) -> str:
    """The id of the runbook incident `alert` opens (or joins) through `route`: `incident-<dedupe key>`.

    The one rule for it: the intake opens runbook incidents under it, and a triage incident handed to the
    route's runbook starts the runbook under it too, so later alerts of the same group find that incident.
    """
    return f"incident-{dedupe_key(alert, route)}"


def triage_key(route: Route | None, alert_name: str, fields: list[str]) -> str:
    """Route name (or `unrouted`) + alertname + the fields at fault: one triage incident per cause, so a
    storm of alike broken alerts opens one, and its repeats join it."""
    parts = [id_part(route.name) if route else "unrouted", id_part(alert_name)]
    if fields:
        parts.append(id_part(",".join(sorted(set(fields)))))
    return "-".join(parts)


def triage_incident_id(route: Route | None, alert_name: str, fields: list[str]) -> str:
    return f"incident-triage-{triage_key(route, alert_name, fields)}"


def unrouted_workflow_id(alert: Alert) -> str:
    """One id per occurrence of an unrouted alert: a re-delivery maps to the same id (and is refused),
    while the same alert firing again later (a new startsAt) is audited again."""
    parts = ["unrouted", id_part(alert.fingerprint), alert.status.value]
    if alert.starts_at is not None:
        parts.append(id_part(alert.starts_at.isoformat()))
    return "-".join(parts)


def _target(route: Route, alert: Alert) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """What the route's runbook would act on, and what is wrong with it: (field, problem) pairs, the field
    as a human fixes it (`labels.agent`, or `target.<field>` for a field no label carries)."""
    target: dict[str, str] = {}
    problems: list[tuple[str, str]] = []
    for field, label in route.target_labels.items():
        value = alert.labels.get(label)
        if not value:
            problems.append((f"labels.{label}", f"required by route {route.name!r} (it names the {field})"))
        else:
            target[field] = value
    for field, label in route.optional_target_labels.items():
        if alert.labels.get(label):
            target[field] = alert.labels[label]
    labels = {**route.target_labels, **route.optional_target_labels}
    for field, label in labels.items():
        if len(target.get(field, "")) > MAX_TARGET_CHARS:
            problems.append(
                (
                    f"labels.{label}",
                    f"longer than {MAX_TARGET_CHARS} characters (route {route.name!r} takes it as the {field})",
                )
            )
    model = targets.target_model_for(route.runbook)
    if model is not None and not problems:
        try:
            model.model_validate(target)
        except ValidationError as error:
            for detail in error.errors():
                field = str(detail["loc"][0]) if detail["loc"] else ""
                problems.append(
                    (
                        f"labels.{labels[field]}" if field in labels else f"target.{field}",
                        f"not a valid {field} for runbook {route.runbook!r}: {detail['msg']}",
                    )
                )
    return target, problems


def _service(alert: Alert, target: dict[str, str]) -> str:
    return (alert.labels.get("service") or next(iter(target.values()), "unknown"))[:MAX_SERVICE_CHARS]


def route_alert(policy: Policy, alert: Alert, field_prefix: str) -> RoutedAlert:
    """The strict routing (`[intake] unroutable = "audit"`): an alert its route cannot act on is an error."""
    route = policy.route_for(alert.labels)
    if route is None:
        return RoutedAlert(alert=alert, route=None, incident=None)
    target, problems = _target(route, alert)
    if problems:
        where, message = problems[0]
        raise RoutingError(f"{field_prefix}.{where}", message)
    return _runbook(policy, alert, route, target)


def _runbook(policy: Policy, alert: Alert, route: Route, target: dict[str, str]) -> RoutedAlert:
    incident = IncidentInput(
        incident_id=runbook_incident_id(alert, route),
        runbook=route.runbook,
        severity=route.severity,
        service=_service(alert, target),
        summary=alert.summary,
        alert=alert,
        target=target,
        policy=policy.incident_policy(),
    )
    return RoutedAlert(alert=alert, route=route, incident=incident)


def hand_over_ids(policy: Policy, alert: Alert, matched: Route | None) -> dict[str, str]:
    """Per runbook, the incident a hand-over of this alert to it starts: `runbook_incident_id` on the
    matched route for that route's runbook, else on the first route that runs the runbook. The triage
    workflow cannot read the policy, so its input carries these; later alerts of the group find them."""
    ids: dict[str, str] = {}
    routes = [route for _, route in policy.keyed_routes()]
    for route in [*([matched] if matched else []), *routes]:
        ids.setdefault(route.runbook, runbook_incident_id(alert, route))
    return ids


def route_item(policy: Policy, item: Alert | BrokenItem) -> RoutedAlert:
    """Where one item of a body goes (`[intake] unroutable = "triage"`, the default): the runbook its route
    names when the alert says all the runbook needs; otherwise a triage incident that pages a human, keyed
    by the cause (route, alertname, fields at fault). Never an error: every item goes somewhere."""
    alert = item.alert if isinstance(item, BrokenItem) else item
    route = policy.route_for(alert.labels)
    problems = [
        TriageProblem(field=problem.path, problem=problem.problem)
        for problem in (item.problems if isinstance(item, BrokenItem) else [])
    ]
    fields = [problem.field for problem in item.problems] if isinstance(item, BrokenItem) else []
    target: dict[str, str] = {}
    if route is not None:
        target, missing = _target(route, alert)
        if not missing and not problems:
            return _runbook(policy, alert, route, target)
        for where, message in missing:
            problems.append(TriageProblem(field=where, problem=message))
            fields.append(where)
    elif not problems:
        problems.append(TriageProblem(field="labels", problem="no route matches the alert's labels"))
    incident = TriageInput(
        incident_id=triage_incident_id(route, alert.name, fields),
        runbook=TRIAGE_WORKFLOW,
        severity=route.severity if route else policy.intake.severity_from_labels.severity_for(alert.labels),
        service=_service(alert, target),
        summary=alert.summary,
        alert=alert,
        target={},
        policy=policy.incident_policy(),
        route=route.name if route else None,
        suggested_runbook=route.runbook if route else None,
        problems=problems,
        runbook_incident_ids=hand_over_ids(policy, alert, route),
    )
    return RoutedAlert(
        alert=alert,
        route=route,
        incident=incident,
        # A broken item's fingerprint is derived from its raw JSON, so no runbook incident holds it.
        runbook_incident_id=runbook_incident_id(alert, route)
        if route is not None and not isinstance(item, BrokenItem)
        else None,
    )


def refused_to_triage(routed: RoutedAlert, refusal: str) -> RoutedAlert:
    """A runbook incident Temporal refused as invalid (e.g. a route name that makes the id too long): the
    alert goes to a human instead, since a 4xx would lose it and retrying cannot help."""
    incident = routed.incident
    assert incident is not None and routed.route is not None
    problem = TriageProblem(field="route", problem=f"Temporal refused the runbook's incident: {refusal}")
    triage = TriageInput(
        incident_id=triage_incident_id(routed.route, routed.alert.name, ["route"]),
        runbook=TRIAGE_WORKFLOW,
        severity=incident.severity,
        service=incident.service,
        summary=incident.summary,
        alert=routed.alert,
        target={},
        policy=incident.policy,
        route=routed.route.name,
        suggested_runbook=routed.route.runbook,
        problems=[problem],
        # No runbook_incident_ids: this route's incident id is the one Temporal refused, so a hand-over
        # falls back to the triage workflow's own `incident-<runbook>-<fingerprint>`.
    )
    return RoutedAlert(alert=routed.alert, route=routed.route, incident=triage)


HAND_ALERT_NAME = "OpenedByHand"


def route_by_hand(
    policy: Policy, runbook: str, target: dict[str, str], severity: Severity, summary: str, by: str
) -> RoutedAlert:
    """An incident a person opens for `runbook` on `target`: through the same routing and dedupe as an
    alert. The runbook's first route names the incident (`runbook_incident_id`), so a hand-opened incident
    and an alert about the same target land in one incident when the route dedupes by the target's labels;
    the target is checked against the runbook's target model as an alert's is. Raises RoutingError naming
    the field at fault (`target.<field>`)."""
    route = next((route for _, route in policy.keyed_routes() if route.runbook == runbook), None)
    if route is None:
        raise RoutingError("runbook", f"no route of the policy runs {runbook!r}")
    labels = {label: target[field] for field, label in route.target_labels.items() if field in target}
    labels |= {
        label: target[field] for field, label in route.optional_target_labels.items() if field in target
    }
    labels[OPENED_BY_LABEL] = by
    raw = "|".join(f"{key}={value}" for key, value in sorted(target.items()))
    alert = Alert(
        source=OPENED_BY_HAND,
        name=HAND_ALERT_NAME,
        fingerprint=f"{runbook}-{hashlib.sha256(raw.encode()).hexdigest()[:16]}",
        labels=labels,
        annotations={"summary": summary},
    )
    model = targets.target_model_for(runbook)
    if model is not None:
        try:
            model.model_validate(target)
        except ValidationError as error:
            detail = error.errors()[0]
            field = str(detail["loc"][0]) if detail["loc"] else ""
            raise RoutingError(f"target.{field}", detail["msg"]) from None
    for field, value in target.items():
        if len(value) > MAX_TARGET_CHARS:
            raise RoutingError(f"target.{field}", f"longer than {MAX_TARGET_CHARS} characters")
    routed = _runbook(policy, alert, route.model_copy(update={"severity": severity}), dict(target))
    assert routed.incident is not None
    routed.incident.service = (
        labels.get("service") or next(iter(target.values()), "unknown")[:MAX_SERVICE_CHARS]
    )
    return routed
