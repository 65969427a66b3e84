"""The deploys system's git adapter on real repositories: a bare remote and an operator's checkout made by
examples/deploys/create-repo.py (support-bot-api 1.41.3 tagged healthy, then the bad 1.42.0), real `git`
for every effect, pre-receive hooks in the remote for the pushes it rejects.

What is asserted is read from git itself: the remote's commits, trees and files, the adapter's clone's
status, the operator's checkout left as it was.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from temporalio.exceptions import ApplicationError

from activities.adapters import AdapterConfigError, AdapterContext, open_adapter
from activities.deploys.git import GitDeploys
from schemas.approvals import ApprovalAnswer
from schemas.deploys import ServiceRequest
from schemas.severity import Severity
from stanch.settings import REPO_ROOT, Settings
from tests.helpers import Incidents, Running, audit_rows, new_service, until_state

# Slow tier (`make test` runs it, `make test-fast` does not): real git repositories and pushes per test (~7 s).
pytestmark = pytest.mark.slow

EXAMPLE = REPO_ROOT / "examples" / "deploys"
SERVICE = "support-bot-api"
RELEASE = f"services/{SERVICE}/release.toml"
HEALTHY = "healthy/20261119T113000Z"
# The commits' author, for the commits the tests push as "someone else".
SOMEONE = {
    "GIT_AUTHOR_NAME": "Sam Else",
    "GIT_AUTHOR_EMAIL": "sam@example.com",
    "GIT_COMMITTER_NAME": "Sam Else",
    "GIT_COMMITTER_EMAIL": "sam@example.com",
}


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", *args],
        cwd=cwd,
        env={**os.environ, **SOMEONE, "GIT_TERMINAL_PROMPT": "0"},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, f"git {' '.join(args)}: {done.stderr}"
    return done.stdout.strip()


@dataclass
class DeployRepo:
    root: Path
    remote: Path
    checkout: Path

    def head(self) -> str:
        return git(self.remote, "rev-parse", "main")

    def commits(self) -> list[str]:
        return git(self.remote, "rev-list", "main").split()

    def show(self, path: str, rev: str = "main") -> str:
        return git(self.remote, "show", f"{rev}:{path}")

    def tree(self, rev: str) -> str:
        return git(self.remote, "rev-parse", f"{rev}^{{tree}}")

    def message(self, rev: str = "main") -> str:
        return git(self.remote, "log", "-1", "--format=%B", rev)

    def hook(self, body: str) -> None:
        hook = self.remote / "hooks" / "pre-receive"
        hook.write_text("#!/bin/sh\n" + textwrap.dedent(body))
        hook.chmod(0o755)

    def unhook(self) -> None:
        (self.remote / "hooks" / "pre-receive").unlink()

    def someone_commits(self, path: str, content: str, subject: str, *, push_to: str = "main") -> str:
        """A commit by someone else on top of the remote's main, pushed to `push_to`; its sha."""
        work = self.root / f"someone-{uuid.uuid4().hex[:6]}"
        git(self.root, "clone", "--quiet", str(self.remote), str(work))
        (work / path).write_text(content, encoding="utf-8")
        git(work, "commit", "--quiet", "--all", "-m", subject)
        git(work, "push", "--quiet", "origin", f"HEAD:refs/heads/{push_to}")
        return git(work, "rev-parse", "HEAD")

    def moves_during_the_next_push(self, sha: str) -> None:
        """A pre-receive hook that, once, moves main to `sha` while a push is being received: the push
        loses the race the way it does when another deploy lands first (`failed to update ref`)."""
        self.hook(
            f"""\
            if [ ! -e "$GIT_DIR/moved-once" ]; then
              touch "$GIT_DIR/moved-once"
              # Outside the push's quarantine, as the other deploy's own push would be.
              env -u GIT_QUARANTINE_PATH -u GIT_OBJECT_DIRECTORY -u GIT_ALTERNATE_OBJECT_DIRECTORIES \\
                git update-ref refs/heads/main {sha}
            fi
            """
        )


def mark_healthy(repo: DeployRepo) -> subprocess.CompletedProcess[str]:
    """examples/deploys/mark-healthy.py in the operator's checkout, its deploy check passing."""
    script = [
        sys.executable,
        str(EXAMPLE / "mark-healthy.py"),
        "--repository",
        str(repo.checkout),
        "--",
        "true",
    ]
    env = {**os.environ, **SOMEONE}
    return subprocess.run(script, env=env, capture_output=True, text=True, check=True, timeout=60)


@pytest.fixture
def repo(tmp_path: Path) -> DeployRepo:
    root = tmp_path / "deploys"
    subprocess.run(
        [sys.executable, str(EXAMPLE / "create-repo.py"), str(root)], check=True, capture_output=True
    )
    return DeployRepo(root, root / "remote.git", root / "checkout")


def open_git(repo: DeployRepo, platform_url: str = "http://127.0.0.1:9", **settings: Any) -> GitDeploys:
    raw: dict[str, Any] = {
        "services": {SERVICE: {"repository": "deploys/checkout"}},
        "work_dir": "work",
        **settings,
    }
    adapter = open_adapter("deploys", "git", raw, AdapterContext(platform_url, base_dir=repo.root.parent))
    assert isinstance(adapter, GitDeploys)
    return adapter


def rollback(key: str, reason: str = "HTTP 500 since 1.42.0") -> ServiceRequest:
    return ServiceRequest(service=SERVICE, idempotency_key=key, reason=reason)


def gone_within(pid: int, seconds: float) -> bool:
    """The process ended (gone, or a zombie waiting to be reaped) within `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return True
        if state == "Z":
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


def clone_of(repo: DeployRepo) -> Path:
    [clone] = [path for path in (repo.root.parent / "work").iterdir() if (path / ".git").is_dir()]
    return clone


def assert_clean(repo: DeployRepo) -> None:
    """The adapter's clone is exactly the remote's main: nothing staged, changed, untracked or in progress."""
    clone = clone_of(repo)
    assert git(clone, "status", "--porcelain", "--untracked-files=all") == ""
    assert git(clone, "rev-parse", "HEAD") == repo.head()
    git_dir = clone / ".git"
    assert not any((git_dir / name).exists() for name in ("REVERT_HEAD", "sequencer", "rebase-merge"))


# ---- recent deploys -------------------------------------------------------------------------------------


async def test_recent_deploys_are_the_commits_since_the_healthy_tag_newest_first(repo: DeployRepo) -> None:
    deploys = await open_git(repo).recent_deploys(ServiceRequest(service=SERVICE))

    healthy = git(repo.remote, "rev-parse", f"{HEALTHY}^{{commit}}")
    assert [(d.id, d.status) for d in deploys.deploys] == [(repo.head(), "live"), (healthy, "live")]
    assert deploys.deploys[0].version == git(repo.remote, "rev-parse", "--short", "main")
    assert deploys.deploys[1].version == HEALTHY
    assert [d.at for d in deploys.deploys] == ["2026-11-21T09:12:00+00:00", "2026-11-19T11:05:00+00:00"]
    # What the war room reads: 1.42.0 is live and there is a healthy deploy before it.
    assert deploys.live is not None and deploys.live.id == repo.head()
    assert deploys.rollback_possible


async def test_recent_deploys_see_what_was_pushed_since_the_last_look(repo: DeployRepo) -> None:
    adapter = open_git(repo)
    await adapter.recent_deploys(ServiceRequest(service=SERVICE))
    pushed = repo.someone_commits("README.md", "# Deploy repository\n\nNow with more words.\n", "docs")

    deploys = await adapter.recent_deploys(ServiceRequest(service=SERVICE))

    assert deploys.deploys[0].id == pushed and len(deploys.deploys) == 3


async def test_a_head_marked_healthy_leaves_nothing_to_roll_back(repo: DeployRepo) -> None:
    marked = mark_healthy(repo)
    assert '"created": true' in marked.stdout
    adapter = open_git(repo)

    deploys = await adapter.recent_deploys(ServiceRequest(service=SERVICE))
    assert [d.id for d in deploys.deploys] == [repo.head()] and deploys.deploys[0].version.startswith(
        "healthy/"
    )
    assert not deploys.rollback_possible

    with pytest.raises(ApplicationError) as refused:
        await adapter.rollback_service(rollback("k-nothing"))
    assert refused.value.non_retryable and "nothing to roll back" in str(refused.value)
    assert repo.commits()[0] == git(repo.checkout, "rev-parse", "HEAD")


# ---- rollback -------------------------------------------------------------------------------------------


async def test_one_rollback_is_one_revert_commit_on_the_remote_with_the_healthy_files(
    repo: DeployRepo,
) -> None:
    before = repo.commits()
    operator_head = git(repo.checkout, "rev-parse", "HEAD")
    adapter = open_git(repo)

    result = await adapter.rollback_service(rollback("incident-x:rollback-deploy"))

    after = repo.commits()
    assert after[1:] == before  # exactly one new commit, on top: nothing rewritten
    assert result.id == after[0] and not result.replayed
    assert result.restored_version == HEALTHY and result.status == "rolled_back"
    assert result.version == git(repo.remote, "rev-parse", "--short", before[0])
    assert repo.tree("main") == repo.tree(HEALTHY)
    assert 'version = "1.41.3"' in repo.show(RELEASE) and "new-checkout = false" in repo.show(RELEASE)
    message = repo.message()
    assert message.splitlines()[0] == f"Roll back {SERVICE} to {HEALTHY}"
    assert "Reason: HTTP 500 since 1.42.0" in message
    trailers = git(repo.remote, "log", "-1", "--format=%(trailers:only,unfold)", "main")
    assert "Stanch-Idempotency-Key: incident-x:rollback-deploy" in trailers
    # The operator's checkout was only read.
    assert git(repo.checkout, "rev-parse", "HEAD") == operator_head
    assert git(repo.checkout, "status", "--porcelain") == ""
    assert_clean(repo)

    # The war room's next look: the bad deploy rolled back, the healthy one live, nothing more to undo.
    deploys = await adapter.recent_deploys(ServiceRequest(service=SERVICE))
    assert [d.status for d in deploys.deploys] == ["rollback", "rolled_back", "live"]
    assert deploys.live is not None and deploys.live.version == HEALTHY
    assert not deploys.rollback_possible
    with pytest.raises(ApplicationError, match="nothing to roll back"):
        await adapter.rollback_service(rollback("another-key"))
    assert repo.commits() == after


async def test_a_retry_with_the_same_key_creates_nothing(repo: DeployRepo, tmp_path: Path) -> None:
    first = await open_git(repo).rollback_service(rollback("k-retry"))
    commits = repo.commits()

    again = await open_git(repo).rollback_service(rollback("k-retry"))
    # A worker on another host, with a clone of its own, finds it on the remote too.
    elsewhere = await open_git(repo, work_dir=str(tmp_path / "elsewhere")).rollback_service(
        rollback("k-retry")
    )

    assert repo.commits() == commits
    for answer in (again, elsewhere):
        assert answer.replayed and answer.id == first.id
        assert (answer.version, answer.restored_version) == (first.version, first.restored_version)


async def test_a_push_the_remote_hook_rejects_is_a_refusal_with_its_message(repo: DeployRepo) -> None:
    repo.hook("""\
        echo "deploys are frozen until the release review" >&2
        exit 1
        """)
    before = repo.commits()
    adapter = open_git(repo)

    with pytest.raises(ApplicationError) as refused:
        await adapter.rollback_service(rollback("k-frozen"))

    assert refused.value.non_retryable
    assert "deploys are frozen until the release review" in str(refused.value)
    assert "pre-receive hook declined" in str(refused.value)
    assert repo.commits() == before
    assert_clean(repo)

    # Refused means nothing was done: once the freeze is lifted, the same key rolls back.
    repo.unhook()
    done = await adapter.rollback_service(rollback("k-frozen"))
    assert not done.replayed and repo.commits()[1:] == before


async def test_a_push_that_hangs_is_killed_and_retried_not_refused(repo: DeployRepo) -> None:
    pid_file = repo.root / "hook.pid"
    repo.hook(f"""\
        echo $$ > {pid_file}
        exec sleep 60
        """)
    before = repo.commits()
    started = time.monotonic()

    with pytest.raises(Exception) as failed:
        await open_git(repo, git_timeout_s=1).rollback_service(rollback("k-hang"))

    assert time.monotonic() - started < 20
    assert not (isinstance(failed.value, ApplicationError) and failed.value.non_retryable)
    assert "did not finish within 1 s" in str(failed.value)
    # The hook's process went with git: killed as one process group, not left running.
    assert gone_within(int(pid_file.read_text()), seconds=5)
    assert repo.commits() == before
    assert_clean(repo)

    # Temporal's retry, once the remote answers again, rolls back once.
    repo.unhook()
    done = await open_git(repo).rollback_service(rollback("k-hang"))
    assert not done.replayed and repo.commits()[1:] == before


async def test_a_remote_that_moved_meanwhile_gets_the_revert_rebased_onto_it(repo: DeployRepo) -> None:
    bad = repo.head()
    docs = repo.someone_commits(
        "README.md", "# Deploy repository\n\nRead me first.\n", "docs", push_to="side"
    )
    repo.moves_during_the_next_push(docs)

    result = await open_git(repo).rollback_service(rollback("k-moved"))

    assert repo.commits()[:3] == [result.id, docs, bad]
    assert repo.show(RELEASE) == repo.show(RELEASE, HEALTHY)  # the service is back to healthy
    assert repo.show("README.md") == "# Deploy repository\n\nRead me first."  # and the other deploy kept
    assert_clean(repo)


async def test_a_remote_that_moved_with_a_conflicting_change_is_refused_and_the_tree_left_clean(
    repo: DeployRepo,
) -> None:
    bumped = repo.show(RELEASE).replace('version = "1.42.0"', 'version = "1.42.1"')
    hotfix = repo.someone_commits(RELEASE, bumped, "support-bot-api 1.42.1", push_to="side")
    repo.moves_during_the_next_push(hotfix)

    with pytest.raises(ApplicationError) as refused:
        await open_git(repo).rollback_service(rollback("k-conflict"))

    assert refused.value.non_retryable and "conflict" in str(refused.value).lower()
    assert repo.head() == hotfix and 'version = "1.42.1"' in repo.show(RELEASE)
    assert_clean(repo)


async def test_an_unknown_service_is_refused_and_other_services_may_go_over_http(
    repo: DeployRepo, sandbox_url: str
) -> None:
    with pytest.raises(ApplicationError) as refused:
        await open_git(repo).recent_deploys(ServiceRequest(service="billing-api"))
    assert refused.value.non_retryable and SERVICE in str(refused.value)

    service = new_service(sandbox_url, ["3.0.0", "3.1.0"])
    over_http = open_git(repo, platform_url=sandbox_url, other_services="http")
    deploys = await over_http.recent_deploys(ServiceRequest(service=service, idempotency_key="k-read"))
    assert [d.version for d in deploys.deploys] == ["3.1.0", "3.0.0"]


async def test_an_empty_key_is_refused_before_git_is_touched(repo: DeployRepo) -> None:
    with pytest.raises(ApplicationError) as refused:
        await open_git(repo).rollback_service(ServiceRequest(service=SERVICE))
    assert refused.value.non_retryable and refused.value.type == "IdempotencyKeyMissing"
    assert not (repo.root.parent / "work").exists()


# ---- check and settings ---------------------------------------------------------------------------------


async def test_check_says_repository_remote_and_healthy_tag(repo: DeployRepo, sandbox_url: str) -> None:
    good = await open_git(repo, platform_url=sandbox_url).check()
    assert good.ok, good.detail
    assert HEALTHY in good.detail

    missing = await open_git(
        repo, platform_url=sandbox_url, services={SERVICE: {"repository": "nowhere"}}
    ).check()
    assert not missing.ok and "does not exist" in missing.detail

    git(repo.remote, "tag", "--delete", HEALTHY)
    untagged = await open_git(repo, platform_url=sandbox_url).check()
    assert not untagged.ok and "no annotated healthy/* tag" in untagged.detail

    repo.remote.rename(repo.remote.with_name("gone.git"))
    unreachable = await open_git(repo, platform_url=sandbox_url).check()
    assert not unreachable.ok and SERVICE in unreachable.detail


def test_a_service_setting_it_does_not_know_stops_the_worker_naming_it(repo: DeployRepo) -> None:
    with pytest.raises(AdapterConfigError, match=r"services\.support-bot-api\.brnach"):
        open_git(repo, services={SERVICE: {"repository": "deploys/checkout", "brnach": "main"}})


def test_settings_take_the_repository_from_the_environment(repo: DeployRepo) -> None:
    os.environ["STANCH_TEST_DEPLOYS_REPO"] = str(repo.checkout)
    try:
        adapter = open_git(repo, services={SERVICE: {"repository": "${STANCH_TEST_DEPLOYS_REPO}"}})
    finally:
        del os.environ["STANCH_TEST_DEPLOYS_REPO"]
    assert adapter.git_settings.services[SERVICE].repository == str(repo.checkout)


# ---- the rollback runbook on the git adapter ------------------------------------------------------------


@pytest.fixture
def settings(settings: Settings, repo: DeployRepo, tmp_path: Path) -> Settings:
    """conftest's settings with a policy whose deploys system is this test's repository, so conftest's
    `stanch` worker acts on it through the git adapter."""
    policy = tmp_path / "stanch.toml"
    policy.write_text(
        f'extends = "{REPO_ROOT / "config" / "stanch.toml"}"\n\n'
        "[systems.deploys]\n"
        'adapter = "git"\n'
        'work_dir = "work"\n'
        f'services = {{ {SERVICE} = {{ repository = "{repo.checkout}" }} }}\n'
    )
    return settings.model_copy(update={"config": policy})


async def test_the_rollback_runbook_on_git_ends_with_one_revert_commit_on_the_remote(
    stanch: Running, incidents: Incidents, repo: DeployRepo
) -> None:
    before = repo.commits()
    handle = await incidents.open(
        "rollback",
        alertname="RollbackRequested",
        annotations={"summary": f"roll back {SERVICE} (code)"},
        severity=Severity.P1,
        service=SERVICE,
        target={"service": SERVICE, "kind": "code"},
        fingerprint=uuid.uuid4().hex[:8],
    )
    brief = await until_state(handle, "awaiting_approval")
    # The live deploy the runbook found with `git log`.
    assert git(repo.remote, "rev-parse", "--short", "main") in brief.recommendation

    await handle.signal("approve", ApprovalAnswer(approver="alice", action="rollback-deploy", comment="go"))
    result = await handle.result()

    assert result.final_state == "rolled_back"
    assert repo.commits()[1:] == before
    assert repo.tree("main") == repo.tree(HEALTHY)
    assert f"Stanch-Idempotency-Key: {handle.id}/" in repo.message()
    assert "Reason: go" in repo.message()
    rows = audit_rows(stanch.settings, handle.id)
    assert [r["step_key"] for r in rows] == [
        "find-deploy",
        "gate1-requested",
        "gate1-decision",
        "rollback-deploy",
        "closed",
    ]


async def test_the_war_room_on_git_finds_the_bad_deploy_and_rolls_it_back_with_one_revert_commit(
    stanch: Running, incidents: Incidents, repo: DeployRepo
) -> None:
    before = repo.commits()
    handle = await incidents.open(
        "war_room",
        alertname="ProductionDown",
        annotations={"summary": f"{SERVICE} answers 500 to most users"},
        severity=Severity.P1,
        service=SERVICE,
        target={"service": SERVICE},
        fingerprint=uuid.uuid4().hex[:8],
    )
    brief = await until_state(handle, "awaiting_approval")
    short = git(repo.remote, "rev-parse", "--short", "main")
    # Triage read `git log`: the bad deploy is the live one, and the healthy tag is there to go back to.
    assert f"last deploy {short} at 2026-11-21T09:12:00+00:00" in brief.summary
    assert brief.awaiting is not None and "'rollback'" in brief.awaiting

    await handle.signal("approve", ApprovalAnswer(approver="alice", action="rollback", comment="bad deploy"))
    result = await handle.result()

    assert result.final_state == "resolved" and result.resolved_by == "qa-gate"
    assert repo.commits()[1:] == before
    assert repo.tree("main") == repo.tree(HEALTHY)
    assert f"Stanch-Idempotency-Key: {handle.id}/" in repo.message()
