"""The example deploy repository for `make dev`: examples/deploys/create-repo.py under the dev home, once.

Nothing keeps running: the worker's git adapter reads and pushes to the bare remote itself. A repository
already there is kept as it is, rollbacks and healthy tags included; delete `<home>` for a fresh one.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from stanch.ops.devstack.supervisor import Child, LogFn, StartupFailed
from stanch.settings import REPO_ROOT, Settings

CREATE_REPO = REPO_ROOT / "examples" / "deploys" / "create-repo.py"
SERVICE = "support-bot-api"  # the war room and rollback samples' service (stanch/ops/samples.py)


class ExampleDeploys:
    """`ExampleSystem` "deploys": a bare remote and an operator's checkout of it under `home`."""

    name = "deploys"

    def start(self, home: Path, settings: Settings, log: LogFn) -> Child | None:
        if (home / "remote.git").is_dir() and (home / "checkout" / ".git").is_dir():
            log(f"deploys: example deploy repository kept at {home}")
            return None
        try:
            created = subprocess.run(
                [sys.executable, str(CREATE_REPO), str(home), "--service", SERVICE],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            raise StartupFailed(f"deploys: {CREATE_REPO} did not run: {error}") from None
        if created.returncode != 0:
            detail = (created.stderr or created.stdout).strip().splitlines()
            raise StartupFailed(
                f"deploys: {CREATE_REPO} failed: {detail[-1] if detail else created.returncode}"
            )
        log(
            f"deploys: example deploy repository created at {home} ({SERVICE}, healthy tag, then a bad deploy)"
        )
        return None

    def environment(self, home: Path, settings: Settings) -> dict[str, str]:
        return {
            "STANCH_EXAMPLE_DEPLOYS_REPO": str(home / "checkout"),
            "STANCH_EXAMPLE_DEPLOYS_REMOTE": str(home / "remote.git"),
            "STANCH_EXAMPLE_DEPLOYS_WORK_DIR": str(home / "work"),
        }

    def describe(self, home: Path, settings: Settings) -> str:
        return f"{SERVICE}'s deploy repository, git adapter: remote {home / 'remote.git'}"
