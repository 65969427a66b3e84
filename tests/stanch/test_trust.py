"""Demo keys are trusted only by what the dev stack or the tests started (issue 13 §1): a policy holding one
is refused in one line naming its people and the fix, unless STANCH_TRUST_DEMO_KEYS=1; the dev stack sets
the variable for its children (and its CLI environment file: tests/e2e/test_devstack.py), and nothing in
production needs it."""

from __future__ import annotations

import os
from pathlib import Path

from stanch.ops.devstack import child_environment, settings_on_free_ports
from stanch.policy import load_policy
from stanch.settings import REPO_ROOT
from stanch.trust import TRUST_DEMO_KEYS, demo_keys_refusal, demo_keys_trusted

DEV_POLICY = REPO_ROOT / "config" / "dev.toml"
SHIPPED_POLICY = REPO_ROOT / "config" / "stanch.toml"


def test_a_policy_with_demo_keys_is_refused_in_one_line_naming_the_people_and_the_fix() -> None:
    refusal = demo_keys_refusal(load_policy(DEV_POLICY), DEV_POLICY, environ={})
    assert refusal is not None and "\n" not in refusal
    assert refusal.startswith(
        f"policy file {DEV_POLICY}: alice, bob, carol, dave, erin and approvals.services.console sign with demo keys"
    )
    assert "[people.<name>] keys" in refusal and "remove demo = true" in refusal and "stanch dev" in refusal


def test_only_the_variable_set_to_1_trusts_demo_keys() -> None:
    policy = load_policy(DEV_POLICY)
    assert demo_keys_refusal(policy, DEV_POLICY, environ={TRUST_DEMO_KEYS: "1"}) is None
    for value in ("", "0", "true", "yes"):
        assert demo_keys_refusal(policy, DEV_POLICY, environ={TRUST_DEMO_KEYS: value}) is not None, value


def test_a_policy_without_demo_keys_starts_whatever_the_environment(tmp_path: Path) -> None:
    assert demo_keys_refusal(load_policy(SHIPPED_POLICY), SHIPPED_POLICY, environ={}) is None
    # A real key of a person's own, not marked demo: nothing to refuse.
    own = tmp_path / "own.toml"
    alice = (REPO_ROOT / "config" / "dev-keys" / "alice.pub").read_text().strip()
    own.write_text(f'extends = "{SHIPPED_POLICY}"\n[people.alice]\nkeys = ["{alice}"]\n')
    assert demo_keys_refusal(load_policy(own), own, environ={}) is None


def test_a_demo_service_is_named_too(tmp_path: Path) -> None:
    bob = (REPO_ROOT / "config" / "dev-keys" / "bob.pub").read_text().strip()
    path = tmp_path / "console.toml"
    path.write_text(
        f'extends = "{SHIPPED_POLICY}"\n[approvals.services.console]\nkeys = ["{bob}"]\ndemo = true\n'
    )
    refusal = demo_keys_refusal(load_policy(path), path, environ={})
    assert refusal is not None and ": approvals.services.console sign with demo keys" in refusal


def test_the_dev_stacks_children_trust_demo_keys(tmp_path: Path) -> None:
    settings = settings_on_free_ports(tmp_path)
    # Whatever the shell that ran `stanch dev` had (the tests set it): its children get it from the stack.
    saved = os.environ.pop(TRUST_DEMO_KEYS, None)
    try:
        assert not demo_keys_trusted()
        assert demo_keys_trusted(child_environment(settings))
    finally:
        if saved is not None:
            os.environ[TRUST_DEMO_KEYS] = saved
