"""A policy file may extend another (`extends = "stanch.toml"`): config/dev.toml is the production-shaped
example plus what only the dev stack has, without a copy of it that drifts."""

from __future__ import annotations

from pathlib import Path

import pytest

from stanch.policy import PolicyError, load_policy

REPO = Path(__file__).resolve().parents[2]


def test_the_dev_policy_is_the_example_plus_its_systems() -> None:
    example = load_policy(REPO / "config" / "stanch.toml")
    dev = load_policy(REPO / "config" / "dev.toml")
    assert dev.roles == example.roles and dev.routes == example.routes
    assert example.systems == {}


def test_tables_merge_and_values_replace(tmp_path: Path) -> None:
    (tmp_path / "base.toml").write_text(
        '[approvals]\ntimeout_minutes = 30\n[roles.oncall]\npeople = ["alice", "bob"]\n'
        "[people.alice]\n[people.bob]\n"
    )
    (tmp_path / "dev.toml").write_text(
        'extends = "base.toml"\n[approvals]\ntimeout_minutes = 5\n[roles.oncall]\npeople = ["alice"]\n'
    )
    policy = load_policy(tmp_path / "dev.toml")
    assert policy.approvals.timeout_minutes == 5
    assert policy.roles["oncall"].people == ["alice"]  # a list replaces, it is not appended to
    assert set(policy.people) == {"alice", "bob"}  # a table merges key by key


def test_an_extends_loop_is_an_error_naming_the_key(tmp_path: Path) -> None:
    (tmp_path / "a.toml").write_text('extends = "b.toml"\n')
    (tmp_path / "b.toml").write_text('extends = "a.toml"\n')
    with pytest.raises(PolicyError, match=r"b\.toml: extends: a\.toml extends this file again"):
        load_policy(tmp_path / "a.toml")


def test_a_missing_base_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "dev.toml").write_text('extends = "nowhere.toml"\n')
    with pytest.raises(PolicyError, match=r"nowhere\.toml not found"):
        load_policy(tmp_path / "dev.toml")
