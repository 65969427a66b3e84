"""examples/deploys/: the example deploy repository (create-repo.py), its healthy tags (mark-healthy.py) and the
dev stack's `ExampleDeploys`, read back with git itself; and the dev policy (config/dev.toml) opening a git
adapter whose check passes on it."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

from activities.adapters import AdapterContext, open_adapter
from stanch.ops.devstack.example_deploys import ExampleDeploys
from stanch.ops.devstack.examples import ExampleSystem
from stanch.settings import REPO_ROOT, Settings

EXAMPLE = REPO_ROOT / "examples" / "deploys"
DEV_POLICY = REPO_ROOT / "config" / "dev.toml"
HEALTHY = "healthy/20261119T113000Z"
IDENTITY = {"GIT_COMMITTER_NAME": "Op", "GIT_COMMITTER_EMAIL": "op@example.com"}


def git(cwd: Path, *args: str) -> str:
    environment = {**os.environ, **IDENTITY, "GIT_AUTHOR_NAME": "Op", "GIT_AUTHOR_EMAIL": "op@example.com"}
    done = subprocess.run(
        ["git", *args], cwd=cwd, env=environment, capture_output=True, text=True, check=True, timeout=60
    )
    return done.stdout.strip()


def script(name: str, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(EXAMPLE / name), *args],
        cwd=cwd,
        env={**os.environ, **IDENTITY},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_create_repo_makes_the_same_history_wherever_it_runs(tmp_path: Path) -> None:
    assert script("create-repo.py", str(tmp_path / "a")).returncode == 0
    assert script("create-repo.py", str(tmp_path / "b")).returncode == 0
    remote = tmp_path / "a" / "remote.git"

    subjects = git(remote, "log", "--format=%s", "main").splitlines()
    assert subjects == [
        "support-bot-api 1.42.0: switch the new checkout flow on",
        "support-bot-api 1.41.3: fix the invoice lookup timeout",
        "support-bot-api 1.41.0: first release on the deploy repository",
    ]
    # Annotated (a tag object), on the commit before the bad deploy.
    assert git(remote, "cat-file", "-t", HEALTHY) == "tag"
    assert git(remote, "rev-parse", f"{HEALTHY}^{{commit}}") == git(remote, "rev-parse", "main~1")
    assert git(remote, "rev-parse", "main", HEALTHY) == git(
        tmp_path / "b" / "remote.git", "rev-parse", "main", HEALTHY
    )
    checkout = tmp_path / "a" / "checkout"
    assert git(checkout, "rev-parse", "--abbrev-ref", "@{upstream}") == "origin/main"
    assert 'version = "1.42.0"' in (checkout / "services" / "support-bot-api" / "release.toml").read_text()

    again = script("create-repo.py", str(tmp_path / "a"))
    assert again.returncode == 0 and "left as it is" in again.stderr


def test_mark_healthy_tags_only_a_deploy_whose_check_passes_and_only_once(tmp_path: Path) -> None:
    script("create-repo.py", str(tmp_path))
    checkout, remote = tmp_path / "checkout", tmp_path / "remote.git"

    failed = script("mark-healthy.py", "--repository", str(checkout), "--", "false")
    assert failed.returncode == 3
    assert git(remote, "tag", "--list", "healthy/*").splitlines() == [HEALTHY]

    passed = script("mark-healthy.py", "--repository", str(checkout), "--", "true")
    assert passed.returncode == 0, passed.stderr
    tags = git(remote, "tag", "--list", "healthy/*").splitlines()
    [new] = [tag for tag in tags if tag != HEALTHY]
    assert git(remote, "cat-file", "-t", new) == "tag"
    assert git(remote, "rev-parse", f"{new}^{{commit}}") == git(remote, "rev-parse", "main")

    twice = script("mark-healthy.py", "--repository", str(checkout))
    assert twice.returncode == 0 and '"created": false' in twice.stdout
    assert git(remote, "tag", "--list", "healthy/*").splitlines() == tags


async def test_the_dev_stack_example_is_created_once_and_the_dev_snippet_checks_ok(
    tmp_path: Path, sandbox_url: str
) -> None:
    example: ExampleSystem = ExampleDeploys()
    home, lines = tmp_path / "examples" / "deploys", []
    settings = Settings(home=tmp_path)
    assert example.start(home, settings, lines.append) is None
    remote = home / "remote.git"
    # Something was deployed since: a second start keeps the repository as it is.
    git(
        home / "checkout",
        "commit",
        "--allow-empty",
        "-m",
        "a later deploy",
        "--author",
        "Op <op@example.com>",
    )
    git(home / "checkout", "push", "--quiet", "origin", "main")
    head = git(remote, "rev-parse", "main")
    example.start(home, settings, lines.append)
    assert git(remote, "rev-parse", "main") == head
    assert "kept" in lines[-1]

    environ = example.environment(home, settings)
    table = tomllib.loads(DEV_POLICY.read_text())["systems"]["deploys"]
    raw = {key: value for key, value in table.items() if key != "adapter"}
    adapter = open_adapter(
        "deploys",
        table["adapter"],
        raw,
        AdapterContext(sandbox_url, base_dir=REPO_ROOT / "config", environ=environ),
    )
    checked = await adapter.check()
    assert checked.ok, checked.detail
    assert HEALTHY in checked.detail and str(remote) in checked.detail
