"""The policy file is validated at load: a mistake stops the process with the key named."""

from __future__ import annotations

from pathlib import Path

import pytest

from stanch.ops.samples import SAMPLES
from stanch.policy import PolicyError, check_runbooks, load_policy
from stanch.settings import REPO_ROOT


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.toml"
    path.write_text(text)
    return path


def test_example_policy_loads_and_routes() -> None:
    policy = load_policy(REPO_ROOT / "config" / "stanch.toml")
    route = policy.route_for({"alertname": "AgentHallucination", "agent": "support-bot"})
    assert route is not None and route.runbook == "agent_emergency_stop"
    assert (
        policy.route_for({"alertname": "DiskFull"}) is None
        or policy.route_for({"alertname": "DiskFull"}) != route
    )


def test_unknown_key_is_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match=r"approvals\.timeout_minuts"):
        load_policy(write(tmp_path, "[approvals]\ntimeout_minuts = 5\n"))


def test_bad_regex_is_an_error_naming_the_route(tmp_path: Path) -> None:
    text = '[[routes]]\nname = "x"\nrunbook = "agent_emergency_stop"\nmatch = { alertname = "(" }\n'
    with pytest.raises(PolicyError, match=r"routes\.0\.match"):
        load_policy(write(tmp_path, text))


def test_missing_file_says_which_setting_to_fix(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="STANCH_CONFIG"):
        load_policy(tmp_path / "absent.toml")


def test_every_example_route_names_a_runbook_the_worker_runs() -> None:
    from workflows.registry import RUNBOOKS

    check_runbooks(load_policy(REPO_ROOT / "config" / "stanch.toml"), set(RUNBOOKS))


def test_route_to_an_unknown_runbook_is_an_error(tmp_path: Path) -> None:
    policy = load_policy(write(tmp_path, '[[routes]]\nname = "x"\nrunbook = "guardrail"\n'))
    with pytest.raises(PolicyError, match=r"routes\.0\.runbook: unknown runbook 'guardrail'"):
        check_runbooks(policy, {"agent_emergency_stop"})


def test_incidents_carry_each_subsystems_guardrail_limits(tmp_path: Path) -> None:
    text = (
        "[guardrails.defaults]\nhigh_restarts_per_hour = 2\n"
        "[guardrails.subsystems.gateway]\nhigh_restarts_per_hour = 1\n"
    )
    limits = load_policy(write(tmp_path, text)).incident_policy()
    assert limits.guardrail_limits("gateway").high_restarts_per_hour == 1
    assert limits.guardrail_limits("runtime").high_restarts_per_hour == 2


@pytest.mark.parametrize("scenario", sorted(SAMPLES))
def test_every_fire_scenario_reaches_a_runbook(scenario: str) -> None:
    """`stanch fire <scenario>` must start a runbook in `make dev`, not land as unrouted."""
    from stanch.ops.samples import sample
    from workers.intake.parsers import parse_alertmanager
    from workers.intake.routing import route_alert
    from workflows.registry import RUNBOOKS

    policy = load_policy(REPO_ROOT / "config" / "stanch.toml")
    [alert] = parse_alertmanager(sample(scenario))
    routed = route_alert(policy, alert, "alerts.0")
    assert routed.incident is not None and routed.incident.runbook in RUNBOOKS


def test_response_targets_come_from_the_policy_with_the_seed_defaults(tmp_path: Path) -> None:
    from datetime import timedelta

    from schemas.incidents import IncidentPolicy
    from schemas.severity import Severity

    shipped = load_policy(REPO_ROOT / "config" / "stanch.toml").incident_policy().response_targets
    assert [shipped.for_severity(s) for s in Severity] == [
        timedelta(minutes=5),
        timedelta(minutes=60),
        timedelta(hours=4),
        None,
    ]
    path = tmp_path / "stanch.toml"
    path.write_text("[response_targets]\nP1_minutes = 15\nP0_minutes = 0\n")
    targets = load_policy(path).incident_policy().response_targets
    assert (targets.P0, targets.P1, targets.P2) == (None, timedelta(minutes=15), timedelta(hours=4))
    # An input recorded before response targets existed decodes with the defaults.
    assert IncidentPolicy.model_validate({}).response_targets.P0 == timedelta(minutes=5)
    path.write_text("[response_targets]\nP0_minutes = -1\n")
    with pytest.raises(PolicyError, match=r"response_targets\.P0_minutes"):
        load_policy(path)
