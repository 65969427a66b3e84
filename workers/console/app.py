"""The on-call console (issue 14): the calm incident page of seed 003, signed in, server-rendered.

Pages: incidents (one visibility list), an incident (brief first, then timeline, pages sent, audit rows with
the chain's verification, and the actions the signed-in person may take), health (also `GET /api/health`)
and a new incident. FastAPI with Jinja2 templates; htmx (vendored in static/) keeps the incidents list and an
incident page live by polling every 2 s. Nothing is fetched at run time and there is no build step.

What protects a POST, in order: the session (303 to /login without one), the CSRF token of the session (403),
the person's roles for that action on that incident now (403, and the attempt goes to the incident as
`refused_attempt`, which notes and audits it through the workflow's own audit path). Decisions the
signed-approvals issue signs (approve, reject, resolve, run_runbook) are signed with the console's key as
the signed-in person, `via = "console"`; acknowledge and escalate carry the person.
"""

from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import httpx
import jinja2
import markupsafe
import psycopg
from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import ValidationError
from starlette.middleware.sessions import SessionMiddleware
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.service import RPCError

from schemas.approvals import (
    Acknowledgement,
    Decision,
    DecisionOutcome,
    EscalationRequest,
    RefusedAttempt,
    Resolution,
)
from schemas.briefs import Brief, Timeline
from schemas.severity import Severity
from schemas.signatures import SignedDecision, ToSign, Verdict
from schemas.targets import target_model_for
from schemas.triage import RunbookStarted, RunRunbook
from stanch.audit_store import AuditRow, ChainReport, read_rows, verify_chains
from stanch.closed_brief import closed_brief
from stanch.decisions import RESOLVE_GATE, TRIAGE_GATE, Signer, handover, pick_gate, signed_decision
from stanch.policy import Policy
from stanch.settings import Settings
from stanch.tls import default_tls_context
from workers.console import auth, views
from workers.intake.app import TemporalGateway, TemporalRefused, TemporalUnavailable
from workers.intake.routing import RoutingError, route_by_hand

HERE = Path(__file__).resolve().parent
VIA = "console"
SESSION_COOKIE = "stanch_console"
SESSION_HOURS = 12
RPC_TIMEOUT = timedelta(seconds=5)
CHECK_TIMEOUT_SECONDS = 5.0
# How often an incident page asks for what changed (issue 14 §4: at most 2 s).
LIVE_POLL_SECONDS = 2


class Forbidden(Exception):
    """A POST the person may not make: answered 403 with the reason."""


class Console:
    """What the routes share: settings, policy, Temporal, the signing key, the sign-in limit."""

    def __init__(
        self, settings: Settings, policy: Policy, signer: Signer | None, client: Client | None
    ) -> None:
        self.settings = settings
        self.policy = policy
        self.signer = signer
        self.temporal = TemporalGateway(settings, client)
        self.attempts = auth.AttemptLimit()
        self.chain = views.ChainVerification()
        self.runbooks = sorted(
            {
                route.runbook
                for _, route in policy.keyed_routes()
                if target_model_for(route.runbook) is not None
            }
        )

    async def client(self) -> Client:
        return await self.temporal.client()

    async def handle(self, workflow_id: str) -> WorkflowHandle[Any, Any]:
        return (await self.client()).get_workflow_handle(workflow_id)

    def temporal_ui(self) -> str:
        return self.settings.temporal_ui_url or f"http://127.0.0.1:{self.settings.temporal_ui_port}"


def _templates() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,  # every value from an alert is shown as typed, never as markup
        undefined=jinja2.StrictUndefined,
    )
    env.globals["poll_seconds"] = LIVE_POLL_SECONDS
    return env


def _now() -> datetime:
    return datetime.now(UTC)


def list_filters(
    severity: str | None = None,
    runbook: str | None = None,
    state: str | None = None,
    service: str | None = None,
    mine: bool = False,
    closed: bool = False,
) -> views.ListFilters:
    """The list's filters from the query string: one dependency for the page and for its refreshes."""
    return views.ListFilters(
        severity=severity or None,
        runbook=runbook or None,
        state=state or None,
        service=service or None,
        mine=mine,
        closed=closed,
    )


# The incidents page and its refreshes read the same filters from the query string.
FiltersQuery = Annotated[views.ListFilters, Depends(list_filters)]


def create_app(
    settings: Settings, policy: Policy, signer: Signer | None = None, client: Client | None = None
) -> FastAPI:
    if settings.console_secret is None:
        raise ValueError("STANCH_CONSOLE_SECRET is needed to sign the session cookie")
    console = Console(settings, policy, signer, client)
    templates = _templates()
    app = FastAPI(title="Stanch console", version="0.1.0", docs_url=None, redoc_url=None, openapi_url=None)
    public = settings.console_public_url or ""
    app.add_middleware(
        SessionMiddleware,
        secret_key=settings.console_secret.get_secret_value(),
        session_cookie=SESSION_COOKIE,
        max_age=SESSION_HOURS * 3600,
        same_site="lax",
        https_only=public.startswith("https://"),
    )
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    def page(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        me = request.session.get("person")
        person = views.person_of(policy, me) if isinstance(me, str) else None
        body = templates.get_template(template).render(
            me=person,
            csrf=auth.csrf_token(request.session),
            flash=request.session.pop("flash", None),
            **context,
        )
        return HTMLResponse(body, status_code=status)

    def fragment(request: Request, template: str, **context: Any) -> HTMLResponse:
        """A part of a page that htmx swaps in (a refresh, a form's fields): it leaves the session's flash for
        the next whole page, so a refresh in another tab never eats the message a form left."""
        body = templates.get_template(template).render(
            me=signed_in(request), csrf=auth.csrf_token(request.session), **context
        )
        return HTMLResponse(body)

    def signed_in(request: Request) -> views.Person | None:
        name = request.session.get("person")
        return views.person_of(policy, name) if isinstance(name, str) else None

    async def checked_form(request: Request) -> dict[str, str]:
        """The form of a POST whose CSRF token is the session's; 403 otherwise (raised as Forbidden)."""
        form = await request.form()
        fields = {key: value for key, value in form.items() if isinstance(value, str)}
        supplied = fields.get(auth.CSRF_FIELD) or request.headers.get(auth.CSRF_HEADER)
        if not auth.csrf_ok(request.session, supplied):
            raise Forbidden("the form's CSRF token is missing or not this session's: reload the page")
        return fields

    @app.exception_handler(Forbidden)
    async def forbidden(request: Request, error: Forbidden) -> HTMLResponse:
        return page(request, "error.html", status=403, title="Not allowed", message=str(error))

    def to_login() -> RedirectResponse:
        return RedirectResponse("/login", status_code=303)

    def back(workflow_id: str, flash: str | None, request: Request) -> RedirectResponse:
        if flash:
            request.session["flash"] = flash
        return RedirectResponse(f"/incidents/{quote(workflow_id, safe='')}", status_code=303)

    # ---- sign-in ------------------------------------------------------------------------------------

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        return JSONResponse({"ok": True})

    @app.get("/login")
    async def login_page(request: Request) -> HTMLResponse:
        return page(request, "login.html", title="Sign in", issuer=settings.console_oidc_issuer, error=None)

    @app.post("/login", response_model=None)
    async def login(request: Request) -> Response:
        fields = await checked_form(request)
        name = fields.get("name", "").strip()
        client = request.client.host if request.client else "?"
        keys = (f"name:{name}", f"client:{client}")
        if console.attempts.blocked(*keys):
            return page(
                request,
                "login.html",
                status=429,
                title="Sign in",
                issuer=settings.console_oidc_issuer,
                error="Too many failed attempts: wait a few minutes, then try again.",
            )
        ok = await asyncio.to_thread(auth.check_password, policy, name, fields.get("password", ""))
        if not ok:
            console.attempts.failed(*keys)
            return page(
                request,
                "login.html",
                status=401,
                title="Sign in",
                issuer=settings.console_oidc_issuer,
                error="Wrong name or password.",
            )
        console.attempts.succeeded(*keys)
        return _sign_in(request, name)

    def _sign_in(request: Request, name: str) -> RedirectResponse:
        request.session.clear()  # a new session for a new person: nothing from before carries over
        request.session["person"] = name
        auth.csrf_token(request.session)
        return RedirectResponse("/", status_code=303)

    @app.post("/logout")
    async def logout(request: Request) -> RedirectResponse:
        await checked_form(request)
        request.session.clear()
        return to_login()

    def oidc_or_page(request: Request) -> Any:
        """The OpenID Connect sign-in, or the page saying why there is none."""
        try:
            login = _oidc(settings)
        except ImportError as error:
            return page(
                request,
                "error.html",
                status=503,
                title="No OpenID Connect",
                message=f"not installed: {error}",
            )
        if login is None:
            return page(
                request, "error.html", status=404, title="No OpenID Connect", message="not configured"
            )
        return login

    @app.get("/login/oidc", response_model=None)
    async def oidc_start(request: Request) -> Response:
        login = oidc_or_page(request)
        if isinstance(login, Response):
            return login
        url, kept = await login.start()
        request.session["oidc"] = kept
        return RedirectResponse(url, status_code=303)

    @app.get("/login/oidc/callback", response_model=None)
    async def oidc_callback(request: Request) -> Response:
        login = oidc_or_page(request)
        if isinstance(login, Response):
            return login
        kept = request.session.pop("oidc", None) or {}
        try:
            email = await login.finish(dict(request.query_params), kept)
        except Exception as error:  # the provider's or the token's fault: say so, sign nobody in
            return page(request, "error.html", status=403, title="Sign-in failed", message=str(error))
        name = auth.person_for_email(policy, email)
        if name is None:
            return page(
                request,
                "error.html",
                status=403,
                title="Not a person of this policy",
                message=f"{email} is nobody's sign_in_email under [people]",
            )
        return _sign_in(request, name)

    # ---- incidents ----------------------------------------------------------------------------------

    async def list_data(filters: views.ListFilters, me: views.Person) -> dict[str, Any]:
        """The incidents list's rows from the one visibility query (never a query per incident), for the page
        and for each of its refreshes."""
        rows: list[views.IncidentRow] = []
        error = None
        try:
            client = await console.client()
            now = _now()
            async for execution in client.list_workflows(views.list_query(filters, me.name)):
                attrs = {key.name: value for key, value in execution.typed_search_attributes}
                rows.append(
                    views.incident_row(
                        execution.id,
                        attrs,
                        execution.start_time,
                        execution.status == WorkflowExecutionStatus.RUNNING,
                        now,
                        me.name,
                    )
                )
        except (TemporalUnavailable, RPCError) as failure:
            error = f"Temporal: {failure}"
        return {
            "rows": views.sorted_rows(rows),
            "filters": filters,
            "list_url": f"/list?{views.filters_query(filters)}",
            "error": error,
        }

    @app.get("/", response_model=None)
    async def incidents(request: Request, filters: FiltersQuery) -> Response:
        me = signed_in(request)
        if me is None:
            return to_login()
        return page(
            request,
            "incidents.html",
            title="Incidents",
            severities=views.SEVERITIES,
            runbooks=console.runbooks,
            **await list_data(filters, me),
        )

    @app.get("/list", response_model=None)
    async def incidents_list(request: Request, filters: FiltersQuery) -> Response:
        """The incidents page's table alone, with the page's filters: htmx swaps it in every `poll_seconds`,
        so a new incident or a changed state shows without a reload."""
        me = signed_in(request)
        if me is None:
            return Response(status_code=401, headers={"HX-Redirect": "/login"})
        return fragment(request, "_list.html", **await list_data(filters, me))

    async def incident_data(workflow_id: str, me: views.Person) -> dict[str, Any]:
        handle = await console.handle(workflow_id)
        described = await handle.describe(rpc_timeout=RPC_TIMEOUT)
        running = described.status == WorkflowExecutionStatus.RUNNING
        from_history = False
        try:
            brief = await handle.query("brief", result_type=Brief, rpc_timeout=RPC_TIMEOUT)
            timeline = await handle.query("timeline", result_type=Timeline, rpc_timeout=RPC_TIMEOUT)
        except RPCError:
            if running:
                raise
            # A closed run's queries are answered only by a worker of the version it ran on; once those
            # are gone its history still tells the brief, as `stanch brief` reads it (docs/deployment.md).
            closed = await closed_brief(await console.client(), workflow_id)
            brief, timeline, from_history = closed.brief, closed.timeline, True
        rows, chain, audit_error = await _audit(settings, workflow_id)
        # The run the page shows: an incident id opened again keeps each earlier run's rows (and pages) in
        # a chain of its own; the chain check above still covers every run of the id.
        rows = [row for row in rows if row.run_id == described.run_id]
        actions = views.actions_for(brief, policy, me.name, running)
        return {
            "workflow_id": workflow_id,
            "run_id": described.run_id,
            "execution_status": described.status.name if described.status else "?",
            "running": running,
            "from_history": from_history,
            "brief": brief,
            "timeline": timeline.entries,
            "rows": rows,
            "chain": chain,
            "audit_error": audit_error,
            "pages": views.pages_sent(
                [(row.action, row.outcome, f"{row.occurred_at:%H:%M:%S}") for row in rows]
            ),
            "actions": actions,
            "actions_key": views.actions_key(actions),
            "runbooks": console.runbooks,
            "first_fields": _fields_of(console.runbooks[0]) if console.runbooks else [],
            "temporal_url": f"{console.temporal_ui()}/namespaces/{quote(settings.namespace, safe='')}/workflows/"
            f"{quote(workflow_id, safe='')}/{described.run_id}/history",
            "postmortem_url": (
                f"/incidents/{quote(brief.postmortem.workflow_id, safe='')}" if brief.postmortem else None
            ),
        }

    @app.get("/incidents/{workflow_id}", response_model=None)
    async def incident(request: Request, workflow_id: str) -> Response:
        me = signed_in(request)
        if me is None:
            return to_login()
        try:
            data = await incident_data(workflow_id, me)
        except (TemporalUnavailable, RPCError) as error:
            return page(request, "error.html", status=404, title="No such incident", message=str(error))
        return page(
            request, "incident.html", title=f"{data['brief'].severity} {data['brief'].summary}", **data
        )

    @app.get("/incidents/{workflow_id}/live", response_model=None)
    async def incident_live(request: Request, workflow_id: str, key: str = "") -> Response:
        me = signed_in(request)
        if me is None:
            return Response(status_code=401, headers={"HX-Redirect": "/login"})
        try:
            data = await incident_data(workflow_id, me)
        except (TemporalUnavailable, RPCError) as error:
            return HTMLResponse(f"<p class=problem>Temporal: {markupsafe.escape(str(error))}</p>")
        if data["actions_key"] != key:
            # A decision taken elsewhere, a new question: the buttons change, so the page reloads.
            return Response(status_code=204, headers={"HX-Refresh": "true"})
        return fragment(request, "_live.html", **data)

    async def refuse(workflow_id: str, me: views.Person, action: str, reason: str) -> Forbidden:
        """Tell the incident, which notes and audits the refused attempt itself; then answer 403."""
        try:
            await (await console.handle(workflow_id)).signal(
                "refused_attempt",
                RefusedAttempt(by=me.name, action=action, reason=reason, via=VIA),
                rpc_timeout=RPC_TIMEOUT,
            )
        except (TemporalUnavailable, RPCError):
            pass  # a closed or unknown incident: nothing to audit it in; the 403 stands
        return Forbidden(f"{action}: {reason}")

    def role_reason(me: views.Person, roles: list[str]) -> str:
        held = ", ".join(me.roles) or "no role"
        return f"{me.name} ({held}) may not: it needs {' or '.join(roles) or 'a role of the policy'}"

    async def current(workflow_id: str, me: views.Person) -> tuple[Brief, list[views.Action]]:
        handle = await console.handle(workflow_id)
        described = await handle.describe(rpc_timeout=RPC_TIMEOUT)
        brief = await handle.query("brief", result_type=Brief, rpc_timeout=RPC_TIMEOUT)
        running = described.status == WorkflowExecutionStatus.RUNNING
        return brief, views.actions_for(brief, policy, me.name, running)

    async def as_responder(
        workflow_id: str, me: views.Person, kind: views.ActionKind, what: str, gate: str = ""
    ) -> Brief:
        """The brief, once `me` may `kind` this incident now (acknowledge, escalate, resolve, hand-over:
        on-call's and the escalation ladder's people); otherwise the refusal, told to the incident."""
        brief, actions = await current(workflow_id, me)
        if views.allowed(actions, kind, gate) is None:
            raise await refuse(workflow_id, me, what, role_reason(me, ["oncall", "the escalation ladder"]))
        return brief

    def sign(
        brief: Brief, gate: str, verdict: Verdict, me: views.Person
    ) -> tuple[ToSign | None, SignedDecision | None]:
        """The brief's entry for `gate`, and the console's signature over it as `me` (None without a key:
        the answer then names the digest it was read over, as an unsigned CLI answer does)."""
        entry = pick_gate(brief, gate)
        if entry is None or console.signer is None:
            return entry, None
        return entry, signed_decision(entry, verdict, me.name, console.signer, _now(), via=VIA)

    @app.post("/incidents/{workflow_id}/decide", response_model=None)
    async def decide(request: Request, workflow_id: str) -> Response:
        me = signed_in(request)
        if me is None:
            return to_login()
        fields = await checked_form(request)
        gate = fields.get("gate", "")
        verdict = fields.get("verdict", "")
        if verdict not in ("approve", "reject"):
            raise Forbidden("a decision is approve or reject, nothing else")
        brief, actions = await current(workflow_id, me)
        entry = pick_gate(brief, gate)
        kind: views.ActionKind = "review" if gate.startswith("review-") else verdict  # type: ignore[assignment]
        if entry is None:
            return back(
                workflow_id, f"Nothing to decide at {gate} now: it was decided or withdrawn.", request
            )
        what = f"{verdict} {entry.shown.action}"
        if views.allowed(actions, kind, gate) is None:
            raise await refuse(workflow_id, me, what, role_reason(me, entry.shown.required_approvers))
        # The console signs what the person read, never what the question says by the time they click: the
        # form carries the digest of the question its page showed.
        if fields.get("digest") != entry.digest:
            return back(
                workflow_id,
                f"Not sent: the question on {entry.shown.action} changed since you read it; read it again.",
                request,
            )
        text = fields.get("text") if kind == "review" else None
        if verdict == "approve" and kind == "approve" and fields.get("confirmed") != "yes":
            return page(
                request,
                "confirm.html",
                title="Confirm",
                workflow_id=workflow_id,
                path="decide",
                what=f"Approve {entry.shown.action} on {workflow_id}",
                details=[
                    ("Recommendation", entry.shown.recommendation),
                    ("Risk if no action", entry.shown.risk),
                    ("Signed", f"by the console for {me.name}" if console.signer else "no (no console key)"),
                ],
                hidden={
                    "gate": gate,
                    "verdict": verdict,
                    "digest": entry.digest,
                    "comment": fields.get("comment", ""),
                },
            )
        _, signed = sign(brief, gate, "approve" if verdict == "approve" else "reject", me)
        decision = Decision(
            approver=me.name,
            action=entry.shown.action,
            comment=fields.get("comment", ""),
            approved=verdict == "approve",
            text=text if text and text != entry.shown.recommendation else None,
            signed=signed,
            digest=None if signed is not None else entry.digest,
        )
        try:
            outcome = await (await console.handle(workflow_id)).execute_update(
                "decide", decision, result_type=DecisionOutcome, rpc_timeout=timedelta(seconds=30)
            )
        except WorkflowUpdateFailedError as error:
            return back(workflow_id, f"Refused: {getattr(error.cause, 'message', None) or error}", request)
        return back(workflow_id, f"{outcome.detail} (by {me.name}, via console)", request)

    @app.post("/incidents/{workflow_id}/acknowledge", response_model=None)
    async def acknowledge(request: Request, workflow_id: str) -> Response:
        me = signed_in(request)
        if me is None:
            return to_login()
        await checked_form(request)
        await as_responder(workflow_id, me, "acknowledge", "acknowledge")
        await (await console.handle(workflow_id)).signal(
            "acknowledge", Acknowledgement(by=me.name), rpc_timeout=RPC_TIMEOUT
        )
        return back(workflow_id, f"Acknowledged by {me.name}.", request)

    @app.post("/incidents/{workflow_id}/escalate", response_model=None)
    async def escalate(request: Request, workflow_id: str) -> Response:
        me = signed_in(request)
        if me is None:
            return to_login()
        fields = await checked_form(request)
        await as_responder(workflow_id, me, "escalate", "escalate")
        await (await console.handle(workflow_id)).signal(
            "escalate",
            EscalationRequest(by=me.name, reason=fields.get("reason", "")),
            rpc_timeout=RPC_TIMEOUT,
        )
        return back(workflow_id, f"Escalation requested by {me.name}.", request)

    @app.post("/incidents/{workflow_id}/resolve", response_model=None)
    async def resolve(request: Request, workflow_id: str) -> Response:
        me = signed_in(request)
        if me is None:
            return to_login()
        fields = await checked_form(request)
        brief = await as_responder(workflow_id, me, "resolve", "resolve", RESOLVE_GATE)
        fixed = fields.get("fixed", "").strip()
        learned = fields.get("learned", "").strip()
        if not fixed:
            return back(workflow_id, "Say what fixed it (or why nothing more is needed) to resolve.", request)
        if fields.get("confirmed") != "yes":
            return page(
                request,
                "confirm.html",
                title="Confirm",
                workflow_id=workflow_id,
                path="resolve",
                what=f"Resolve {workflow_id}: the runbook stands down and its open question is withdrawn",
                details=[("What fixed it", fixed), ("What we learned", learned or "—")],
                hidden={"fixed": fixed, "learned": learned},
            )
        note = fixed + (f" — learned: {learned}" if learned else "")
        entry, signed = sign(brief, RESOLVE_GATE, "resolve", me)
        resolution = Resolution(
            by=me.name,
            note=note,
            signed=signed,
            digest=entry.digest if entry is not None and signed is None else None,
        )
        handle = await console.handle(workflow_id)
        before = len((await handle.query("timeline", result_type=Timeline, rpc_timeout=RPC_TIMEOUT)).entries)
        await handle.signal("resolve", resolution, rpc_timeout=RPC_TIMEOUT)
        # A signal has no answer: the timeline says whether it was taken (as `stanch resolve` reads it).
        after = (await handle.query("timeline", result_type=Timeline, rpc_timeout=RPC_TIMEOUT)).entries[
            before:
        ]
        refused = [item.text for item in after if item.kind == "refused" and item.actor == me.name]
        return back(
            workflow_id, refused[0] if refused else f"Marked resolved by {me.name}, via console.", request
        )

    @app.post("/incidents/{workflow_id}/handover", response_model=None)
    async def hand_over(request: Request, workflow_id: str) -> Response:
        me = signed_in(request)
        if me is None:
            return to_login()
        fields = await checked_form(request)
        runbook = fields.get("runbook", "")
        brief = await as_responder(workflow_id, me, "handover", f"hand over to {runbook}", TRIAGE_GATE)
        target = _target_fields(fields)
        if fields.get("confirmed") != "yes":
            return page(
                request,
                "confirm.html",
                title="Confirm",
                workflow_id=workflow_id,
                path="handover",
                what=f"Hand {workflow_id} over to {runbook}",
                details=[(f"target {key}", value) for key, value in sorted(target.items())],
                hidden={"runbook": runbook, **{f"target.{key}": value for key, value in target.items()}},
            )
        entry = pick_gate(brief, TRIAGE_GATE)
        signed = None
        if entry is not None and console.signer is not None:
            signed = signed_decision(
                handover(entry, runbook, target), "run_runbook", me.name, console.signer, _now(), via=VIA
            )
        try:
            started = await (await console.handle(workflow_id)).execute_update(
                "run_runbook",
                RunRunbook(by=me.name, runbook=runbook, target=target, signed=signed),
                result_type=RunbookStarted,
                rpc_timeout=timedelta(seconds=30),
            )
        except WorkflowUpdateFailedError as error:
            return back(workflow_id, f"Refused: {getattr(error.cause, 'message', None) or error}", request)
        return back(
            started.workflow_id, f"Handed over to {started.runbook} by {me.name}, via console.", request
        )

    # ---- health -------------------------------------------------------------------------------------

    @app.get("/api/health")
    async def api_health() -> JSONResponse:
        checks = await health_checks(console)
        ok = all(check["ok"] for check in checks)
        return JSONResponse({"ok": ok, "checks": checks}, status_code=200 if ok else 503)

    @app.get("/health", response_model=None)
    async def health(request: Request) -> Response:
        if signed_in(request) is None:
            return to_login()
        checks = await health_checks(console)
        return page(request, "health.html", title="Health", checks=checks, ok=all(c["ok"] for c in checks))

    # ---- new incident -------------------------------------------------------------------------------

    def new_form(request: Request, runbook: str, status: int = 200, **context: Any) -> HTMLResponse:
        chosen = runbook if runbook in console.runbooks else (console.runbooks[0] if console.runbooks else "")
        context.setdefault("error", None)
        context.setdefault("values", {})
        return page(
            request,
            "new.html",
            status=status,
            title="New incident",
            runbooks=console.runbooks,
            runbook=chosen,
            fields=_fields_of(chosen),
            severities=views.SEVERITIES,
            **context,
        )

    @app.get("/new", response_model=None)
    async def new(request: Request, runbook: str = "") -> Response:
        if signed_in(request) is None:
            return to_login()
        return new_form(request, runbook)

    @app.get("/new/fields", response_model=None)
    async def new_fields(request: Request, runbook: str = "") -> Response:
        if signed_in(request) is None:
            return Response(status_code=401)
        return page(request, "_fields.html", fields=_fields_of(runbook), values={})

    @app.post("/new", response_model=None)
    async def open_new(request: Request) -> Response:
        me = signed_in(request)
        if me is None:
            return to_login()
        fields = await checked_form(request)
        runbook = fields.get("runbook", "")
        if me.name not in views.responders(policy):
            raise Forbidden(f"{me.name} may not open incidents: on-call and the escalation ladder may")
        target = _target_fields(fields)
        try:
            severity = Severity(fields.get("severity", ""))
            summary = fields.get("summary", "").strip()
            if not summary:
                raise RoutingError("summary", "say in one line what is wrong")
            routed = route_by_hand(policy, runbook, target, severity, summary, me.name)
        except (ValueError, ValidationError) as error:
            message = f"{error.field}: {error.message}" if isinstance(error, RoutingError) else str(error)
            return new_form(request, runbook, status=422, error=message, values=fields)
        try:
            delivered = await console.temporal.open_or_signal(routed)
        except (TemporalUnavailable, TemporalRefused) as error:
            return new_form(request, runbook, status=503, error=str(error), values=fields)
        return back(delivered.workflow_id, f"Incident {delivered.action} by {me.name}, via console.", request)

    return app


def _fields_of(runbook: str) -> list[tuple[str, bool]]:
    model = target_model_for(runbook)
    if model is None:
        return []
    return [(name, field.is_required()) for name, field in model.model_fields.items()]


def _target_fields(fields: dict[str, str]) -> dict[str, str]:
    return {
        key.removeprefix("target."): value.strip()
        for key, value in fields.items()
        if key.startswith("target.") and value.strip()
    }


def _oidc(settings: Settings) -> Any:
    """The OpenID Connect sign-in when the settings name an issuer; imported only then (workers/console/oidc.py)."""
    if not settings.console_oidc_issuer:
        return None
    from workers.console.oidc import OidcLogin  # type: ignore[import-not-found,unused-ignore]

    secret = settings.console_oidc_client_secret
    redirect = (settings.console_public_url or f"http://127.0.0.1:{settings.console_port}").rstrip("/")
    return OidcLogin(
        settings.console_oidc_issuer,
        settings.console_oidc_client_id or "",
        secret.get_secret_value() if secret else "",
        f"{redirect}/login/oidc/callback",
    )


async def _audit(
    settings: Settings, workflow_id: str
) -> tuple[list[AuditRow], ChainReport | None, str | None]:
    def read() -> tuple[list[AuditRow], ChainReport]:
        return read_rows(settings.database_url, workflow_id), verify_chains(
            settings.database_url, workflow_id
        )

    try:
        rows, chain = await asyncio.wait_for(asyncio.to_thread(read), CHECK_TIMEOUT_SECONDS)
    except (psycopg.Error, OSError, TimeoutError) as error:
        return [], None, f"Postgres: {error}"
    return rows, chain, None


# ---- health checks (seed 003's manual health check) ----------------------------------------------------


def _check(name: str, ok: bool, detail: str) -> dict[str, Any]:
    return {"name": name, "ok": ok, "detail": detail}


async def health_checks(console: Console) -> list[dict[str, Any]]:
    settings = console.settings
    checks = await asyncio.gather(
        _temporal_checks(console),
        _postgres_check(console),
        _intake_check(settings),
        _systems_checks(console),
    )
    return [item for group in checks for item in group]


async def _temporal_checks(console: Console) -> list[dict[str, Any]]:
    settings = console.settings
    try:
        await asyncio.wait_for(console.temporal.check(), CHECK_TIMEOUT_SECONDS)
    except (TemporalUnavailable, TimeoutError) as error:
        return [
            _check("Temporal", False, str(error) or "no answer"),
            _check("worker", False, "unknown: Temporal unreachable"),
        ]
    client = await console.client()
    pollers: dict[str, int] = {}
    try:
        for kind, name in (
            (TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW, "workflow"),
            (TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY, "activity"),
        ):
            response = await client.workflow_service.describe_task_queue(
                DescribeTaskQueueRequest(
                    namespace=settings.namespace,
                    task_queue=TaskQueue(name=settings.task_queue),
                    task_queue_type=kind,
                ),
                timeout=RPC_TIMEOUT,
            )
            pollers[name] = len(response.pollers)
    except RPCError as error:
        return [
            _check("Temporal", True, f"reachable at {settings.temporal_address}"),
            _check("worker", False, error.message),
        ]
    ok = all(pollers.values())
    return [
        _check(
            "Temporal", True, f"reachable at {settings.temporal_address} (namespace {settings.namespace})"
        ),
        _check(
            "worker",
            ok,
            f"task queue {settings.task_queue!r}: {pollers['workflow']} workflow and {pollers['activity']} activity "
            "poller(s)" + ("" if ok else " — no worker is taking the work"),
        ),
    ]


async def _postgres_check(console: Console) -> list[dict[str, Any]]:
    settings, chain = console.settings, console.chain
    now = _now()
    due = chain.due(now)

    def probe() -> ChainReport | None:
        with psycopg.connect(settings.database_url, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
        return verify_chains(settings.database_url) if due else None

    try:
        report = await asyncio.wait_for(asyncio.to_thread(probe), CHECK_TIMEOUT_SECONDS * 2)
    except (psycopg.Error, OSError, TimeoutError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        return [
            _check("Postgres", False, f"unreachable: {first}"),
            _check("audit chain", False, f"not verified: Postgres is unreachable (last: {chain.text()})"),
        ]
    if report is not None:
        chain.record(now, not report.broken, report.summary())
    return [
        _check("Postgres", True, "reachable; the audit log answers"),
        _check("audit chain", chain.intact, chain.text()),
    ]


async def _intake_check(settings: Settings) -> list[dict[str, Any]]:
    host = settings.host if settings.host not in ("", "0.0.0.0", "::") else "127.0.0.1"
    url = f"{(settings.intake_url or f'http://{host}:{settings.intake_port}').rstrip('/')}/healthz"
    try:
        async with httpx.AsyncClient(
            timeout=CHECK_TIMEOUT_SECONDS, trust_env=False, verify=default_tls_context()
        ) as http:
            response = await http.get(url)
    except httpx.HTTPError as error:
        return [_check("intake", False, f"{url}: {error or type(error).__name__}")]
    return [_check("intake", response.status_code == 200, f"{url}: {response.status_code}")]


async def _systems_checks(console: Console) -> list[dict[str, Any]]:
    from activities.adapters import AdapterConfigError
    from activities.systems import open_systems
    from workers.worker import adapter_context

    try:
        async with open_systems(console.policy, adapter_context(console.settings)) as opened:
            results = await asyncio.wait_for(opened.check(), CHECK_TIMEOUT_SECONDS * 2)
    except (AdapterConfigError, TimeoutError, OSError) as error:
        return [_check("systems", False, str(error) or type(error).__name__)]
    return [_check(f"system {c.system}", c.ok, f"{c.adapter}: {c.detail}") for c in results]


# ---- the process ---------------------------------------------------------------------------------------


def load_signer(path: Path | None) -> Signer | None:
    from stanch.signing import load_private_key

    if path is None:
        return None
    return Signer(load_private_key(path), path)


def main() -> None:
    import sys

    import uvicorn

    from stanch.packs import installed_packs_or_exit
    from stanch.policy import load_policy_or_exit
    from stanch.settings import load_settings_or_exit
    from stanch.signing import SigningKeyError
    from stanch.trust import demo_keys_trusted, refuse_demo_keys_or_exit

    settings = load_settings_or_exit()
    # The routes the intake routes by: the policy's, then the installed packs' defaults (whose runbooks'
    # target models loading them registers), so the new-incident form offers a pack's runbooks too.
    policy = installed_packs_or_exit().policy_with_routes(load_policy_or_exit(settings.config))
    refuse_demo_keys_or_exit(policy, settings.config)
    if settings.console_secret is None:
        print(
            "stanch: the console needs STANCH_CONSOLE_SECRET (e.g. `openssl rand -base64 32`)",
            file=sys.stderr,
        )
        raise SystemExit(2)
    demo = auth.demo_password_people(policy)
    if demo and not demo_keys_trusted():
        print(
            f"stanch: policy file {settings.config}: {', '.join(demo)} sign in to the console with the public demo "
            "password: give each a hash of their own password (argon2id) or run `stanch dev`",
            file=sys.stderr,
        )
        raise SystemExit(2)
    try:
        signer = load_signer(settings.console_signing_key)
    except SigningKeyError as error:
        print(f"stanch: STANCH_CONSOLE_SIGNING_KEY: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    uvicorn.run(
        create_app(settings, policy, signer),
        host=settings.host,
        port=settings.console_port,
        log_level="warning",
    )


def new_secret() -> str:
    """A fresh session-signing secret (the dev stack keeps one per home)."""
    return secrets.token_urlsafe(32)
