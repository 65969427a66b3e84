"""The worker refuses to start when a role a runbook uses is missing from the policy: one line, both named."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from stanch.settings import REPO_ROOT, Settings
from workers.worker import run_worker


async def test_a_policy_missing_a_role_stops_the_worker_with_one_line_naming_runbook_and_role(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shipped = (REPO_ROOT / "config" / "stanch.toml").read_text()
    # The war room assembles qa; everything else in the shipped policy stays as it is.
    without_qa, removed = re.subn(r"\n\[roles\.qa\][^\n]*\npeople = \[[^\]]*\]\n", "\n", shipped)
    assert removed == 1
    config = tmp_path / "stanch.toml"
    config.write_text(without_qa)

    with pytest.raises(SystemExit) as stopped:
        await run_worker(settings.model_copy(update={"config": config}))

    assert stopped.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines() == [
        f"stanch: policy file {config}: runbook war_room uses role 'qa', which [roles] does not define "
        "(add [roles.qa] people = [...])"
    ]


async def test_the_shipped_policy_passes_the_role_check(settings: Settings) -> None:
    from stanch.policy import load_policy_or_exit
    from workflows.registry import RUNBOOKS, roles_used

    policy = load_policy_or_exit(REPO_ROOT / "config" / "stanch.toml", set(RUNBOOKS), roles_used())
    assert set(policy.roles) >= {role for roles in roles_used().values() for role in roles}
