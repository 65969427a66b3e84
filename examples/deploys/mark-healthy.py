#!/usr/bin/env python3
"""Mark the deployed commit healthy: an annotated tag `healthy/<when>` on the remote branch's head.

    mark-healthy.py [--repository DIR] [--remote origin] [--branch main] [--prefix healthy/] [--message TEXT]
                 [-- CHECK COMMAND...]

Run it when a deploy has passed its check, or give the check after `--` and it runs it first: the tag is
written only when the check exits 0. The tag is what Stanch's git adapter rolls back to, so only a deploy
that was really seen working may get one.

It fetches the remote, tags the head of `<remote>/<branch>` in the repository (the operator's checkout) and
pushes that one tag to the remote, never anything else. A head that already has a healthy tag is left as
it is (same answer, exit 0), so running it twice writes one tag.

On stdout one JSON object: `{"tag", "commit", "created"}`. Exit 0 tagged (or already tagged); 3 the check
failed, nothing tagged; 1 git failed. Standard library only; needs `git`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

CHECK_FAILED = 3


def git(*args: str, cwd: Path) -> str:
    environment = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}
    done = subprocess.run(
        ["git", *args], cwd=cwd, env=environment, capture_output=True, text=True, timeout=60, check=False
    )
    if done.returncode != 0:
        print(f"mark-healthy.py: git {' '.join(args)} failed: {done.stderr.strip()}", file=sys.stderr)
        raise SystemExit(1)
    return done.stdout.strip()


def healthy_tags(repository: Path, commit: str, prefix: str) -> list[str]:
    # Annotated tags only (`%(*objectname)`, the commit a tag object points at, is empty for a lightweight
    # one): a lightweight tag is not a record of a check.
    listed = git(
        "for-each-ref", "--format=%(*objectname) %(refname:short)", f"refs/tags/{prefix}", cwd=repository
    )
    return sorted(
        name for line in listed.splitlines() for peeled, name in [line.split(" ", 1)] if peeled == commit
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repository", type=Path, default=Path.cwd())
    parser.add_argument("--remote", default="origin")
    parser.add_argument("--branch", default="main")
    parser.add_argument("--prefix", default="healthy/")
    parser.add_argument("--message", default="")
    parser.add_argument("check", nargs=argparse.REMAINDER, help="after `--`: the deploy check to run first")
    options = parser.parse_args()
    repository = options.repository.resolve()
    check = options.check[1:] if options.check[:1] == ["--"] else options.check

    git("fetch", "--quiet", "--tags", options.remote, cwd=repository)
    commit = git(
        "rev-parse", "--verify", f"refs/remotes/{options.remote}/{options.branch}^{{commit}}", cwd=repository
    )
    existing = healthy_tags(repository, commit, options.prefix)
    if existing:
        print(json.dumps({"tag": existing[-1], "commit": commit, "created": False}))
        return
    if check:
        ran = subprocess.run(check, check=False)
        if ran.returncode != 0:
            print(
                f"mark-healthy.py: the check {check!r} exited {ran.returncode}; nothing tagged",
                file=sys.stderr,
            )
            raise SystemExit(CHECK_FAILED)
    tag = f"{options.prefix}{datetime.now(UTC):%Y%m%dT%H%M%SZ}"
    message = options.message or f"{commit[:12]} passed its deploy check" + (
        f": {' '.join(check)}" if check else ""
    )
    git("tag", "--annotate", tag, "-m", message, commit, cwd=repository)
    git("push", "--quiet", options.remote, f"refs/tags/{tag}", cwd=repository)
    print(json.dumps({"tag": tag, "commit": commit, "created": True}))


if __name__ == "__main__":
    main()
