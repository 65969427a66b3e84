#!/usr/bin/env python3
"""Create the example deploy repository: a bare remote and an operator's checkout of it, for one service.

    create-repo.py <dir> [--service support-bot-api]

`<dir>/remote.git` is the deploy remote (what "deployed" means: its `main`), `<dir>/checkout` a clone of
it, as an operator keeps one. The history is the war room's demo: the service at 1.41.3 passed its check
and was tagged `healthy/20261119T113000Z` (annotated), then 1.42.0 switched the new checkout on, and that
is the deploy that broke production. Stanch's git adapter rolls it back by reverting what came after the
tag; `mark-healthy.py` writes the next tag once a deploy passes its check.

Commit and tag dates are fixed, so the repository is the same, sha for sha, wherever it is created. A
directory that already holds a `remote.git` is left alone (exit 0, said on stderr). Standard library
only; needs `git`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

IDENTITY = {"name": "Dana Deployer", "email": "dana@example.com"}
HEALTHY_TAG = "healthy/20261119T113000Z"


def release(service: str, version: str, new_checkout: bool) -> str:
    return (
        f'service = "{service}"\n'
        f'version = "{version}"\n'
        f'image = "registry.example.com/{service}:{version}"\n'
        "replicas = 3\n"
        "\n"
        "[features]\n"
        f"new-checkout = {'true' if new_checkout else 'false'}\n"
    )


# Oldest first: (committer date, version, new checkout on, subject). The second one is the healthy deploy.
HISTORY = [
    ("2026-11-17T10:20:00+00:00", "1.41.0", False, "first release on the deploy repository"),
    ("2026-11-19T11:05:00+00:00", "1.41.3", False, "fix the invoice lookup timeout"),
    ("2026-11-21T09:12:00+00:00", "1.42.0", True, "switch the new checkout flow on"),
]
HEALTHY_AFTER = 1  # index in HISTORY of the commit the healthy tag marks
TAGGED_AT = "2026-11-19T11:30:00+00:00"


def git(*args: str, cwd: Path, at: str | None = None) -> str:
    environment = {
        **os.environ,
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_AUTHOR_NAME": IDENTITY["name"],
        "GIT_AUTHOR_EMAIL": IDENTITY["email"],
        "GIT_COMMITTER_NAME": IDENTITY["name"],
        "GIT_COMMITTER_EMAIL": IDENTITY["email"],
        # The user's own git config (signing, hooks, templates) must not change what is created.
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
    }
    if at is not None:
        environment["GIT_AUTHOR_DATE"] = environment["GIT_COMMITTER_DATE"] = at
    done = subprocess.run(
        ["git", *args], cwd=cwd, env=environment, capture_output=True, text=True, timeout=60, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"create-repo.py: git {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout.strip()


def create(target: Path, service: str) -> dict[str, str]:
    remote, checkout = target / "remote.git", target / "checkout"
    target.mkdir(parents=True, exist_ok=True)
    git("init", "--quiet", "--bare", "--initial-branch=main", str(remote), cwd=target)
    git("init", "--quiet", "--initial-branch=main", str(checkout), cwd=target)
    git("remote", "add", "origin", str(remote), cwd=checkout)
    (checkout / "README.md").write_text(
        "# Deploy repository\n\nWhat is on `main` is what runs. `services/<service>/release.toml` says which "
        "version of a service is deployed and with which features. A deploy that passed its check is "
        "tagged `healthy/<when>` (annotated).\n",
        encoding="utf-8",
    )
    path = checkout / "services" / service / "release.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    for index, (at, version, new_checkout, subject) in enumerate(HISTORY):
        path.write_text(release(service, version, new_checkout), encoding="utf-8")
        git("add", "--all", cwd=checkout)
        git("commit", "--quiet", "-m", f"{service} {version}: {subject}", cwd=checkout, at=at)
        if index == HEALTHY_AFTER:
            message = f"{service} {version} passed its deploy check"
            git("tag", "--annotate", HEALTHY_TAG, "-m", message, cwd=checkout, at=TAGGED_AT)
    git("push", "--quiet", "--follow-tags", "origin", "main", cwd=checkout)
    git("branch", "--quiet", "--set-upstream-to=origin/main", "main", cwd=checkout)
    return {
        "remote": str(remote),
        "checkout": str(checkout),
        "service": service,
        "healthy_tag": HEALTHY_TAG,
        "head": git("rev-parse", "HEAD", cwd=checkout),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", type=Path)
    parser.add_argument("--service", default="support-bot-api")
    options = parser.parse_args()
    target = options.directory.resolve()
    if (target / "remote.git").exists():
        print(f"create-repo.py: {target / 'remote.git'} exists; left as it is", file=sys.stderr)
        return
    print(json.dumps(create(target, options.service)))


if __name__ == "__main__":
    main()
