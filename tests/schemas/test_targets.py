"""Typed target models: each runbook's declared model, the policy check the worker runs at start-up, and
the hand-over validator of triage incidents. Pure functions; no stack needed."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from schemas.targets import (
    MAX_TARGET_CHARS,
    RUNBOOK_NAMES,
    TARGET_MODELS,
    AgentStopTarget,
    HandoffTarget,
    SecurityTarget,
    check_route_targets,
    target_model_for,
)
from schemas.triage import RunRunbook
from stanch.policy import load_policy
from stanch.settings import REPO_ROOT
from workers.worker import routes_fit_targets_or_exit
from workflows.registry import RUNBOOKS, WORKFLOWS
from workflows.triage import Triage, target_problem

SHIPPED = (REPO_ROOT / "config" / "stanch.toml").read_text()

HALLUCINATION_ROUTE = """
[[routes]]
name = "agent-hallucination"
runbook = "agent_emergency_stop"
match = { alertname = "AgentHallucination" }
"""


def policy_file(tmp_path: Path, route_lines: str) -> Path:
    path = tmp_path / "stanch.toml"
    path.write_text(HALLUCINATION_ROUTE + route_lines)
    return path


def test_every_runbook_class_names_the_model_the_mapping_gives() -> None:
    assert set(TARGET_MODELS) == set(RUNBOOKS) == set(RUNBOOK_NAMES)
    for name, workflow_class in RUNBOOKS.items():
        assert workflow_class.target_model is TARGET_MODELS[name], name
        assert target_model_for(name) is workflow_class.target_model


def test_triage_is_a_workflow_but_not_a_runbook_a_route_may_start() -> None:
    assert Triage in WORKFLOWS and Triage not in RUNBOOKS.values()
    assert target_model_for("triage") is None


def test_shipped_policy_routes_fit_their_runbooks_targets() -> None:
    assert check_route_targets(load_policy(REPO_ROOT / "config" / "stanch.toml")) is None


def test_a_route_without_a_required_target_label_is_named_with_its_runbook_and_field(tmp_path: Path) -> None:
    policy = load_policy(policy_file(tmp_path, 'optional_target_labels = { customer = "customer" }\n'))
    problem = check_route_targets(policy)
    assert problem is not None
    assert "routes.0 ('agent-hallucination')" in problem
    assert "'agent_emergency_stop'" in problem and "'agent_id'" in problem


def test_a_required_field_only_among_optional_labels_is_refused(tmp_path: Path) -> None:
    # An optional label may be missing from an alert: the runbook would then fail on its first step.
    policy = load_policy(policy_file(tmp_path, 'optional_target_labels = { agent_id = "agent" }\n'))
    problem = check_route_targets(policy)
    assert problem is not None and problem.startswith(
        "routes.0 ('agent-hallucination').optional_target_labels"
    )
    assert "requires target field 'agent_id' in target_labels" in problem


def test_a_label_for_a_field_the_model_lacks_is_named(tmp_path: Path) -> None:
    lines = 'target_labels = { agent_id = "agent" }\noptional_target_labels = { agnet = "agnet" }\n'
    problem = check_route_targets(load_policy(policy_file(tmp_path, lines)))
    assert problem is not None
    assert (
        "optional_target_labels.agnet: runbook 'agent_emergency_stop' has no target field 'agnet'" in problem
    )


def test_worker_check_exits_2_with_one_line_naming_route_runbook_and_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = policy_file(tmp_path, 'target_labels = { agent = "agent" }\n')
    with pytest.raises(SystemExit) as stopped:
        routes_fit_targets_or_exit(load_policy(path), path)
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert f"policy file {path}: routes.0 ('agent-hallucination')" in err and "'agent_id'" in err


@pytest.mark.parametrize(
    "agent_id",
    ["", "a" * (MAX_TARGET_CHARS + 1), "bot/../admin", "bot?x=1", "bot name", "-bot", "bot%2F"],
)
def test_agent_ids_that_cannot_reach_the_platform_are_refused(agent_id: str) -> None:
    with pytest.raises(ValidationError) as refused:
        AgentStopTarget.model_validate({"agent_id": agent_id})
    assert refused.value.errors()[0]["loc"] == ("agent_id",)


def test_plain_names_pass_and_free_text_fields_take_words() -> None:
    target = AgentStopTarget.model_validate({"agent_id": "support-bot.eu_1", "customer": "ACME Inc."})
    assert target.model_dump(exclude_none=True) == {"agent_id": "support-bot.eu_1", "customer": "ACME Inc."}
    assert AgentStopTarget.model_validate({"agent_id": "a" * MAX_TARGET_CHARS})


def test_what_a_runbook_would_fail_on_is_refused_naming_the_field() -> None:
    with pytest.raises(ValidationError, match="quality_score"):
        HandoffTarget.model_validate({"quality_score": "high"})
    with pytest.raises(ValidationError, match="subsystem"):
        SecurityTarget.model_validate({"agent_id": "bot", "subsystem": "gate:way"})
    with pytest.raises(ValidationError, match="agnet"):
        AgentStopTarget.model_validate({"agent_id": "bot", "agnet": "bot"})


def test_hand_over_validator_names_the_missing_field_and_unknown_runbooks() -> None:
    missing = target_problem(RunRunbook(by="alice", runbook="agent_emergency_stop", target={"customer": "x"}))
    assert missing == "target.agent_id: Field required"
    unknown = target_problem(RunRunbook(by="alice", runbook="triage", target={}))
    assert unknown is not None and unknown.startswith("runbook: unknown runbook 'triage'")
    assert (
        target_problem(RunRunbook(by="alice", runbook="agent_emergency_stop", target={"agent_id": "b"}))
        is None
    )
