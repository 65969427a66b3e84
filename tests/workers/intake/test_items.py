"""Reading a body item by item and routing each item: pure functions, no server (the fast tier)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from schemas.alerts import Alert
from schemas.severity import Severity
from stanch.ops.samples import alertmanager_body
from stanch.policy import Policy, PolicyError, load_policy
from workers.intake.parsers import (
    RAW_ITEM_ANNOTATION,
    RAW_ITEM_CHARS,
    UNREADABLE_NAME,
    BrokenItem,
    NotTheFormat,
    read_alertmanager,
    read_generic,
    read_grafana,
)
from workers.intake.routing import dedupe_key, route_alert, route_item, runbook_incident_id


def am_item(**changes: Any) -> dict[str, Any]:
    item = alertmanager_body("AgentHallucination", {"agent": "bot"}, "lies", fingerprint="fp1")["alerts"][0]
    return {**item, **changes}


@pytest.mark.parametrize(
    ("reader", "body", "field"),
    [
        (read_alertmanager, [], "body"),
        (read_alertmanager, {"status": "firing"}, "alerts"),
        (read_grafana, {"alerts": {"0": {}}}, "alerts"),
        (read_generic, "an alert", "body"),
        (read_generic, {"labels": {}}, "name"),
        (read_generic, {"alerts": None}, "alerts"),
    ],
)
def test_a_body_that_is_not_the_format_is_refused_naming_the_field(
    reader: Any, body: Any, field: str
) -> None:
    with pytest.raises(NotTheFormat) as refused:
        reader(body)
    assert refused.value.field == field and refused.value.message


def test_each_item_is_read_on_its_own_and_a_broken_one_keeps_its_place() -> None:
    items = read_alertmanager(
        {"alerts": [am_item(), am_item(labels={"alertname": "A", "agent": 5}), 3, am_item(fingerprint="fp2")]}
    )
    assert [type(item).__name__ for item in items] == ["Alert", "BrokenItem", "BrokenItem", "Alert"]
    broken, not_an_object = items[1], items[2]
    assert isinstance(broken, BrokenItem) and isinstance(not_an_object, BrokenItem)
    assert [(p.field, p.path) for p in broken.problems] == [("labels.agent", "alerts.1.labels.agent")]
    # What can be read is kept: the name, the labels that are strings.
    assert broken.alert.name == "A" and broken.alert.labels == {"alertname": "A"}
    assert not_an_object.alert.name == UNREADABLE_NAME
    assert [(p.field, p.path) for p in not_an_object.problems] == [("item", "alerts.2")]


def test_a_broken_items_fingerprint_is_stable_and_its_raw_json_is_kept_bounded() -> None:
    huge = am_item(labels={"alertname": "A", "x": ["y"] * 5_000})
    [first] = read_alertmanager({"alerts": [huge]})
    [again] = read_alertmanager({"alerts": [json.loads(json.dumps(huge))]})
    [other] = read_alertmanager({"alerts": [{**huge, "fingerprint": "other"}]})
    assert isinstance(first, BrokenItem) and isinstance(again, BrokenItem) and isinstance(other, BrokenItem)
    assert first.alert.fingerprint == again.alert.fingerprint != other.alert.fingerprint
    raw = first.alert.annotations[RAW_ITEM_ANNOTATION]
    assert len(raw) == RAW_ITEM_CHARS + 1 and raw.startswith('{"annotations"')


def test_an_unsupported_version_sends_every_alert_to_a_human() -> None:
    items = read_alertmanager({"version": "5", "alerts": [am_item(), am_item(fingerprint="fp2")]})
    assert all(isinstance(item, BrokenItem) for item in items)
    assert {problem.field for item in items if isinstance(item, BrokenItem) for problem in item.problems} == {
        "version"
    }


def test_a_generic_single_object_reports_fields_without_an_index() -> None:
    [item] = read_generic({"name": "A", "severity": "P1"})
    assert isinstance(item, BrokenItem)
    assert [(p.field, p.path) for p in item.problems] == [("severity", "severity")]
    assert item.alert.name == "A" and item.alert.labels == {"alertname": "A"}


def test_the_runbook_incident_id_is_the_one_the_intake_routes_to(policy: Policy) -> None:
    alert = Alert(
        source="x",
        name="AgentHallucination",
        fingerprint="f",
        labels={"alertname": "AgentHallucination", "agent": "b"},
    )
    route = policy.route_for(alert.labels)
    assert route is not None
    routed = route_alert(policy, alert, "alerts.0")
    assert routed.workflow_id == runbook_incident_id(alert, route) == f"incident-{dedupe_key(alert, route)}"
    assert route_item(policy, alert).workflow_id == routed.workflow_id


def test_alike_broken_alerts_share_one_triage_id_and_different_causes_do_not(policy: Policy) -> None:
    def triage_id(labels: dict[str, str], fingerprint: str) -> str:
        alert = Alert(source="x", name=labels["alertname"], fingerprint=fingerprint, labels=labels)
        return route_item(policy, alert).workflow_id

    storm = {triage_id({"alertname": "AgentUpgradeRequested", "agent": f"a{n}"}, f"f{n}") for n in range(50)}
    assert storm == {"incident-triage-agent-upgrade-AgentUpgradeRequested-labels.version"}
    assert triage_id({"alertname": "AgentUpgradeRequested", "version": "2"}, "f") == (
        "incident-triage-agent-upgrade-AgentUpgradeRequested-labels.agent"
    )
    assert triage_id({"alertname": "Nobody"}, "f") == "incident-triage-unrouted-Nobody"
    # Whatever the sender puts in an alertname, the id stays a short, plain workflow id.
    odd = triage_id({"alertname": "é/" * 500}, "f")
    assert odd.startswith("incident-triage-unrouted-") and len(odd) < 120 and odd.isascii()


def test_a_triage_incident_takes_the_routes_severity_else_the_labels(policy: Policy) -> None:
    routed = route_item(
        policy,
        Alert(
            source="x",
            name="AgentHallucination",
            fingerprint="f",
            labels={"alertname": "AgentHallucination", "severity": "info"},
        ),
    )
    assert routed.triage is not None and routed.triage.severity is Severity.P1  # the route's, not the label's
    unrouted = route_item(
        policy, Alert(source="x", name="Other", fingerprint="f", labels={"severity": "warning"})
    )
    assert unrouted.triage is not None and unrouted.triage.severity is Severity.P2
    assert unrouted.runbook_incident_id is None and routed.runbook_incident_id is not None


def test_a_triage_incident_says_where_a_hand_over_to_each_runbook_goes(policy: Policy) -> None:
    alert = Alert(
        source="x", name="AgentOutOfCharacter", fingerprint="f9", labels={"alertname": "AgentOutOfCharacter"}
    )
    routed = route_item(policy, alert)
    assert routed.triage is not None
    ids = routed.triage.runbook_incident_ids
    # Its own route's runbook: the id a repeat of the alert is first signalled into.
    assert ids["agent_emergency_stop"] == routed.runbook_incident_id == "incident-agent-hallucination-f9"
    # Any other runbook: the first route that runs it, applied to this alert.
    upgrade = policy.route_named("agent-upgrade")
    assert upgrade is not None and ids["agent_upgrade"] == runbook_incident_id(alert, upgrade)
    assert set(ids) == {route.runbook for route in policy.routes}


@pytest.mark.parametrize(
    ("toml", "key"),
    [
        ('[intake]\nunroutable = "drop"\n', "intake.unroutable"),
        ('[intake]\nunroutabel = "audit"\n', "intake.unroutabel"),
        (
            '[intake.severity_from_labels]\nvalues = { critical = "P9" }\n',
            "intake.severity_from_labels.values.critical",
        ),
    ],
)
def test_a_bad_intake_section_stops_the_policy_naming_the_key(tmp_path: Path, toml: str, key: str) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(toml)
    with pytest.raises(PolicyError) as refused:
        load_policy(path)
    assert f": {key}: " in str(refused.value)
