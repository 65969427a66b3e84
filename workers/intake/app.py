"""HTTP intake: POST /alerts/<source> → signal-with-start `incident-<route>-<dedupe key>`.

What a request goes through, in order, and what stops it:
  bearer token (401) → known source (404) → body size (413) → HMAC signature (401) → JSON (400)
  → the source's format at all (422) → Temporal (503 while unreachable, so the sender retries)
  → 202 with one entry per alert.
The intake refuses only what is not an alert: every item of a body that is the format becomes an incident,
a repeat of one, or a triage incident that pages a human (an alert no route takes, a route cannot act on,
or whose fields cannot be read). A 4xx is never retried by Alertmanager, so a 4xx for an alert loses a page.
With `[intake] unroutable = "audit"` the old rules hold: unrouted alerts are only audited, and a body with
one bad alert is a 422 that starts none of them. Everything that can refuse a request runs before anything
is started, so a refused body starts nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import Sequence
from datetime import timedelta
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from temporalio.api.workflowservice.v1 import SignalWithStartWorkflowExecutionResponse
from temporalio.client import Client, WorkflowHandle
from temporalio.common import Priority, WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from schemas.alerts import Alert, AlertBatch, AlertStatus
from schemas.severity import Severity
from schemas.triage import TRIAGE_WORKFLOW
from stanch.markup import temporal_ui_text
from stanch.metrics import instrument_intake_metrics
from stanch.policy import Policy
from stanch.settings import Settings
from stanch.telemetry import instrument_intake, setup_tracing_from_env
from stanch.temporal_client import connect
from workers.intake.parsers import PARSERS, READERS, NotTheFormat
from workers.intake.routing import RoutedAlert, RoutingError, refused_to_triage, route_alert, route_item

Action = Literal["started", "signalled", "ignored", "unrouted", "duplicate", "triage"]

SIGNATURE_HEADER = "X-Stanch-Signature"
UNROUTED_WORKFLOW = "unrouted_alert"
# While Temporal is unreachable, answer 503 within seconds: a sender waiting on us holds its own queue.
CONNECT_TIMEOUT = timedelta(seconds=5)
RPC_TIMEOUT = timedelta(seconds=5)
# Alerts of one body for different incidents go to Temporal in parallel, this many at a time.
MAX_PARALLEL_PER_REQUEST = 16
# A 422 names at most this many fields; the first few are what a human fixes first.
MAX_ERRORS_REPORTED = 10
# Temporal refuses user metadata over 400 bytes (summary) and 20,000 bytes (details) by default, counted
# on the encoded payload; alert names and summaries come from the sender and can be any length.
SUMMARY_BYTES = 300
DETAILS_BYTES = 4_000
# Temporal task priority by the incident's severity (lower goes first; 3 is Temporal's default): when the
# task queue is backlogged, a P0's workflow tasks, and the activities that inherit its priority, are handed
# to the worker before those of P1-P3 incidents. The dev server 1.32 honours it without dynamic config
# (bench/README.md, "Task priorities").
TASK_PRIORITY = {Severity.P0: 1, Severity.P1: 2, Severity.P2: 3, Severity.P3: 4}
# How many incidents the intake remembers having opened or signalled: a later firing alert for one of them
# is a repeat it may batch. Beyond this the oldest are forgotten (their next alert goes out on its own).
KNOWN_INCIDENTS = 10_000


class IncidentAction(BaseModel):
    workflow_id: str
    runbook: str | None
    action: Action
    alert: str
    fingerprint: str
    status: str


class Delivered(BaseModel):
    """What became of one alert at Temporal: which workflow holds it now, and how it got there."""

    workflow_id: str
    runbook: str | None
    action: Action


class IntakeResponse(BaseModel):
    incidents: list[IncidentAction]


class FieldError(BaseModel):
    field: str
    error: str


def problem(
    status: int, errors: Sequence[tuple[str, str]], headers: dict[str, str] | None = None
) -> JSONResponse:
    detail = [FieldError(field=field, error=error).model_dump() for field, error in errors]
    return JSONResponse(status_code=status, content={"detail": detail}, headers=headers)


class TemporalUnavailable(Exception):
    """Temporal cannot take the request now (down, unreachable, overloaded): the sender must retry."""


class TemporalRefused(Exception):
    """Temporal refused one alert as invalid; retrying the same body cannot help."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def _unavailable(error: RPCError) -> TemporalUnavailable | None:
    """Every RPC failure is worth a retry except a request Temporal calls invalid."""
    if error.status is RPCStatusCode.INVALID_ARGUMENT:
        return None
    return TemporalUnavailable(
        f"Temporal answered {error.status.name if error.status else '?'}: {error.message}"
    )


def _started(handle: WorkflowHandle[Any, Any]) -> bool:
    """Whether signal-with-start opened a new run, as the server says in its response's `started`.

    The handle's first_execution_run_id is no answer: the dev server (1.32) fills it for a signalled run
    too. The SDK keeps the response only on a private attribute; tests/workers/intake/test_intake.py (50 deliveries,
    exactly one `started`) fails if an SDK upgrade moves it.
    The time-skipping test server never sets `started`, so there every delivery reads as `signalled`.
    """
    response = getattr(handle, "_start_workflow_response", None)
    return isinstance(response, SignalWithStartWorkflowExecutionResponse) and response.started


def task_priority(severity: Severity) -> Priority:
    return Priority(priority_key=TASK_PRIORITY[severity])


class _RepeatBatch:
    """Repeats of one incident waiting for the next `alerts` signal, and the answer each POST awaits."""

    def __init__(self, first: RoutedAlert) -> None:
        self.routed = first  # the incident (input, runbook, id) every alert of the batch belongs to
        self.alerts: list[Alert] = []
        self.delivered: asyncio.Future[Delivered] = asyncio.get_running_loop().create_future()


class TemporalGateway:
    """Everything the intake asks of Temporal. Connects lazily and again after a failure, so the intake
    starts, and answers 503, while Temporal is down, and recovers by itself when it is back.

    Repeats are coalesced (issue 15): a firing alert for an incident this intake has already opened or
    signalled joins the incident's next batch, and one `alerts` signal carries the batch. A batch is sent
    as soon as the incident has no batch in flight, so under a storm the repeats that arrive while one
    batch is on its way ride together in the next; nothing waits on a timer when repeats are rare. Every
    POST in a batch is answered only once Temporal has acknowledged the batch's signal, so a 202 still
    means Temporal holds the alert. A first alert for a key (one this intake does not know) is never
    batched: it goes out at once with signal-with-start, as does a resolved alert.
    """

    def __init__(
        self, settings: Settings, client: Client | None = None, *, coalesce_repeats: bool = True
    ) -> None:
        self._settings = settings
        self._client = client
        self._lock = asyncio.Lock()
        self._coalesce = coalesce_repeats
        self._known: dict[str, None] = {}  # insertion-ordered: the oldest is forgotten first
        self._waiting: dict[str, _RepeatBatch] = {}  # the next batch per incident, not yet sent
        self._in_flight: set[str] = set()  # incidents with a batch on its way to Temporal
        self._senders: set[asyncio.Task[None]] = set()  # held, or the loop may drop a running sender
        self.batches_sent = 0  # `alerts` signals sent, for tests and the benchmark

    def _remember(self, workflow_id: str) -> None:
        self._known.pop(workflow_id, None)
        self._known[workflow_id] = None
        if len(self._known) > KNOWN_INCIDENTS:
            del self._known[next(iter(self._known))]

    async def client(self) -> Client:
        if self._client is not None:
            return self._client
        async with self._lock:  # one connection attempt at a time, not one per waiting request
            if self._client is None:
                try:
                    self._client = await asyncio.wait_for(
                        connect(self._settings), CONNECT_TIMEOUT.total_seconds()
                    )
                except (RuntimeError, OSError, TimeoutError, RPCError) as error:
                    # Nothing is cached: the next request tries to connect again.
                    raise TemporalUnavailable(
                        f"cannot connect to Temporal at {self._settings.temporal_address}: {error}"
                    ) from error
            return self._client

    async def check(self) -> None:
        client = await self.client()
        try:
            serving = await client.service_client.check_health(timeout=RPC_TIMEOUT)
        except RPCError as error:
            raise TemporalUnavailable(f"Temporal health check failed: {error.message}") from error
        if not serving:
            raise TemporalUnavailable("Temporal is up but its workflow service is not serving")

    async def open_or_signal(self, routed: RoutedAlert) -> Delivered:
        """Signal the alert into its incident, starting the incident if none is running.

        Signal-with-start is one atomic call on the server: any number of concurrent deliveries for a key
        open exactly one run, and every one of them is recorded as an `alert` signal in that run.
        """
        assert routed.incident is not None
        incident = routed.incident
        if (
            self._coalesce
            and routed.alert.status is AlertStatus.firing
            and incident.incident_id in self._known
        ):
            return await self._join_batch(routed)
        delivered = await self._signal_with_start(routed, "alert", routed.alert)
        self._remember(incident.incident_id)
        return delivered

    async def _join_batch(self, routed: RoutedAlert) -> Delivered:
        assert routed.incident is not None
        workflow_id = routed.incident.incident_id
        batch = self._waiting.get(workflow_id)
        if batch is None:
            batch = self._waiting[workflow_id] = _RepeatBatch(routed)
        batch.alerts.append(routed.alert)
        if workflow_id not in self._in_flight:
            self._in_flight.add(workflow_id)
            sender = asyncio.create_task(self._send_batches(workflow_id))
            self._senders.add(sender)
            sender.add_done_callback(self._senders.discard)
        # shield: one POST giving up (its client went away) must not cancel the others' answer.
        return await asyncio.shield(batch.delivered)

    async def _send_batches(self, workflow_id: str) -> None:
        """Send the incident's waiting batch, then the one that filled meanwhile, until none waits."""
        try:
            while (batch := self._waiting.pop(workflow_id, None)) is not None:
                try:
                    delivered = await self._signal_with_start(
                        batch.routed, "alerts", AlertBatch(alerts=batch.alerts)
                    )
                except Exception as error:  # every POST of the batch answers with it (503 or 422)
                    batch.delivered.set_exception(error)
                    continue
                self.batches_sent += 1
                batch.delivered.set_result(delivered)
        finally:
            self._in_flight.discard(workflow_id)

    async def _signal_with_start(self, routed: RoutedAlert, signal: str, payload: BaseModel) -> Delivered:
        """Signal `payload` into the alert's incident, starting the incident if none is running."""
        assert routed.incident is not None
        incident = routed.incident
        client = await self.client()
        try:
            if routed.alert.status is AlertStatus.resolved:
                # A resolved alert tells a running incident; it never opens one.
                try:
                    await client.get_workflow_handle(incident.incident_id).signal(
                        "alert", routed.alert, rpc_timeout=RPC_TIMEOUT
                    )
                except RPCError as error:
                    if error.status is RPCStatusCode.NOT_FOUND:  # none running: nothing to tell
                        return Delivered(
                            workflow_id=incident.incident_id, runbook=incident.runbook, action="ignored"
                        )
                    raise
                return Delivered(
                    workflow_id=incident.incident_id, runbook=incident.runbook, action="signalled"
                )
            handle: WorkflowHandle[Any, Any] = await client.start_workflow(
                incident.runbook,
                incident,
                id=incident.incident_id,
                task_queue=self._settings.task_queue,
                start_signal=signal,
                start_signal_args=[payload],
                # A closed incident for the same key is opened again by a new firing alert (or batch).
                id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
                priority=task_priority(incident.severity),
                static_summary=temporal_ui_text(
                    f"{incident.severity.value} {incident.runbook}: {incident.summary}", SUMMARY_BYTES
                ),
                static_details=temporal_ui_text(
                    f"Opened by {routed.alert.source} alert {routed.alert.name} "
                    f"(fingerprint {routed.alert.fingerprint}) on {incident.service}.",
                    DETAILS_BYTES,
                ),
                rpc_timeout=RPC_TIMEOUT,
            )
        except RPCError as error:
            raise _unavailable(error) or TemporalRefused("alert", error.message) from error
        return Delivered(
            workflow_id=incident.incident_id,
            runbook=incident.runbook,
            action="started" if _started(handle) else "signalled",
        )

    async def join_runbook_incident(self, workflow_id: str, alert: Alert) -> bool:
        """Signal `alert` into `workflow_id` if it runs; False when none runs (never started, or closed)."""
        client = await self.client()
        try:
            await client.get_workflow_handle(workflow_id).signal("alert", alert, rpc_timeout=RPC_TIMEOUT)
        except RPCError as error:
            if error.status is RPCStatusCode.NOT_FOUND:
                return False
            raise _unavailable(error) or TemporalRefused("alert", error.message) from error
        return True

    async def open_or_join_triage(self, routed: RoutedAlert) -> Delivered:
        """Hand an alert no runbook can act on to a human: its triage incident, opened if none runs.

        An alert a route matched goes first to the runbook incident that route would have opened: a human
        may have handed an earlier alert of this group to that runbook (`run_runbook` starts it under the
        same id), and then this one is a repeat of that incident. Only when none runs does it go to triage.
        """
        triage = routed.triage
        assert triage is not None
        if routed.runbook_incident_id is not None and await self.join_runbook_incident(
            routed.runbook_incident_id, routed.alert
        ):
            runbook = routed.route.runbook if routed.route else None
            return Delivered(workflow_id=routed.runbook_incident_id, runbook=runbook, action="signalled")
        if routed.alert.status is AlertStatus.resolved:
            # A resolved alert tells a running triage incident; it never opens one.
            joined = await self.join_runbook_incident(triage.incident_id, routed.alert)
            return Delivered(
                workflow_id=triage.incident_id,
                runbook=TRIAGE_WORKFLOW,
                action="triage" if joined else "ignored",
            )
        client = await self.client()
        fields = ", ".join(problem.field for problem in triage.problems)
        try:
            await client.start_workflow(
                TRIAGE_WORKFLOW,
                triage,
                id=triage.incident_id,
                task_queue=self._settings.task_queue,
                start_signal="alert",
                start_signal_args=[routed.alert],
                id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
                priority=task_priority(triage.severity),
                static_summary=temporal_ui_text(
                    f"{triage.severity.value} triage: {routed.alert.name}: {fields}", SUMMARY_BYTES
                ),
                static_details=temporal_ui_text(
                    f"{routed.alert.source} alert {routed.alert.name} (fingerprint {routed.alert.fingerprint})"
                    + (f" matched route {triage.route}" if triage.route else " matched no route")
                    + " and needs a human: "
                    + "; ".join(f"{problem.field}: {problem.problem}" for problem in triage.problems),
                    DETAILS_BYTES,
                ),
                rpc_timeout=RPC_TIMEOUT,
            )
        except RPCError as error:
            raise _unavailable(error) or TemporalRefused("alert", error.message) from error
        return Delivered(workflow_id=triage.incident_id, runbook=TRIAGE_WORKFLOW, action="triage")

    async def record_unrouted(self, routed: RoutedAlert) -> Delivered:
        """Put an alert no rule matched on record through the `unrouted_alert` workflow.

        Its id names this occurrence of the alert. While that workflow runs, a re-delivery joins it
        (USE_EXISTING); once it has finished, the re-delivery is refused (REJECT_DUPLICATE). Either way
        the audit log gets one row per occurrence, however often the sender repeats it.
        """
        client = await self.client()
        try:
            await client.start_workflow(
                UNROUTED_WORKFLOW,
                routed.alert,
                id=routed.workflow_id,
                task_queue=self._settings.task_queue,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                static_summary=temporal_ui_text(
                    f"Unrouted {routed.alert.source} alert {routed.alert.name}", SUMMARY_BYTES
                ),
                rpc_timeout=RPC_TIMEOUT,
            )
        except WorkflowAlreadyStartedError:
            pass  # this occurrence is on record already
        except RPCError as error:
            raise _unavailable(error) or TemporalRefused("alert", error.message) from error
        return Delivered(workflow_id=routed.workflow_id, runbook=None, action="unrouted")


def _first_occurrence_key(item: RoutedAlert) -> tuple[str, str, str, str]:
    alert = item.alert
    starts = alert.starts_at.isoformat() if alert.starts_at else ""
    return (item.workflow_id, alert.fingerprint, alert.status.value, starts)


async def deliver(
    gateway: TemporalGateway, routed: Sequence[RoutedAlert], *, triage_refused: bool = False
) -> list[Delivered]:
    """Hand every alert of one body to Temporal; one action per alert, in the body's order.

    Alerts for the same workflow go one after another in the body's order (so a firing alert followed by
    its resolution arrives in that order); different workflows go in parallel. If Temporal fails for any
    alert the whole body is answered 503: what did go through is a repeat when the sender retries, and a
    repeat only adds an `alert` signal to the incident's timeline. With `triage_refused`, a runbook incident
    Temporal refuses as invalid goes to a triage incident instead of failing the body with a 422.
    """
    actions: list[Delivered | None] = [None] * len(routed)
    first: dict[tuple[str, str, str, str], int] = {}
    duplicates: dict[int, int] = {}
    by_workflow: dict[str, list[int]] = {}
    for index, item in enumerate(routed):
        key = _first_occurrence_key(item)
        if key in first:
            duplicates[index] = first[key]  # the very same alert twice in one body: deliver it once
            continue
        first[key] = index
        by_workflow.setdefault(item.workflow_id, []).append(index)

    limit = asyncio.Semaphore(MAX_PARALLEL_PER_REQUEST)
    failures: list[Exception] = []

    async def one_workflow(indexes: list[int]) -> None:
        async with limit:
            for index in indexes:
                item = routed[index]
                try:
                    if item.incident is None:
                        actions[index] = await gateway.record_unrouted(item)
                    elif item.triage is not None:
                        actions[index] = await gateway.open_or_join_triage(item)
                    else:
                        try:
                            actions[index] = await gateway.open_or_signal(item)
                        except TemporalRefused as refused:
                            if not triage_refused:
                                raise
                            triage = refused_to_triage(item, refused.message)
                            actions[index] = await gateway.open_or_join_triage(triage)
                except TemporalRefused as error:
                    failures.append(TemporalRefused(f"alerts.{index}", error.message))
                    return
                except TemporalUnavailable as error:
                    failures.append(error)
                    return  # the rest of this incident's alerts wait for the sender's retry, in order

    await asyncio.gather(*(one_workflow(indexes) for indexes in by_workflow.values()))
    unavailable = [failure for failure in failures if isinstance(failure, TemporalUnavailable)]
    if unavailable:
        raise unavailable[0]
    if failures:
        raise failures[0]
    for index, original in duplicates.items():
        delivered = actions[original]
        assert delivered is not None
        actions[index] = delivered.model_copy(update={"action": "duplicate"})
    return [action for action in actions if action is not None]


# ---- request checks -----------------------------------------------------------------------------------


def _bearer_ok(request: Request, token: bytes) -> bool:
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(credentials.strip().encode(), token)


def _signature_ok(body: bytes, secret: bytes, header: str | None) -> bool:
    """`sha256=<hex>` as documented; bare hex too, which is what Grafana 12's HMAC option sends."""
    if not header:
        return False
    supplied = header.strip().lower().removeprefix("sha256=")
    expected = hmac.new(secret, body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(supplied.encode(), expected.encode())


async def _read_body(request: Request, limit: int) -> bytes | None:
    """The body, or None once it is longer than `limit`; never reads more than limit + one chunk."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _decode(body: bytes) -> tuple[Any, str | None]:
    try:
        payload = json.loads(body)
    except RecursionError:
        return None, "nested too deeply"
    except ValueError as error:  # JSONDecodeError, UnicodeDecodeError, an integer of 5,000 digits
        return None, f"not valid JSON: {error}"
    if b"\\ud" in body.lower():
        # JSON may escape a lone UTF-16 surrogate; no Temporal payload can carry one, so refuse it here.
        try:
            json.dumps(payload, ensure_ascii=False).encode()
        except UnicodeEncodeError:
            return None, "contains an unpaired UTF-16 surrogate escape"
    return payload, None


def _validation_errors(error: ValidationError) -> list[tuple[str, str]]:
    return [
        (".".join(str(part) for part in detail["loc"]) or "body", detail["msg"])
        for detail in error.errors()[:MAX_ERRORS_REPORTED]
    ]


# ---- the app ------------------------------------------------------------------------------------------


def create_app(settings: Settings, policy: Policy, gateway: TemporalGateway | None = None) -> FastAPI:
    app = FastAPI(title="Stanch intake", version="0.1.0")
    instrument_intake(app)  # a span per request when tracing is on; nothing otherwise
    instrument_intake_metrics(app)  # GET /metrics: responses by route and status, alerts by action
    temporal = gateway or TemporalGateway(settings)
    token = settings.intake_token.get_secret_value().encode() if settings.intake_token else None
    secret = settings.intake_hmac_secret.get_secret_value().encode() if settings.intake_hmac_secret else None
    limit = settings.intake_max_body_bytes

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        # Unknown paths and methods answer in the same shape as every other refusal.
        return problem(error.status_code, [("path", f"{request.method} {request.url.path}: {error.detail}")])

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        try:
            await temporal.check()
        except TemporalUnavailable as error:
            return JSONResponse(
                status_code=503,
                content={"ok": False, "temporal": "unreachable", "error": str(error)},
            )
        return JSONResponse(content={"ok": True, "temporal": "reachable"})

    @app.post("/alerts/{source}", status_code=202, response_model=IntakeResponse)
    async def receive(source: str, request: Request) -> Any:
        if token is not None and not _bearer_ok(request, token):
            return problem(
                401,
                [("authorization", "missing or wrong bearer token")],
                headers={"WWW-Authenticate": "Bearer"},
            )
        parse = PARSERS.get(source)
        if parse is None:
            return problem(
                404, [("source", f"unknown alert source {source!r}; use one of {sorted(PARSERS)}")]
            )
        body = await _read_body(request, limit)
        if body is None:
            return problem(413, [("body", f"larger than {limit} bytes")])
        if secret is not None and not _signature_ok(body, secret, request.headers.get(SIGNATURE_HEADER)):
            return problem(401, [(SIGNATURE_HEADER, "missing or wrong HMAC-SHA256 signature of the body")])
        payload, malformed = _decode(body)
        if malformed:
            return problem(400, [("body", malformed)])
        if policy.intake.unroutable == "triage":
            try:
                items = READERS[source](payload)
            except NotTheFormat as error:
                return problem(422, [(error.field, error.message)])
            routed = [route_item(policy, item) for item in items]
        else:
            # The old, strict rules: the whole body parses and every alert routes, or nothing starts.
            try:
                alerts: list[Alert] = parse(payload)
            except ValidationError as error:
                return problem(422, _validation_errors(error))
            try:
                routed = [route_alert(policy, alert, f"alerts.{index}") for index, alert in enumerate(alerts)]
            except RoutingError as error:
                return problem(422, [(error.field, error.message)])

        try:
            actions = await deliver(temporal, routed, triage_refused=policy.intake.unroutable == "triage")
        except TemporalUnavailable as error:
            return problem(503, [("temporal", f"{error}; retry later")], headers={"Retry-After": "5"})
        except TemporalRefused as error:
            return problem(422, [(error.field, f"Temporal refused it: {error.message}")])
        return IntakeResponse(
            incidents=[
                IncidentAction(
                    workflow_id=delivered.workflow_id,
                    runbook=delivered.runbook,
                    action=delivered.action,
                    alert=item.alert.name,
                    fingerprint=item.alert.fingerprint,
                    status=item.alert.status.value,
                )
                for item, delivered in zip(routed, actions, strict=True)
            ]
        )

    return app


def main() -> None:
    import uvicorn

    from stanch.packs import installed_packs_or_exit
    from stanch.policy import load_policy_or_exit
    from stanch.settings import load_settings_or_exit
    from stanch.trust import refuse_demo_keys_or_exit

    settings = load_settings_or_exit()
    packs = installed_packs_or_exit()
    load_policy_or_exit(settings.config, set(packs.runbooks), packs.roles_used())  # the checks, one line each
    # A pack's routes are defaults: they match after the policy's own `[[routes]]`.
    policy = packs.policy_with_routes(load_policy_or_exit(settings.config))
    # The intake copies the policy's keyring into every incident it starts: demo keys only in dev and tests.
    refuse_demo_keys_or_exit(policy, settings.config)
    setup_tracing_from_env("stanch-intake")  # before create_app, which adds the request span if on
    uvicorn.run(
        create_app(settings, policy), host=settings.host, port=settings.intake_port, log_level="warning"
    )
