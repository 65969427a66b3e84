"""The intake's pure parts on recorded and documented payloads: vendor body → alerts → route → workflow id."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from schemas.alerts import Alert, AlertStatus
from stanch.policy import DedupeBy, Policy, PolicyError, Route, load_policy
from tests.helpers_intake import ALERTMANAGER_FIXTURES, GRAFANA_FIXTURES
from workers.intake.parsers import parse_alertmanager, parse_generic, parse_grafana
from workers.intake.routing import RoutingError, dedupe_key, id_part, route_alert, unrouted_workflow_id


def bodies(directory: Path) -> list[tuple[str, dict[str, Any]]]:
    """Every webhook body of every fixture file, named `<file>#<index>` for the test ids."""
    found = []
    for path in sorted(directory.glob("*.json")):
        for index, body in enumerate(json.loads(path.read_text())):
            found.append((f"{path.stem}#{index}", body))
    assert found, f"no fixtures in {directory}"
    return found


def body(directory: Path, name: str, index: int) -> dict[str, Any]:
    result: dict[str, Any] = json.loads((directory / name).read_text())[index]
    return result


def as_datetime(text: str) -> datetime:
    # An independent reading of the wire format: Python 3.11 reads "Z" and cuts nanoseconds to micro.
    return datetime.fromisoformat(text)


@pytest.mark.parametrize(
    ("name", "webhook"),
    [*bodies(ALERTMANAGER_FIXTURES)],
    ids=[name for name, _ in bodies(ALERTMANAGER_FIXTURES)],
)
def test_every_recorded_alertmanager_body_keeps_each_alerts_own_status_fingerprint_and_times(
    name: str, webhook: dict[str, Any]
) -> None:
    alerts = parse_alertmanager(webhook)

    assert len(alerts) == len(webhook["alerts"])
    for alert, raw in zip(alerts, webhook["alerts"], strict=True):
        assert alert.source == "alertmanager"
        assert alert.name == raw["labels"]["alertname"]
        assert alert.status.value == raw["status"]  # the alert's own status, not the body's
        assert alert.fingerprint == raw["fingerprint"]
        assert alert.labels == raw["labels"]
        assert alert.starts_at == as_datetime(raw["startsAt"])
        if raw["endsAt"].startswith("0001-01-01"):
            assert alert.ends_at is None  # Go's zero time: not ended
        else:
            assert alert.ends_at == as_datetime(raw["endsAt"])
        assert alert.group_key == webhook["groupKey"]


def test_a_body_can_mix_firing_and_resolved_alerts() -> None:
    alerts = parse_alertmanager(body(ALERTMANAGER_FIXTURES, "alertmanager-firing.json", 2))
    assert [(a.fingerprint, a.status) for a in alerts] == [
        ("f73e4048787d1f2e", AlertStatus.resolved),
        ("66cf5c81bf1a4a0b", AlertStatus.firing),
    ]
    assert alerts[0].ends_at == datetime(2026, 11, 21, 21, 52, 25, 469000, tzinfo=UTC)
    assert alerts[1].ends_at is None


@pytest.mark.parametrize(
    ("starts_at", "expected"),
    [
        ("2026-11-21T21:51:56.989Z", datetime(2026, 11, 21, 21, 51, 56, 989000, tzinfo=UTC)),
        ("2026-11-21T21:51:56Z", datetime(2026, 11, 21, 21, 51, 56, tzinfo=UTC)),
        ("2026-11-21T21:52:31.510721293Z", datetime(2026, 11, 21, 21, 52, 31, 510721, tzinfo=UTC)),
        (
            "2021-10-12T09:51:03.157076+02:00",
            datetime(2021, 10, 12, 9, 51, 3, 157076, tzinfo=timezone(timedelta(hours=2))),
        ),
    ],
    ids=["milliseconds", "whole-seconds", "nanoseconds", "offset"],
)
def test_timestamps_in_every_precision_alertmanager_sends(starts_at: str, expected: datetime) -> None:
    webhook = body(ALERTMANAGER_FIXTURES, "alertmanager-firing.json", 0)
    webhook["alerts"][0]["startsAt"] = starts_at
    [alert] = parse_alertmanager(webhook)
    assert alert.starts_at == expected


def test_another_alertmanager_payload_version_is_refused_by_name() -> None:
    webhook = body(ALERTMANAGER_FIXTURES, "alertmanager-firing.json", 0)
    webhook["version"] = "5"
    with pytest.raises(ValidationError) as refused:
        parse_alertmanager(webhook)
    assert refused.value.errors()[0]["loc"] == ("version",)


@pytest.mark.parametrize(
    ("name", "webhook"),
    [*bodies(GRAFANA_FIXTURES)],
    ids=[name for name, _ in bodies(GRAFANA_FIXTURES)],
)
def test_every_grafana_body_keeps_each_alerts_own_status_fingerprint_and_times(
    name: str, webhook: dict[str, Any]
) -> None:
    alerts = parse_grafana(webhook)

    assert len(alerts) == len(webhook["alerts"])
    for alert, raw in zip(alerts, webhook["alerts"], strict=True):
        assert alert.source == "grafana"
        assert alert.name == raw["labels"]["alertname"]
        assert alert.status.value == raw["status"]
        assert alert.fingerprint == raw["fingerprint"]
        assert alert.starts_at == as_datetime(raw["startsAt"])
        assert (alert.ends_at is None) == raw["endsAt"].startswith("0001-01-01")
        assert alert.summary == raw["annotations"]["summary"]


def test_grafana_value_string_is_kept_and_a_missing_fingerprint_is_derived_from_the_labels() -> None:
    webhook = body(GRAFANA_FIXTURES, "grafana-firing.json", 1)
    [alert] = parse_grafana(webhook)
    assert alert.annotations["values"] == "[ var='B' labels={zone=us-1} value=91.5 ]"
    assert alert.starts_at == datetime(2021, 10, 12, 10, 2, 11, tzinfo=timezone(timedelta(hours=2)))

    del webhook["alerts"][0]["fingerprint"]
    [first] = parse_grafana(webhook)
    [again] = parse_grafana(copy.deepcopy(webhook))
    assert first.fingerprint == again.fingerprint != ""
    webhook["alerts"][0]["labels"]["zone"] = "eu-1"
    [other] = parse_grafana(webhook)
    assert other.fingerprint != first.fingerprint


def test_generic_format_one_alert_or_a_list() -> None:
    [one] = parse_generic({"name": "QueueBacklog", "labels": {"queue": "billing"}, "summary": "10k waiting"})
    assert (one.name, one.status, one.summary) == ("QueueBacklog", AlertStatus.firing, "10k waiting")
    assert one.labels == {"alertname": "QueueBacklog", "queue": "billing"}
    assert (
        one.fingerprint
        == parse_generic({"name": "QueueBacklog", "labels": {"queue": "billing"}})[0].fingerprint
    )

    many = parse_generic(
        {
            "alerts": [
                {"name": "A", "fingerprint": "fp-a", "starts_at": "2026-11-21T21:51:56Z"},
                {"name": "B", "status": "resolved", "fingerprint": "fp-b"},
            ]
        }
    )
    assert [(a.name, a.fingerprint, a.status) for a in many] == [
        ("A", "fp-a", AlertStatus.firing),
        ("B", "fp-b", AlertStatus.resolved),
    ]
    assert many[0].starts_at == datetime(2026, 11, 21, 21, 51, 56, tzinfo=UTC)


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"labels": {}}, "name"),
        ({"name": "A", "labels": {"n": 1}}, "labels.n"),
        ({"name": "A", "severity": "P1"}, "severity"),
        ({"name": "A", "status": "pending"}, "status"),
        ({"alerts": []}, "alerts"),
        ({"alerts": [{"name": "A"}, {"name": ""}]}, "alerts.1.name"),
    ],
)
def test_generic_format_names_the_field_at_fault(payload: Any, field: str) -> None:
    with pytest.raises(ValidationError) as refused:
        parse_generic(payload)
    assert ".".join(str(part) for part in refused.value.errors()[0]["loc"]) == field


# ---- routing -----------------------------------------------------------------------------------------


def alert(**labels: str) -> Alert:
    return Alert(source="generic", name=labels.get("alertname", "X"), fingerprint="fp1", labels=labels)


def policy_with(*routes: Route, default: Route | None = None) -> Policy:
    return Policy(routes=list(routes), default_route=default)


def route_name(policy: Policy, routed_alert: Alert) -> str | None:
    route = route_alert(policy, routed_alert, "alerts.0").route
    return route.name if route else None


def test_first_matching_rule_wins_and_regexes_match_in_full() -> None:
    policy = policy_with(
        Route(name="payments", runbook="r1", match={"alertname": "Pod.*", "service": "payments"}),
        Route(name="pods", runbook="r2", match={"alertname": "Pod.*"}),
    )
    assert route_name(policy, alert(alertname="PodCrashLooping", service="payments")) == "payments"
    assert route_name(policy, alert(alertname="PodCrashLooping", service="search")) == "pods"
    # Full match: "Pod.*" does not match "NotAPodAlert".
    assert route_name(policy, alert(alertname="NotAPodAlert")) is None


def test_an_alert_no_rule_matches_goes_to_the_default_route_or_nowhere() -> None:
    rule = Route(name="pods", runbook="r2", match={"alertname": "Pod.*"})
    unmatched = alert(alertname="DiskFull")

    nowhere = route_alert(policy_with(rule), unmatched, "a")
    assert nowhere.route is None and nowhere.incident is None
    assert nowhere.workflow_id.startswith("unrouted-fp1-firing")

    default = Route(name="catch-all", runbook="triage")
    routed = route_alert(policy_with(rule, default=default), unmatched, "a")
    assert routed.incident is not None and routed.incident.runbook == "triage"
    assert routed.workflow_id == "incident-catch-all-fp1"


def test_a_default_route_with_a_match_is_refused_at_load(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text('[default_route]\nname = "d"\nrunbook = "triage"\nmatch = { alertname = "X" }\n')
    with pytest.raises(PolicyError, match="default_route"):
        load_policy(path)
    path.write_text('[default_route]\nname = "d"\nrunbook = "triage"\n')
    assert load_policy(path).default_route is not None


def test_dedupe_key_by_fingerprint_group_key_or_chosen_labels() -> None:
    one = Alert(source="x", name="A", fingerprint="fp1", labels={"svc": "a", "pod": "1"}, group_key="g")
    two = Alert(source="x", name="A", fingerprint="fp2", labels={"svc": "a", "pod": "2"}, group_key="g")

    by_fingerprint = Route(name="r", runbook="x")
    assert dedupe_key(one, by_fingerprint) != dedupe_key(two, by_fingerprint)

    by_group = Route(name="r", runbook="x", dedupe_by=DedupeBy.group_key)
    assert dedupe_key(one, by_group) == dedupe_key(two, by_group)

    by_service = Route(name="r", runbook="x", dedupe_by=DedupeBy.labels, dedupe_labels=["svc"])
    by_pod = Route(name="r", runbook="x", dedupe_by=DedupeBy.labels, dedupe_labels=["svc", "pod"])
    assert dedupe_key(one, by_service) == dedupe_key(two, by_service)
    assert dedupe_key(one, by_pod) != dedupe_key(two, by_pod)

    # Without a group key (the generic format) group_key falls back to the fingerprint, never merging all.
    loose = one.model_copy(update={"group_key": None})
    assert dedupe_key(loose, by_group) == dedupe_key(loose, by_fingerprint)


def test_a_route_that_needs_a_label_names_it_when_missing() -> None:
    route = Route(name="agents", runbook="agent_emergency_stop", target_labels={"agent_id": "agent"})
    with pytest.raises(RoutingError) as refused:
        route_alert(policy_with(route), alert(alertname="AgentHallucination"), "alerts.3")
    assert refused.value.field == "alerts.3.labels.agent"


def test_workflow_id_parts_are_kept_when_plain_and_hashed_otherwise() -> None:
    assert id_part("7d2d332feada5c59") == "7d2d332feada5c59"
    # Replacing odd characters alone would merge "a/b" and "a:b"; the hash keeps them apart.
    assert id_part("a/b") != id_part("a:b")
    assert id_part("x" * 81) != id_part("x" * 82)
    assert len(id_part("é" * 1000)) < 80


def test_unrouted_ids_differ_by_status_and_occurrence_but_not_by_delivery() -> None:
    firing = Alert(source="x", name="A", fingerprint="fp", starts_at=datetime(2026, 1, 1, tzinfo=UTC))
    assert unrouted_workflow_id(firing) == unrouted_workflow_id(firing.model_copy())
    resolved = firing.model_copy(update={"status": AlertStatus.resolved})
    again_later = firing.model_copy(update={"starts_at": datetime(2026, 1, 2, tzinfo=UTC)})
    assert len({unrouted_workflow_id(a) for a in (firing, resolved, again_later)}) == 3


def test_an_oversized_service_label_is_cut_to_fit_a_search_attribute() -> None:
    route = Route(name="any", runbook="x")
    routed = route_alert(policy_with(route), alert(service="s" * 5000), "a")
    assert routed.incident is not None and len(routed.incident.service) <= 200
