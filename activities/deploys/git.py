"""Deploys and code on a real git deploy repository: `git log` for what changed, `git revert` to roll back.

    [systems.deploys]
    adapter = "git"
    services = { support-bot-api = { repository = "../deploy", remote = "origin", branch = "main" } }

Each service names its deploy repository (a path relative to the policy file's directory; `${VAR}` allowed)
and the remote and branch that hold what is deployed. A deploy that passed its check is marked by an
annotated tag `<healthy_tag_prefix><when>` (`healthy/20261201T101500Z`) on that branch; the last one is
"the last stable deploy":

- `recent_deploys`: the branch's first-parent commits since the last healthy tag, newest first, and the
  tagged commit itself. A commit whose change is in the running tree is `live` (the tagged one always, as
  what the others build on), one a later revert undid is `rolled_back`, a revert commit is `rollback`. So
  `RecentDeploys.rollback_possible` (two live) holds exactly when something not undone came after the tag.
- `rollback_service`: one commit on the branch that reverts every commit after the tag, newest first, so
  the files are the tagged commit's again; its message carries the reason and the trailer
  `Stanch-Idempotency-Key: <key>`; pushed to the remote, never forced. A key already on the remote branch
  is answered with that commit (`replayed=True`) and nothing is done. A push the remote rejects because it
  moved is rebased once onto it and pushed again; any other rejection (a hook, permissions) is a refusal
  with git's message. Nothing after the tag, a revert or rebase that conflicts: a refusal, nothing pushed.

The adapter works in clones of its own (under `work_dir`, by default `.stanch-work/` beside the
repository), one per repository and remote, serialized by a lock, and resets them to the remote before and
after every use: the operator's checkout is only read (for its remote's URL) and never touched.

What git cannot answer — infrastructure and external status, QA runs, hotfix builds — goes over the
documented HTTP contract as the `http` adapter does, with the same settings (`base_url`, `token_env`).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import hashlib
import os
import re
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field
from temporalio.exceptions import ApplicationError

from activities.adapters import AdapterContext, AdapterSettings, refused, require_idempotency_key
from activities.deploys.http import HttpDeploys
from activities.http import HttpSettings
from activities.processes import run_command
from schemas.deploys import DeployRecord, RecentDeploys, ServiceRequest, ServiceRollback
from schemas.systems import SystemCheck
from stanch.redact import REDACTED, scrub_known

KEY_TRAILER = "Stanch-Idempotency-Key"
ROLLS_BACK_TRAILER = "Stanch-Rolls-Back"
RESTORES_TRAILER = "Stanch-Restores"
# Git's own wording in a revert's message, which Stanch's revert commits use too: how a commit is known to
# have been undone, whoever reverted it.
REVERTS = re.compile(r"^This reverts commit ([0-9a-f]{40})\.?\s*$", re.MULTILINE)
# Credentials a remote's URL may carry (https://user:token@host/...) never reach an error message.
URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)[^/@\s]+@", re.IGNORECASE)
STDERR_KEPT = 2000


class GitService(BaseModel):
    """One service's deploy repository."""

    model_config = ConfigDict(extra="forbid")

    # The operator's checkout (or bare repository) of the deploy repository; only its remote's URL is read.
    repository: str = Field(min_length=1)
    # The remote, in that repository, that holds what is deployed: fetched from and pushed to.
    remote: str = Field("origin", min_length=1)
    branch: str = Field("main", min_length=1)
    healthy_tag_prefix: str = Field("healthy/", min_length=1)


class GitSettings(HttpSettings):
    """`[systems.deploys] adapter = "git"`: the http settings for what git cannot answer, plus these."""

    services: dict[str, GitService] = Field(default_factory=dict)
    # Where the adapter keeps its own clones; by default `.stanch-work/` beside each repository.
    work_dir: str | None = None
    # A service with no repository here: refused (the default), or asked over the HTTP contract.
    other_services: Literal["refuse", "http"] = "refuse"
    git: str = "git"
    # Per git command; a fetch or push that hangs on the network is killed and the activity retried.
    git_timeout_s: float = Field(20.0, gt=0, le=600)
    # How many commits after the healthy tag `recent_deploys` lists at most (the tagged one comes on top).
    history_limit: int = Field(50, ge=1, le=1000)
    author_name: str = "Stanch"
    author_email: str = "stanch@localhost"


class GitFailed(Exception):
    """A git command that exited non-zero; the caller decides whether that is a refusal or worth a retry."""

    def __init__(self, args: tuple[str, ...], returncode: int, stdout: str, stderr: str) -> None:
        super().__init__(f"git {' '.join(args[:2])} exited {returncode}: {scrubbed(stderr)}")
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr


@dataclass(frozen=True)
class Commit:
    sha: str
    short: str
    at: str
    parents: tuple[str, ...]
    tree: str
    message: str

    @property
    def reverted(self) -> list[str]:
        return REVERTS.findall(self.message)

    def trailer(self, key: str) -> str | None:
        prefix = f"{key}: "
        values = [
            line[len(prefix) :].strip() for line in self.message.splitlines() if line.startswith(prefix)
        ]
        return values[-1] if values else None


@dataclass(frozen=True)
class Clone:
    """The adapter's own clone of one service's remote, and which branch and tags of it matter."""

    service: str
    path: Path
    url: str
    branch: str
    prefix: str

    @property
    def tracking(self) -> str:
        return f"refs/remotes/origin/{self.branch}"


def scrubbed(text: str) -> str:
    text = URL_CREDENTIALS.sub(lambda match: f"{match['scheme']}{REDACTED}@", text)
    return scrub_known(text).strip()[-STDERR_KEPT:]


def _is_scp_like(url: str) -> bool:
    # user@host:path or host:path; a Windows drive letter is not a host.
    head, sep, _ = url.partition(":")
    return bool(sep) and "/" not in head and len(head) > 1


class GitDeploys(HttpDeploys):
    """The deploys system on real git deploy repositories; the rest of the contract over HTTP."""

    adapter: ClassVar[str] = "git"
    Settings: ClassVar[type[AdapterSettings]] = GitSettings

    def __init__(self, settings: AdapterSettings, context: AdapterContext) -> None:
        super().__init__(settings, context)
        assert isinstance(settings, GitSettings)
        self.git_settings = settings
        self._locks: dict[Path, asyncio.Lock] = {}

    # ---- the interface ----------------------------------------------------------------------------------

    async def recent_deploys(self, request: ServiceRequest) -> RecentDeploys:
        service = self.git_settings.services.get(request.service)
        if service is None:
            if self.git_settings.other_services == "http":
                return await super().recent_deploys(request)
            raise self._unknown(request.service, "recent deploys")
        async with self._clone(request.service, service) as clone:
            return RecentDeploys(service=request.service, deploys=await self._deploys(clone))

    async def rollback_service(self, request: ServiceRequest) -> ServiceRollback:
        service = self.git_settings.services.get(request.service)
        if service is None:
            if self.git_settings.other_services == "http":
                return await super().rollback_service(request)
            raise self._unknown(request.service, "rollback")
        key = request.idempotency_key
        what = f"rollback of {request.service}"
        require_idempotency_key(what, key)
        if "\n" in key or "\r" in key:
            raise refused(what, "an idempotency key must be one line to be a commit trailer")
        async with self._clone(request.service, service) as clone:
            # The clone starts and ends as the remote is, whatever an earlier use left behind.
            await self._restore(clone)
            try:
                return await self._roll_back(clone, request, what)
            finally:
                with contextlib.suppress(Exception):
                    await self._restore(clone)

    async def check(self) -> SystemCheck:
        problems: list[str] = []
        notes: list[str] = []
        for name, service in sorted(self.git_settings.services.items()):
            try:
                notes.append(await self._check_service(name, service))
            except Exception as error:
                problems.append(f"{name}: {scrubbed(str(error))}")
        http = await super().check()
        if not http.ok:
            problems.append(f"the HTTP contract (infra, external, QA, hotfix): {http.detail}")
        if not self.git_settings.services:
            problems.append("no service has a deploy repository (set services)")
        ok = not problems
        return self.checked(ok, "; ".join(problems if problems else [*notes, http.detail]))

    # ---- recent deploys ---------------------------------------------------------------------------------

    async def _deploys(self, clone: Clone) -> list[DeployRecord]:
        head = await self._rev(clone, clone.tracking)
        tag = await self._healthy_tag(clone)
        if tag is None:
            # Nothing is known to be healthy: the head is what runs, and there is nothing to go back to.
            [commit] = await self._log(clone, head, "-n", "1")
            return [self._record(clone, commit, "live", version=commit.short)]
        healthy = await self._rev(clone, f"{tag}^{{commit}}")
        after = await self._log(clone, f"{healthy}..{head}", "-n", str(self.git_settings.history_limit))
        [base] = await self._log(clone, healthy, "-n", "1")
        undone = {sha for commit in after for sha in commit.reverted}
        restored = bool(after) and after[0].tree == base.tree
        records = []
        for commit in after:
            if commit.reverted:
                status = "rollback"
            elif commit.sha in undone or restored:
                # Undone by a later revert, or the tree is the healthy one again however it got there.
                status = "rolled_back"
            else:
                status = "live"
            records.append(self._record(clone, commit, status, version=commit.short))
        records.append(self._record(clone, base, "live", version=tag))
        return records

    def _record(self, clone: Clone, commit: Commit, status: str, *, version: str) -> DeployRecord:
        return DeployRecord(
            id=commit.sha, service=clone.service, version=version, at=commit.at, status=status
        )

    # ---- rollback ---------------------------------------------------------------------------------------

    async def _roll_back(self, clone: Clone, request: ServiceRequest, what: str) -> ServiceRollback:
        key = request.idempotency_key
        done = await self._keyed(clone, key)
        if done is not None:
            return await self._answer(clone, done, replayed=True)

        tag = await self._healthy_tag(clone)
        if tag is None:
            raise refused(
                what,
                f"no annotated {clone.prefix}* tag on {clone.branch}: no deploy is known to be healthy",
            )
        head = await self._rev(clone, clone.tracking)
        healthy = await self._rev(clone, f"{tag}^{{commit}}")
        commits = await self._log(clone, f"{healthy}..{head}")
        if not commits:
            raise refused(what, f"nothing to roll back: {clone.branch} is at {tag}")
        if await self._same_tree(clone, healthy, head):
            raise refused(
                what, f"nothing to roll back: the files on {clone.branch} are already those of {tag}"
            )

        await self._git(clone.path, "checkout", "--quiet", "--force", "-B", clone.branch, clone.tracking)
        for commit in commits:
            mainline = ["-m", "1"] if len(commit.parents) > 1 else []
            try:
                await self._git(clone.path, "revert", "--no-commit", *mainline, commit.sha)
            except GitFailed as error:
                # A conflict, or a commit git cannot revert: the clone is reset by the caller.
                problem = scrubbed(error.stdout + error.stderr)
                raise refused(
                    what,
                    f"git revert {commit.short} stopped (a conflict, or a commit it cannot revert): {problem}",
                ) from None
        if not await self._index_is(clone, healthy):
            raise refused(what, f"reverting the commits after {tag} does not give back its files")
        message = self._message(clone, request, tag, head, commits)
        await self._git(clone.path, "commit", "--quiet", "--no-verify", "-F", "-", stdin=message)
        pushed, replayed = await self._push(clone, what, key=key, base=head)
        return await self._answer(clone, pushed, replayed=replayed)

    def _message(
        self, clone: Clone, request: ServiceRequest, tag: str, head: str, commits: list[Commit]
    ) -> str:
        # The reason may come from alert text: one line, so it can neither forge a trailer nor a
        # "This reverts commit" line.
        reason = " ".join(request.reason.split())[:500]
        listed = "\n".join(
            f"- {commit.short} {commit.message.splitlines()[0] if commit.message else ''}"
            for commit in commits
        )
        reverts = "\n".join(f"This reverts commit {commit.sha}." for commit in commits)
        return (
            f"Roll back {clone.service} to {tag}\n\n"
            + (f"Reason: {reason}\n\n" if reason else "")
            + f"Reverts the {len(commits)} commit(s) deployed after {tag}, newest first:\n{listed}\n\n"
            + f"{reverts}\n\n"
            + f"{ROLLS_BACK_TRAILER}: {head}\n{RESTORES_TRAILER}: {tag}\n{KEY_TRAILER}: {request.idempotency_key}\n"
        )

    async def _push(self, clone: Clone, what: str, *, key: str, base: str) -> tuple[Commit, bool]:
        """Push the revert commit, never forced; answer the commit now on the remote, and whether it was
        another attempt's. Rejected because the remote moved: rebase once onto it and push again.
        Rejected otherwise (a hook, permissions): refused with git's message."""
        for attempt in (1, 2):
            try:
                await self._git(
                    clone.path, "push", "--porcelain", "origin", f"HEAD:refs/heads/{clone.branch}"
                )
                [pushed] = await self._log(clone, "HEAD", "-n", "1")
                return pushed, False
            except GitFailed as error:
                rejected = [line for line in error.stdout.splitlines() if line.startswith("!")]
                if not rejected:
                    # The remote was not reached (network, timeout): worth a retry, which starts over.
                    raise RuntimeError(f"{what}: push failed: {scrubbed(error.stderr)}") from None
                detail = scrubbed(f"{' '.join(rejected)}\n{error.stderr}")
            await self._fetch(clone)
            moved = await self._rev(clone, clone.tracking) != base
            if not moved or attempt == 2:
                raise refused(what, f"the remote rejected the push: {detail}")
            # Another attempt with this key (a worker that lost its heartbeat) may be what moved it.
            done = await self._keyed(clone, key)
            if done is not None:
                return done, True
            try:
                await self._git(clone.path, "rebase", "--quiet", clone.tracking)
            except GitFailed as error:
                conflict = scrubbed(error.stdout + error.stderr)
                raise refused(
                    what, f"the remote moved and the rollback conflicts with it: {conflict}"
                ) from None
            base = await self._rev(clone, clone.tracking)
            if await self._rev(clone, "HEAD") == base:
                # The rebase dropped the revert as empty: what moved the remote undid the same commits.
                raise refused(
                    what,
                    f"nothing to roll back: {clone.branch} moved to {base[:12]}, which already "
                    "undoes these commits",
                )
        raise AssertionError("two attempts, each returns or raises")

    async def _keyed(self, clone: Clone, key: str) -> Commit | None:
        """The commit on the remote branch that carries this key's trailer, if any."""
        found = await self._log(
            clone, clone.tracking, "--fixed-strings", f"--grep={KEY_TRAILER}: {key}", first_parent=False
        )
        return next((commit for commit in found if commit.trailer(KEY_TRAILER) == key), None)

    async def _answer(self, clone: Clone, commit: Commit, *, replayed: bool) -> ServiceRollback:
        rolled = commit.trailer(ROLLS_BACK_TRAILER) or (commit.parents[0] if commit.parents else commit.sha)
        version = (await self._git(clone.path, "rev-parse", "--short", rolled)).strip()
        return ServiceRollback(
            id=commit.sha,
            service=clone.service,
            version=version,
            at=commit.at,
            status="rolled_back",
            restored_version=commit.trailer(RESTORES_TRAILER) or "",
            replayed=replayed,
        )

    # ---- check ------------------------------------------------------------------------------------------

    async def _check_service(self, name: str, service: GitService) -> str:
        repository = self.context.resolve(service.repository)
        if not repository.is_dir():
            raise FileNotFoundError(f"deploy repository {repository} does not exist")
        url = await self._remote_url(repository, service.remote)
        listed = await self._git(repository, "ls-remote", "--heads", "--tags", url)
        refs = {line.split("\t", 1)[1] for line in listed.splitlines() if "\t" in line}
        if f"refs/heads/{service.branch}" not in refs:
            raise LookupError(f"{scrubbed(url)} has no branch {service.branch}")
        # An annotated tag shows up peeled (`^{}`) in ls-remote; a lightweight one does not count.
        prefix = f"refs/tags/{service.healthy_tag_prefix}"
        healthy = sorted(ref for ref in refs if ref.startswith(prefix) and ref.endswith("^{}"))
        if not healthy:
            raise LookupError(f"{scrubbed(url)} has no annotated {service.healthy_tag_prefix}* tag")
        last = healthy[-1].removeprefix("refs/tags/").removesuffix("^{}")
        return f"{name}: {scrubbed(url)} {service.branch}, {len(healthy)} healthy tag(s), latest {last}"

    # ---- the clone ----------------------------------------------------------------------------------------

    def _unknown(self, service: str, what: str) -> ApplicationError:
        known = ", ".join(sorted(self.git_settings.services)) or "none"
        return refused(f"{what} of {service}", f"no deploy repository is configured for it (known: {known})")

    async def _remote_url(self, repository: Path, remote: str) -> str:
        try:
            url = (await self._git(repository, "remote", "get-url", remote)).strip()
        except GitFailed as error:
            raise refused(
                f"deploy repository {repository}", f"no remote {remote!r}: {scrubbed(error.stderr)}"
            ) from None
        if "://" in url or _is_scp_like(url) or Path(url).is_absolute():
            return url
        # A relative path is relative to the repository, not to wherever the worker runs.
        return str((repository / url).resolve())

    def _work_dir(self, repository: Path) -> Path:
        configured = self.git_settings.work_dir
        return self.context.resolve(configured) if configured else repository.parent / ".stanch-work"

    @contextlib.asynccontextmanager
    async def _clone(self, name: str, service: GitService) -> AsyncIterator[Clone]:
        """The adapter's clone of the service's remote, fetched, held under the repository's lock."""
        repository = self.context.resolve(service.repository)
        if not repository.is_dir():
            raise refused(f"deploys of {name}", f"deploy repository {repository} does not exist")
        url = await self._remote_url(repository, service.remote)
        digest = hashlib.sha256(url.encode()).hexdigest()[:12]
        path = self._work_dir(repository) / f"{repository.name}-{digest}"
        clone = Clone(name, path, url, service.branch, service.healthy_tag_prefix)
        lock = self._locks.setdefault(path, asyncio.Lock())
        async with lock, _file_lock(path.with_name(path.name + ".lock")):
            if not (path / ".git").is_dir():
                await self._make_clone(clone)
            await self._fetch(clone)
            try:
                await self._rev(clone, clone.tracking)
            except GitFailed:
                raise refused(f"deploys of {name}", f"{scrubbed(url)} has no branch {clone.branch}") from None
            yield clone

    async def _make_clone(self, clone: Clone) -> None:
        # Cloned next to where it goes and renamed, so a clone cut short is never taken for a whole one.
        clone.path.parent.mkdir(parents=True, exist_ok=True)
        partial = clone.path.with_name(clone.path.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        shutil.rmtree(clone.path, ignore_errors=True)
        try:
            await self._git(clone.path.parent, "clone", "--quiet", "--no-checkout", clone.url, str(partial))
        except GitFailed as error:
            raise RuntimeError(f"cloning {scrubbed(clone.url)}: {scrubbed(error.stderr)}") from None
        partial.rename(clone.path)

    async def _fetch(self, clone: Clone) -> None:
        try:
            await self._git(clone.path, "fetch", "--quiet", "--prune", "--prune-tags", "--force", "origin")
        except GitFailed as error:
            # Unreachable remote: retried. (A remote that does not exist at all shows up in check().)
            raise RuntimeError(f"fetching {scrubbed(clone.url)}: {scrubbed(error.stderr)}") from None

    async def _restore(self, clone: Clone) -> None:
        git_dir = clone.path / ".git"
        if (git_dir / "rebase-merge").exists() or (git_dir / "rebase-apply").exists():
            await self._git(clone.path, "rebase", "--abort", check=False)
        await self._git(clone.path, "revert", "--quit", check=False)
        await self._git(clone.path, "checkout", "--quiet", "--force", "-B", clone.branch, clone.tracking)
        await self._git(clone.path, "reset", "--quiet", "--hard", clone.tracking)
        await self._git(clone.path, "clean", "-fdxq")

    # ---- reading git ------------------------------------------------------------------------------------

    async def _healthy_tag(self, clone: Clone) -> str | None:
        """The nearest annotated healthy tag on the branch's first-parent line (lightweight tags ignored)."""
        try:
            found = await self._git(
                clone.path,
                "describe",
                "--first-parent",
                "--abbrev=0",
                f"--match={clone.prefix}*",
                clone.tracking,
            )
        except GitFailed:
            return None
        return found.strip() or None

    async def _rev(self, clone: Clone, name: str) -> str:
        return (await self._git(clone.path, "rev-parse", "--verify", "--quiet", name)).strip()

    async def _same_tree(self, clone: Clone, a: str, b: str) -> bool:
        trees = await self._git(clone.path, "rev-parse", f"{a}^{{tree}}", f"{b}^{{tree}}")
        first, second = trees.split()
        return first == second

    async def _index_is(self, clone: Clone, commit: str) -> bool:
        index = (await self._git(clone.path, "write-tree")).strip()
        return index == (await self._git(clone.path, "rev-parse", f"{commit}^{{tree}}")).strip()

    async def _log(self, clone: Clone, *args: str, first_parent: bool = True) -> list[Commit]:
        fields = "%H%x1f%h%x1f%cI%x1f%P%x1f%T%x1f%B"
        out = await self._git(
            clone.path,
            "log",
            *(["--first-parent"] if first_parent else []),
            "-z",
            f"--format={fields}",
            *args,
            "--",
        )
        commits = []
        for entry in out.split("\0"):
            if not entry.strip():
                continue
            sha, short, at, parents, tree, message = entry.lstrip("\n").split("\x1f", 5)
            commits.append(Commit(sha, short, at, tuple(parents.split()), tree, message))
        return commits

    async def _git(self, cwd: Path, *args: str, stdin: str | None = None, check: bool = True) -> str:
        """Run one git command, no shell, killed with its children after `git_timeout_s`."""
        environment = {
            **os.environ,
            **self.context.environ,
            "GIT_TERMINAL_PROMPT": "0",
            "LC_ALL": "C",
            "GIT_AUTHOR_NAME": self.git_settings.author_name,
            "GIT_AUTHOR_EMAIL": self.git_settings.author_email,
            "GIT_COMMITTER_NAME": self.git_settings.author_name,
            "GIT_COMMITTER_EMAIL": self.git_settings.author_email,
        }
        # Its own session (inside run_command): no terminal to prompt on (ssh asks /dev/tty), one group to kill.
        finished = await run_command(
            [self.git_settings.git, *args], environment, cwd, self.git_settings.git_timeout_s, stdin=stdin
        )
        if finished.timed_out:
            raise RuntimeError(f"git {args[0]} did not finish within {self.git_settings.git_timeout_s:g} s")
        stdout, stderr = finished.stdout, finished.stderr
        if check and finished.returncode != 0:
            raise GitFailed(args, finished.returncode or 0, stdout, stderr)
        return stdout


@contextlib.asynccontextmanager
async def _file_lock(path: Path) -> AsyncIterator[None]:
    """An exclusive lock two workers on one host share; polled, so a cancelled activity stops waiting."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        while True:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as error:
                if error.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                await asyncio.sleep(0.05)
        yield
    finally:
        os.close(descriptor)  # closing releases the lock
