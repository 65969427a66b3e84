"""`stanch`: run the stack, fire alerts, and answer incidents from a terminal."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from stanch.ops import answers
from stanch.ops.answers import KEY_HELP, YES_HELP, workflow_id
from stanch.ops.deployment import deployment_app
from stanch.ops.keys import keys_app

# What a person types at 3 a.m. answers at once: this module imports only what parsing the command line
# needs (typer; the parameters' types are builtins and Path). Each command imports the Temporal client,
# the schemas, the policy and the signer in its own body, so `stanch --help` loads none of them and
# `stanch brief` loads only what a query needs (tests/stanch/test_cli_imports.py keeps it so). With
# STANCH_TEMPORAL_HTTP_URL set, `brief` / `approve` / `reject` go over Temporal's HTTP API and load neither
# the SDK nor pydantic-settings (stanch/ops/temporal_http.py, tests/stanch/test_temporal_http.py); the
# console entry point (stanch/ops/entry.py) runs them from stanch/ops/answers.py before this module (and
# typer) is imported at all.
if TYPE_CHECKING:
    from temporalio.client import Client, WorkflowHandle, WorkflowHistory

    from schemas.signatures import SignedDecision, Verdict
    from schemas.systems import SystemCheck

# Plain help (rich_markup_mode=None): Rich's help renderer imports Rich's Markdown, syntax and traceback
# modules, about half a second before `stanch --help` prints a line; click's formatter takes none of that.
app = typer.Typer(
    help="Stanch: incident runbooks as durable Temporal workflows.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
audit_app = typer.Typer(help="Read and verify the audit trail.", no_args_is_help=True, rich_markup_mode=None)
app.add_typer(audit_app, name="audit")
app.add_typer(keys_app, name="keys")
app.add_typer(deployment_app, name="deployment")  # issue 16: worker versions

# The signing helpers of every command that decides live with approve / reject (stanch/ops/answers.py).
_signer = answers.signer_for
_sign = answers.sign
_refused = answers.refused
_update_refusal = answers.update_refusal
_fetch_brief = answers.fetch_brief
_question = answers.question
_signed_by = answers.signed_by

# `stanch dev`'s policy: the production-shaped example plus the example systems it runs (never production's).
# (stanch.settings.REPO_ROOT, without importing pydantic-settings to parse a flag.)
DEV_POLICY = Path(__file__).resolve().parents[2] / "config" / "dev.toml"


# The SDK path's plumbing, shared with them too: run a coroutine (Temporal's errors as one line and exit 1),
# the validated settings, and a client.
_run = answers.run
_settings = answers.settings
connect = answers.connect


# ---- processes -----------------------------------------------------------------------------------


@app.command()
def dev() -> None:
    """Bring up everything: Temporal + UI, Postgres, the example systems (the gateway under supervisord ...),
    worker, intake and sandbox, on the dev policy config/dev.toml unless STANCH_CONFIG names another.
    Ctrl-C stops it all."""
    from stanch.ops.devstack import DevStack
    from stanch.ops.devstack.examples import default_examples
    from stanch.policy import load_policy_or_exit

    settings = _settings()
    if "STANCH_CONFIG" not in os.environ:
        settings = settings.model_copy(update={"config": DEV_POLICY})
    load_policy_or_exit(settings.config)
    DevStack(settings, examples=default_examples()).run_forever()


@app.command()
def worker() -> None:
    """Run the Temporal worker (runbooks and activities)."""
    from workers.worker import main

    main()


@app.command()
def intake() -> None:
    """Run the HTTP alert intake."""
    from workers.intake.app import main

    main()


@app.command()
def console() -> None:
    """Run the on-call console (http://127.0.0.1:8070, STANCH_CONSOLE_PORT): incidents, briefs, decisions."""
    from workers.console.app import main

    main()


@app.command()
def sandbox() -> None:
    """Run the sandbox platform (a stand-in for your agent platform, gateway, chat and deploys)."""
    from workers.sandbox import main

    settings = _settings()
    main(settings.host, settings.sandbox_port)


@app.command("codec-server")
def codec_server() -> None:
    """Serve /encode and /decode for the Temporal UI, so it can show payloads encrypted with the key."""
    from stanch.ops.codec_server import main

    settings = _settings()
    if settings.payload_key is None:
        typer.echo("stanch: codec-server needs STANCH_PAYLOAD_KEY", err=True)
        raise typer.Exit(2)
    main(settings)


@app.command()
def migrate() -> None:
    """Prepare a production deployment: the audit schema (as owner) and Stanch's search attributes.

    Safe to run on every deploy; `stanch dev` does the same for its own Postgres and Temporal.
    """
    from stanch.db import migrate as migrate_database
    from stanch.temporal_client import add_missing_search_attributes, connect

    settings = _settings()
    migrate_database(settings.database_admin_url)
    typer.echo("audit schema: up to date")

    async def go() -> list[str]:
        return await add_missing_search_attributes(await connect(settings), settings.namespace)

    added = _run(go())
    typer.echo(f"search attributes: {'added ' + ', '.join(added) if added else 'all present'}")


# ---- operators -----------------------------------------------------------------------------------


@app.command()
def fire(
    scenario: str = typer.Argument(..., help="sample alert, e.g. agent-hallucination"),
    agent: str = typer.Option("support-bot", help="the agent the alert is about"),
    fingerprint: str | None = typer.Option(None, help="override the alert fingerprint (dedupe key)"),
    without: list[str] = typer.Option(
        [], "--without", help="drop this label from the sample (repeatable): shows a triage incident"
    ),
) -> None:
    """POST a sample Alertmanager alert to the intake, as monitoring would."""
    import hashlib
    import hmac
    import json

    import httpx

    from stanch.ops.samples import SAMPLES, sample

    settings = _settings()
    if scenario not in SAMPLES:
        typer.echo(f"stanch: unknown scenario {scenario!r}; choose one of: {', '.join(SAMPLES)}", err=True)
        raise typer.Exit(2)
    headers = {"Content-Type": "application/json"}
    payload = sample(scenario, agent=agent, fingerprint=fingerprint)
    for label in without:
        # A real rule that forgot a label: the alert and the group's common labels both lack it.
        for labels in (payload["alerts"][0]["labels"], payload["commonLabels"]):
            labels.pop(label, None)
    body = json.dumps(payload).encode()
    if settings.intake_token:
        headers["Authorization"] = f"Bearer {settings.intake_token.get_secret_value()}"
    if settings.intake_hmac_secret:
        # The intake checks the signature of the exact bytes sent, so sign what goes on the wire.
        secret = settings.intake_hmac_secret.get_secret_value().encode()
        headers["X-Stanch-Signature"] = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
    url = f"http://{settings.host}:{settings.intake_port}/alerts/alertmanager"
    try:
        response = httpx.post(url, content=body, headers=headers)
    except httpx.HTTPError as error:
        typer.echo(f"stanch: cannot reach the intake at {url}: {error}", err=True)
        raise typer.Exit(1) from None
    typer.echo(json.dumps(response.json(), indent=2))
    if response.status_code >= 400:
        raise typer.Exit(1)


@app.command()
def rehearse(
    scenario: str | None = typer.Argument(
        None, help="a sample alert (as `stanch fire` knows them) or an alert JSON file"
    ),
    answer: list[str] = typer.Option(
        [],
        "--answer",
        help="approve:<person>@<time> or reject:<person>@<time> (time like 10m, 2h), repeatable; "
        "none (the default): nobody answers and the escalation ladder runs to its end",
    ),
    policy: Path | None = typer.Option(
        None, "--policy", help="the policy to rehearse on (only read); default: $STANCH_CONFIG's"
    ),
    every_sample: bool = typer.Option(
        False, "--all", help="every sample at once, on one stage: a line each; exit 1 if any fails"
    ),
    source: str | None = typer.Option(
        None, help="an alert file's format: alertmanager, grafana or generic (default: guessed)"
    ),
) -> None:
    """Run the runbook an alert routes to on skipped time, against the sandbox platform, and print its
    timeline, every page and whom it reached, the audit rows and the outcome. Nothing real is touched and
    nobody is paged: it runs on a copy of the policy whose channels are a local recorder."""
    from stanch.ops.rehearse import RehearsalError, run_command

    policy_file = policy if policy is not None else _settings().config
    try:
        rehearsals, text = run_command(scenario, answer, policy_file, every_sample, source)
    except RehearsalError as error:
        typer.echo(f"stanch: {error}", err=True)
        raise typer.Exit(2) from None
    typer.echo(text)
    if not all(rehearsal.ok for rehearsal in rehearsals):
        raise typer.Exit(1)


new_app = typer.Typer(help="Scaffold new things.", no_args_is_help=True, rich_markup_mode=None)
app.add_typer(new_app, name="new")


@new_app.command("runbook")
def new_runbook(
    name: str = typer.Argument(..., help="the runbook's name, e.g. disk_full (route runbook, workflow type)"),
    pack: Path | None = typer.Option(
        None,
        "--pack",
        help="the pack folder to write (created the first time); default: Stanch's own catalogue when run in "
        "a Stanch checkout, else ./runbooks-pack",
    ),
) -> None:
    """Write a runbook that runs, with its route, sample alert and tests: into a pip-installable pack, or
    (without --pack, in a Stanch checkout) into Stanch's own catalogue, workflows/ and tests/workflows/."""
    from stanch.ops.scaffold import ScaffoldError, is_checkout, new_catalogue_runbook
    from stanch.ops.scaffold import new_runbook as scaffold
    from stanch.packs import installed_packs_or_exit

    known = set(installed_packs_or_exit().runbooks)
    into_catalogue = pack is None and is_checkout(Path.cwd())
    folder = pack if pack is not None else Path("runbooks-pack")
    try:
        written = (
            new_catalogue_runbook(name, Path.cwd(), known)
            if into_catalogue
            else scaffold(name, folder, known)
        )
    except ScaffoldError as error:
        typer.echo(f"stanch: {error}", err=True)
        raise typer.Exit(2) from None
    for path in written:
        typer.echo(f"wrote {path.relative_to(Path.cwd()) if into_catalogue else path}")
    if into_catalogue:
        typer.echo(
            f"next: edit workflows/{name}.py (workflows/pack.py finds it), run tests/workflows/test_{name}.py, "
            "and move its ROUTE into config/stanch.toml's [[routes]] if the default does not fit"
        )
    else:
        typer.echo(f"next: pip install -e {folder}, then run its tests with this checkout on PYTHONPATH")


@app.command("list")
def list_incidents(
    state: str | None = typer.Option(
        None,
        help="only incidents in this state, e.g. awaiting_approval, unattended, closed_unattended (with --all)",
    ),
    all_runs: bool = typer.Option(False, "--all", help="include closed incidents"),
    waiting_for: str | None = typer.Option(
        None, "--waiting-for", help="only incidents with a question this person may decide now"
    ),
) -> None:
    """List incidents (open ones by default)."""
    from temporalio.api.workflowservice.v1 import ListWorkflowExecutionsRequest
    from temporalio.converter import default

    async def go() -> None:
        settings = _settings()
        client = await connect(settings)
        clauses = ["StanchRunbook IS NOT NULL"]
        if state:
            clauses.append(f"StanchState = {_quoted(state)}")
        if waiting_for:
            # One visibility query: the gate keeps StanchAwaiting = the people who may decide now.
            clauses.append(f"StanchAwaiting = {_quoted(waiting_for)}")
        if not all_runs:
            clauses.append("ExecutionStatus = 'Running'")
        # One visibility list, a page per LIST_PAGE_SIZE incidents, nothing per incident. The raw response
        # rather than client.list_workflows: the SDK decodes every search attribute of every row twice
        # (typed and untyped) into objects, while this prints four of them, so it decodes those four.
        request = ListWorkflowExecutionsRequest(
            namespace=settings.namespace, query=" AND ".join(clauses), page_size=LIST_PAGE_SIZE
        )
        search_attributes = default().payload_converter  # what the SDK decodes search attributes with
        while True:
            page = await client.workflow_service.list_workflow_executions(request, retry=True)
            lines = []
            for info in page.executions:
                fields = info.search_attributes.indexed_fields
                shown = {
                    name: search_attributes.from_payload(fields[name]) if name in fields else "?"
                    for name in ("StanchSeverity", "StanchRunbook", "StanchState", "StanchAwaiting")
                }
                awaiting = shown["StanchAwaiting"]
                lines.append(
                    f"{info.execution.workflow_id:<50} {shown['StanchSeverity']:<3} {shown['StanchRunbook']:<24} "
                    f"{shown['StanchState']:<18} {info.start_time.ToDatetime():%Y-%m-%d %H:%M:%S}"
                    + (
                        f"  awaiting: {', '.join(awaiting)}"
                        if isinstance(awaiting, list) and awaiting
                        else ""
                    )
                )
            if lines:
                typer.echo("\n".join(lines))  # a write per page, not per incident
            if not page.next_page_token:
                return
            request.next_page_token = page.next_page_token

    _run(go())


# Incidents per visibility page: the server's largest (frontend.visibilityMaxPageSize, 1,000 by default),
# so 1,000 open incidents take one round trip.
LIST_PAGE_SIZE = 1000


def _quoted(value: str) -> str:
    """A string literal of Temporal's visibility query language: a quote in a name cannot end it."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


# ---- brief / approve / reject: stanch/ops/answers.py, which the console entry point (stanch/ops/entry.py) also
# runs before typer is imported (issue 15); these commands give them typer's parsing and help. Its signing
# helpers serve the other commands that decide (sign, resolve, triage, kill-switch) under their old names.


@app.command()
def brief(incident: str, timeline: bool = typer.Option(False, help="print the timeline too")) -> None:
    """Print an incident's decision brief (a closed incident's is read from its history)."""
    answers.brief(incident, timeline)


@app.command()
def approve(
    incident: str,
    action: str | None = typer.Argument(None, help="the recommended action; default: the one question open"),
    approver: str = typer.Option(..., "--as", help="who approves (must hold an allowed role)"),
    comment: str = typer.Option("", help="why"),
    text: str | None = typer.Option(
        None, help="send-customer-message only: send this text instead of the draft"
    ),
    key: Path | None = typer.Option(None, "--key", help=KEY_HELP),
    yes: bool = typer.Option(False, "--yes", "-y", help=YES_HELP),
) -> None:
    """Approve the action an incident recommends (refused if it is not the recommended one), signed with
    your key: it prints what it signs and asks first."""
    answers.decide(incident, action, approver, comment, approved=True, text=text, key=key, yes=yes)


@app.command()
def reject(
    incident: str,
    action: str | None = typer.Argument(None, help="the recommended action; default: the one question open"),
    approver: str = typer.Option(..., "--as", help="who rejects"),
    comment: str = typer.Option("", help="why"),
    key: Path | None = typer.Option(None, "--key", help=KEY_HELP),
    yes: bool = typer.Option(False, "--yes", "-y", help=YES_HELP),
) -> None:
    """Reject the action an incident recommends; the runbook keeps its safe state."""
    answers.decide(incident, action, approver, comment, approved=False, text=None, key=key, yes=yes)


def _target_fields(target: list[str]) -> dict[str, str]:
    fields: dict[str, str] = {}
    for item in target:
        name, sep, value = item.partition("=")
        if not sep or not name:
            typer.echo(f"stanch: --target {item!r}: expected key=value", err=True)
            raise typer.Exit(2)
        fields[name] = value
    return fields


@app.command("sign")
def sign_payload(
    incident: str,
    action: str = typer.Argument(
        ..., help="the recommended action, `resolve`, or `run_runbook` (a triage incident's hand-over)"
    ),
    approver: str = typer.Option(..., "--as", help="who decides"),
    reject_it: bool = typer.Option(False, "--reject", help="sign a rejection instead of an approval"),
    comment: str = typer.Option("", help="why (a resolve's note)"),
    text: str | None = typer.Option(None, help="send-customer-message only: the text to send instead"),
    runbook: str | None = typer.Option(None, "--runbook", help="run_runbook: the runbook to hand over to"),
    target: list[str] = typer.Option([], "--target", help="run_runbook: a target field as key=value; repeat"),
    update: bool = typer.Option(
        False, "--update", help="approve/reject: the `decide` update's payload instead of the signal's"
    ),
    pretty: bool = typer.Option(False, "--pretty", help="indented JSON instead of one line"),
    key: Path | None = typer.Option(None, "--key", help=KEY_HELP),
    yes: bool = typer.Option(False, "--yes", "-y", help=YES_HELP),
) -> None:
    """Print a signed decision as JSON for the Temporal UI's "Send a Signal" / "Send an Update" dialog (or
    `temporal workflow signal --input`); stderr says which signal or update takes it."""
    from pydantic import BaseModel

    from schemas.approvals import ApprovalAnswer, Decision, Resolution
    from stanch.ops.signer import RESOLVE_GATE, TRIAGE_GATE, Dialog, handover, payload_json, pick_gate

    if action in (RESOLVE_GATE, "run_runbook") and (reject_it or update):
        typer.echo(f"stanch: {action} takes neither --reject nor --update", err=True)
        raise typer.Exit(2)
    if action == "run_runbook" and not runbook:
        typer.echo("stanch: run_runbook needs --runbook <name> (and its --target key=value fields)", err=True)
        raise typer.Exit(2)
    fields = _target_fields(target)
    signer = _signer(key, required=True)
    assert signer is not None
    brief = _fetch_brief(incident)
    wid = workflow_id(incident)
    payload: BaseModel
    if action == RESOLVE_GATE:
        entry = pick_gate(brief, RESOLVE_GATE)
        if entry is None:
            raise _refused(f"{wid} has nothing to resolve now (resolved already, or closing)")
        signed = _sign(entry, "resolve", approver, signer, yes)
        payload, dialog = Resolution(by=approver, note=comment, signed=signed), Dialog("signal", "resolve")
    elif action == "run_runbook":
        from schemas.triage import RunRunbook

        assert runbook is not None
        entry = pick_gate(brief, TRIAGE_GATE)
        if entry is None:
            raise _refused(f"{wid} is not a triage incident waiting to be handed over")
        signed = _sign(handover(entry, runbook, fields), "run_runbook", approver, signer, yes)
        payload = RunRunbook(by=approver, runbook=runbook, target=fields, signed=signed)
        dialog = Dialog("update", "run_runbook")
    else:
        question = _question(brief, action)
        if question is None:
            raise _refused(f"{wid} lists no open question to sign")
        verdict: Verdict = "reject" if reject_it else "approve"
        signed = _sign(question, verdict, approver, signer, yes)
        answer = ApprovalAnswer(
            approver=approver, action=question.shown.action, comment=comment, text=text, signed=signed
        )
        if update:
            payload = Decision(**answer.model_dump(), approved=not reject_it)
            dialog = Dialog("update", "decide")
        else:
            payload, dialog = answer, Dialog("signal", verdict)
    typer.echo(payload_json(payload, pretty=pretty))
    typer.echo(dialog.hint(wid, signed), err=True)


@app.command()
def acknowledge(incident: str, by: str = typer.Option(..., "--as", help="who is on it")) -> None:
    """Say you are on it: the escalation clock holds for the policy's acknowledge_holds_minutes."""
    from schemas.approvals import Acknowledgement

    async def go() -> None:
        handle = (await connect(_settings())).get_workflow_handle(workflow_id(incident))
        await handle.signal("acknowledge", Acknowledgement(by=by))

    _run(go())
    typer.echo(f"{workflow_id(incident)}: acknowledged by {by}")


@app.command()
def escalate(incident: str, by: str = typer.Option(..., "--as"), reason: str = typer.Option("")) -> None:
    """Escalate to the next level now instead of waiting for the timer."""
    from schemas.approvals import EscalationRequest

    async def go() -> None:
        handle = (await connect(_settings())).get_workflow_handle(workflow_id(incident))
        await handle.signal("escalate", EscalationRequest(by=by, reason=reason))

    _run(go())
    typer.echo(f"{workflow_id(incident)}: escalation requested by {by}")


@app.command()
def resolve(
    incident: str,
    by: str = typer.Option(..., "--as", help="who resolves it"),
    note: str = typer.Option("", help="why: what fixed it, or why nothing more is needed"),
    key: Path | None = typer.Option(None, "--key", help=KEY_HELP),
    yes: bool = typer.Option(False, "--yes", "-y", help=YES_HELP),
) -> None:
    """Resolve an incident: its runbook stands down from whatever it waits for (leaving the systems as they
    are), withdraws its open question and closes `resolved`; the next alert for the key opens a new one.
    Resolving withdraws a pending question, so it is signed like a decision."""
    from schemas.approvals import Resolution
    from schemas.briefs import Timeline
    from stanch.ops.signer import RESOLVE_GATE, pick_gate

    wid = workflow_id(incident)
    signer = _signer(key)
    # What resolving would withdraw now: the brief's resolve entry (its digest covers the pending question).
    entry = pick_gate(_fetch_brief(incident), RESOLVE_GATE)
    if entry is None and signer is not None:
        raise _refused(f"{wid} has nothing to resolve now (resolved already, or closing)")
    signed = _sign(entry, "resolve", by, signer, yes) if entry is not None and signer is not None else None
    digest = entry.digest if entry is not None and signed is None else None
    resolution = Resolution(by=by, note=note, signed=signed, digest=digest)

    async def go() -> list[str]:
        handle = (await connect(_settings())).get_workflow_handle(wid)
        before = len((await handle.query("timeline", result_type=Timeline)).entries)
        await handle.signal("resolve", resolution)
        # A signal has no answer; the timeline says whether it was taken (a query sees every signal sent
        # before it). A refused resolve is noted there with the reason, and audited.
        after = (await handle.query("timeline", result_type=Timeline)).entries[before:]
        return [entry.text for entry in after if entry.kind == "refused" and entry.actor == by]

    refusals = _run(go())
    if refusals:
        raise _refused(refusals[0].removeprefix(f"resolve from {by} refused: "))
    typer.echo(f"{wid}: marked resolved by {by}{_signed_by(signed)}")


@app.command()
def triage(
    incident: str,
    runbook: str = typer.Option(..., "--runbook", help="the runbook to hand the incident to"),
    target: list[str] = typer.Option([], "--target", help="a target field as key=value; repeat for each"),
    by: str = typer.Option(..., "--by", envvar="USER", help="who hands it over (default: $USER)"),
    key: Path | None = typer.Option(None, "--key", help=KEY_HELP),
    yes: bool = typer.Option(False, "--yes", "-y", help=YES_HELP),
) -> None:
    """Hand a triage incident to a runbook with the target its alert lacked (refused with the reason)."""
    from temporalio.client import WorkflowUpdateFailedError

    from schemas.triage import RunbookStarted, RunRunbook
    from stanch.ops.signer import TRIAGE_GATE, handover, pick_gate

    fields = _target_fields(target)
    signer = _signer(key)
    signed = None
    if signer is not None:
        entry = pick_gate(_fetch_brief(incident), TRIAGE_GATE)
        if entry is None:
            raise _refused(f"{workflow_id(incident)} is not a triage incident waiting to be handed over")
        signed = _sign(handover(entry, runbook, fields), "run_runbook", by, signer, yes)
    request = RunRunbook(by=by, runbook=runbook, target=fields, signed=signed)

    async def go() -> RunbookStarted:
        handle = (await connect(_settings())).get_workflow_handle(workflow_id(incident))
        return await handle.execute_update("run_runbook", request, result_type=RunbookStarted)

    try:
        started = _run(go())
    except WorkflowUpdateFailedError as error:
        raise _refused(_update_refusal(error)) from None
    typer.echo(
        f"{workflow_id(incident)}: handed to {started.runbook} as {started.workflow_id} "
        f"(by {by}{_signed_by(signed)})"
    )


# Verbs a person types, and the guardrail mode each one sets.
KILL_SWITCH_VERBS = {"engage": "engaged", "arm": "armed", "off": "off"}


@app.command("kill-switch")
def kill_switch(
    subsystem: str = typer.Argument(..., help="the guardrail's subsystem, e.g. gateway"),
    verb: str | None = typer.Argument(
        None,
        help="engage (every destructive or critical action asks a human), arm (the default cap), off; "
        "leave out to show the current mode",
    ),
    by: str | None = typer.Option(None, "--as", help="who sets it (kept in the audit log)"),
    reason: str = typer.Option("", help="why (required to change it)"),
    key: Path | None = typer.Option(
        None, "--key", help=KEY_HELP + "; signs turning it off or disengaging it"
    ),
    yes: bool = typer.Option(False, "--yes", "-y", help=YES_HELP),
) -> None:
    """Show or set a subsystem's kill switch: engage, arm or off. Audited; takes effect at once. Turning it
    off, or arming it when it is engaged, undoes a safety: that change is signed with your key."""
    from temporalio.common import WorkflowIDConflictPolicy
    from temporalio.service import RPCError

    from activities.guardrail import update_guardrail
    from schemas.guardrail import (
        GUARDRAIL_WORKFLOW,
        KILL_SWITCH_UPDATE,
        STATE_QUERY,
        GuardrailInput,
        GuardrailState,
        KillSwitchChange,
        KillSwitchMode,
        guardrail_workflow_id,
    )
    from stanch.ops.signer import choose_key, kill_switch_decision, kill_switch_verdict, unsigned_notice
    from stanch.policy import load_policy_or_exit

    settings = _settings()
    mode = KILL_SWITCH_VERBS.get(verb.lower(), verb.lower()) if verb else None
    if mode is not None and mode not in {m.value for m in KillSwitchMode}:
        typer.echo(f"stanch: {verb!r}: say engage, arm or off", err=True)
        raise typer.Exit(2)
    if mode is not None and not (by and reason.strip()):
        typer.echo("stanch: changing the kill switch needs --as <you> and --reason <why>", err=True)
        raise typer.Exit(2)

    async def show() -> GuardrailState | None:
        handle = (await connect(settings)).get_workflow_handle(guardrail_workflow_id(subsystem))
        try:
            state: GuardrailState = await handle.query(STATE_QUERY, result_type=GuardrailState)
        except RPCError as error:
            if "not found" in error.message.lower():
                return None
            raise
        return state

    async def running_guardrail(client: Client) -> WorkflowHandle[Any, Any]:
        """The subsystem's guardrail, started first if it is not running, as a runbook's first ask would
        start it: with the policy's limits, and its signature rules and keys, which a change that undoes a
        safety is checked against."""
        policy = load_policy_or_exit(settings.config)
        return await client.start_workflow(
            GUARDRAIL_WORKFLOW,
            GuardrailInput(
                subsystem=subsystem,
                limits=policy.guardrail_limits(subsystem),
                signatures=policy.approvals.signatures,
                keyring=policy.keyring(),
            ),
            id=guardrail_workflow_id(subsystem),
            task_queue=settings.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            static_summary=f"Guardrail for {subsystem}",
        )

    async def change(new_mode: KillSwitchMode, who: str, signed: SignedDecision | None) -> GuardrailState:
        client = await connect(settings)
        await running_guardrail(client)
        state: GuardrailState = await update_guardrail(
            client,
            settings.task_queue,
            subsystem,
            load_policy_or_exit(settings.config).guardrail_limits(subsystem),
            KILL_SWITCH_UPDATE,
            KillSwitchChange(by=who, mode=new_mode, reason=reason, signed=signed),
            result_type=GuardrailState,
            refused="the kill switch",
        )
        return state

    async def current_run() -> tuple[str, KillSwitchMode]:
        """The guardrail's run and mode now, for a signature (it names the run)."""
        handle = await running_guardrail(await connect(settings))
        run_id = (await handle.describe()).run_id
        state: GuardrailState = await handle.query(STATE_QUERY, result_type=GuardrailState)
        assert run_id is not None
        return run_id, state.mode

    def signed_change(new_mode: KillSwitchMode, who: str) -> SignedDecision | None:
        """A signature for a change that undoes a safety (None for one that adds one, or with no key)."""
        if new_mode is KillSwitchMode.engaged:
            return None  # engaging only ever adds a safety

        def undoes_a_safety() -> bool:
            found = _run(show())
            policy = load_policy_or_exit(settings.config)
            current = (
                found.mode if found is not None else policy.guardrail_limits(subsystem).kill_switch_default
            )
            return kill_switch_verdict(current.value, new_mode.value) is not None

        if choose_key(key, os.environ, Path.home()) is None:
            if undoes_a_safety():
                typer.echo(unsigned_notice(), err=True)
            return None
        # The key first, so a named key that cannot be loaded stops the command before it asks anything.
        signer = _signer(key)
        if signer is None or not undoes_a_safety():
            return None
        run_id, current = _run(current_run())
        verdict = kill_switch_verdict(current.value, new_mode.value)
        if verdict is None:  # someone else moved it meanwhile; nothing to undo any more
            return None
        decision = kill_switch_decision(
            guardrail_workflow_id(subsystem), run_id, subsystem, current.value, new_mode.value, verdict
        )
        return _sign(decision, verdict, who, signer, yes)

    if mode is None:
        found = _run(show())
        if found is None:
            default = load_policy_or_exit(settings.config).guardrail_limits(subsystem).kill_switch_default
            typer.echo(f"{guardrail_workflow_id(subsystem)}: not running; it starts {default.value} (policy)")
            return
        state = found
    else:
        from temporalio.exceptions import ApplicationError

        assert by is not None
        signed = signed_change(KillSwitchMode(mode), by)
        try:
            state = _run(change(KillSwitchMode(mode), by, signed))
        except ApplicationError as error:
            typer.echo(f"stanch: refused: {error.message}", err=True)
            raise typer.Exit(1) from None
    setter = f" (set by {state.mode_by}: {state.mode_reason})" if state.mode_by else " (the policy's default)"
    typer.echo(f"{guardrail_workflow_id(subsystem)}: kill switch {state.mode.value}{setter}")
    typer.echo(
        f"  critical or destructive actions in the last {state.limits.critical_window.total_seconds() / 60:g} "
        f"min: {state.critical_in_window}/{state.limits.critical_retries_per_window}; restarts in the last "
        f"hour: {state.restarts_in_last_hour}/{state.limits.high_restarts_per_hour}"
    )


@app.command()
def learning(
    incident: str,
    by: str = typer.Option(..., "--by", envvar="USER", help="who writes the learning (default: $USER)"),
    root_cause: str = typer.Option(..., "--root-cause", help="what failed and why"),
    impact: str = typer.Option(..., "--impact", help="who was affected, for how long"),
    prevention: list[str] = typer.Option([], "--prevention", help="a step that stops it coming back; repeat"),
    alert_change: list[str] = typer.Option([], "--alert-change", help="an alert to add or tune; repeat"),
    automation: list[str] = typer.Option([], "--automation", help="what Stanch could do itself; repeat"),
) -> None:
    """Send a resolved incident's post-incident learning to its post-mortem (refused with the field)."""
    from temporalio.client import WorkflowUpdateFailedError

    from schemas.briefs import Brief
    from schemas.learning import LEARNING, Learning, LearningAnswer, postmortem_workflow_id
    from stanch.markup import plain

    sent = Learning(
        by=by,
        root_cause=root_cause,
        impact=impact,
        prevention=prevention,
        alert_changes=alert_change,
        automation=automation,
    )

    async def go() -> LearningAnswer:
        client = await connect(_settings())
        target = incident
        if not incident.startswith("postmortem-"):
            # The incident's brief links its post-mortem (its id may carry the run when the key reopened).
            brief = await client.get_workflow_handle(workflow_id(incident)).query("brief", result_type=Brief)
            target = (
                brief.postmortem.workflow_id
                if brief.postmortem
                else postmortem_workflow_id(brief.incident_id)
            )
        handle = client.get_workflow_handle(target)
        return await handle.execute_update(LEARNING, sent, result_type=LearningAnswer)

    try:
        answer = _run(go())
    except WorkflowUpdateFailedError as error:
        reason = getattr(error.cause, "message", None) or str(error.cause or error)
        typer.echo(f"stanch: refused: {reason}", err=True)
        raise typer.Exit(1) from None
    report = answer.report_id or "not stored (on-call was paged)"
    typer.echo(f"{answer.workflow_id}: learning by {plain(by)} taken; report {plain(report)}")
    for story in answer.stories:
        typer.echo(f"  story filed: {plain(story)}")


# ---- audit ---------------------------------------------------------------------------------------


@audit_app.command("log")
def audit_log(incident: str) -> None:
    """Print an incident's rows from the Postgres audit log, oldest first."""
    from stanch.audit_store import read_rows

    rows = read_rows(_settings().database_url, workflow_id(incident))
    if not rows:
        typer.echo(f"no audit rows for {workflow_id(incident)}")
    for row in rows:
        typer.echo(
            f"{row.occurred_at:%Y-%m-%d %H:%M:%S} {row.step_key:<24} {row.actor:<10} {row.outcome:<10} "
            f"{row.action}{' — ' + row.reason if row.reason else ''}"
        )


@audit_app.command("verify")
def audit_verify(
    incident: str | None = typer.Argument(None, help="only this incident (default: every incident)"),
    history: str | None = typer.Option(
        None,
        "--history",
        help="also re-verify this history's signatures and cross-check it (file or workflow id) against the "
        "audit rows",
    ),
    signatures_only: bool = typer.Option(
        False,
        "--signatures-only",
        help="with --history: only re-verify its signatures, offline (no database; a file needs no Temporal)",
    ),
) -> None:
    """Check the audit log's hash chains; report the first broken link of each.

    With --history: first every signature in the history holds against the keyring in force at its event
    (see stanch/ops/history_signatures.py), then every effect in the history has its audit row, every audit
    row of that run has its event in the history, and that incident's chain holds (see
    stanch/ops/history_audit.py). Exit 1 if any check fails.
    """
    from stanch.audit_store import verify_chains

    if signatures_only and history is None:
        typer.echo("stanch: --signatures-only checks a history: give --history <file|id>", err=True)
        raise typer.Exit(2)
    if history is not None:
        from stanch.ops.history_audit import audited_run, cross_check
        from stanch.ops.history_signatures import check_signatures

        [(_, recorded)] = _histories([history])
        signatures = check_signatures(recorded)
        typer.echo(signatures.summary())
        if signatures_only:
            if signatures.problems:
                raise typer.Exit(1)
            return
        audited_id, _run_id = audited_run(recorded)
        if not audited_id:
            typer.echo(
                f"stanch: {history}: the history holds no audit write; nothing to cross-check", err=True
            )
            raise typer.Exit(1)
        from stanch.audit_store import read_rows

        settings = _settings()
        check = cross_check(recorded, read_rows(settings.database_url, audited_id))
        chains = verify_chains(settings.database_url, audited_id)
        typer.echo(check.summary())
        typer.echo(chains.summary())
        if signatures.problems or check.problems or chains.broken:
            raise typer.Exit(1)
        return

    report = verify_chains(_settings().database_url, workflow_id(incident) if incident else None)
    typer.echo(report.summary())
    if report.broken:
        raise typer.Exit(1)


def _histories(sources: list[str]) -> list[tuple[str, WorkflowHistory]]:
    """Each source is a history file (UI Download, `temporal workflow show --output json`, `stanch audit
    export`) or a workflow id to fetch from Temporal (`incident-` may be left off, as elsewhere)."""
    from temporalio.service import RPCError

    from stanch.codec import codec_from_settings
    from stanch.ops.replay import load_history

    loaded: dict[str, WorkflowHistory] = {
        source: load_history(Path(source)) for source in sources if Path(source).is_file()
    }
    wanted = [source for source in sources if source not in loaded]

    async def fetch() -> None:
        client = await connect(_settings())
        for source in wanted:
            try:
                loaded[source] = await client.get_workflow_handle(source).fetch_history()
            except RPCError:
                if source.startswith("incident-"):
                    raise
                # Not a workflow id as typed: try it as an incident's dedupe key.
                loaded[source] = await client.get_workflow_handle(workflow_id(source)).fetch_history()

    if wanted:
        _run(fetch())
    codec = codec_from_settings(_settings())
    if codec is not None:
        # Encrypted histories: the timeline and the cross-check read payloads themselves, so decode first.
        from stanch.codec import decoded_history

        loaded = {source: _run(decoded_history(history, codec)) for source, history in loaded.items()}
    return [(source, loaded[source]) for source in sources]


@audit_app.command("export")
def audit_export(
    incident: str = typer.Argument(..., help="workflow id (or an incident's dedupe key)"),
    output: str | None = typer.Option(None, "-o", "--output", help="write here instead of stdout"),
) -> None:
    """Write a workflow's history as JSON, the format of the Temporal UI's Download and of
    `temporal workflow show --output json`; `audit replay`, `timeline` and `verify --history` read it."""
    [(_, history)] = _histories([incident])
    text = history.to_json()
    if output is None:
        typer.echo(text)
        return
    with open(output, "w", encoding="utf-8") as file:
        file.write(text + "\n")
    typer.echo(f"{history.workflow_id}: {len(history.events)} events written to {output}", err=True)


@audit_app.command("replay")
def audit_replay(
    sources: list[str] = typer.Argument(..., help="history files or workflow ids"),
) -> None:
    """Replay histories against the current workflow code: OK, or the nondeterminism and its event."""
    import asyncio

    from stanch.codec import data_converter
    from stanch.ops.replay import replay

    histories = _histories(sources)
    outcomes = asyncio.run(replay(histories, data_converter=data_converter(_settings())))
    for outcome in outcomes:
        typer.echo(outcome.line())
    failed = sum(not outcome.ok for outcome in outcomes)
    typer.echo(f"{len(outcomes) - failed} replayed OK, {failed} failed")
    if failed:
        raise typer.Exit(1)


@audit_app.command("timeline")
def audit_timeline(
    source: str = typer.Argument(..., help="a history file or a workflow id"),
    fmt: str = typer.Option("text", "--format", help="text, json or markdown"),
) -> None:
    """Tell an incident's story from its history alone: alerts, actions, answers, escalations, outcome."""
    from stanch.history_timeline import build_timeline, render

    if fmt not in ("text", "json", "markdown"):
        typer.echo(f"stanch: --format must be text, json or markdown, not {fmt!r}", err=True)
        raise typer.Exit(2)
    [(_, history)] = _histories([source])
    typer.echo(render(build_timeline(history), fmt))


# ---- schedules -----------------------------------------------------------------------------------

schedule_app = typer.Typer(
    help="Temporal Schedules Stanch keeps (the daily report).", no_args_is_help=True, rich_markup_mode=None
)
app.add_typer(schedule_app, name="schedule")


@schedule_app.command("apply")
def schedule_apply(
    hour: int = typer.Option(7, min=0, max=23, help="UTC hour the daily cockpit report runs"),
    minute: int = typer.Option(0, min=0, max=59, help="minute past that hour"),
) -> None:
    """Create or update the daily cockpit report schedule; applying twice leaves one schedule."""
    from stanch.schedules import apply_schedules

    async def go() -> dict[str, str]:
        settings = _settings()
        return await apply_schedules(await connect(settings), settings.task_queue, hour, minute)

    for schedule_id, outcome in _run(go()).items():
        typer.echo(f"{schedule_id}: {outcome} (daily at {hour:02d}:{minute:02d} UTC)")


@app.command()
def systems() -> None:
    """Check every system the runbooks act on, through the adapter the policy names for it
    (`[systems.<name>]`; the HTTP contract at STANCH_PLATFORM_URL where it names none). Exit 1 if one fails."""
    import asyncio

    from activities.adapters import AdapterConfigError
    from activities.systems import open_systems
    from schemas.systems import SYSTEM_DESCRIPTIONS
    from stanch.policy import load_policy_or_exit
    from workers.worker import adapter_context

    settings = _settings()
    policy = load_policy_or_exit(settings.config)

    async def go() -> list[SystemCheck]:
        async with open_systems(policy, adapter_context(settings)) as opened:
            return await opened.check()

    try:
        checks = asyncio.run(go())
    except AdapterConfigError as error:
        typer.echo(f"stanch: policy file {settings.config}: {error}", err=True)
        raise typer.Exit(2) from None
    for check in checks:
        mark = "ok    " if check.ok else "FAILED"
        typer.echo(f"{mark} {check.system:<10} {check.adapter:<9} {check.detail}")
        typer.echo(f"       {'':<10} {'':<9} ({SYSTEM_DESCRIPTIONS[check.system]})")
    if not all(check.ok for check in checks):
        raise typer.Exit(1)


def main() -> None:
    """Console entry point: the command's own exit code, whatever happens at interpreter shutdown.

    The Temporal SDK's native runtime can abort while Python finalises (PyGILState_Release), turning a
    finished, successful `stanch approve` into exit code -6. Once the command has returned there is nothing
    left to do, so flush and leave without finalising.
    """
    try:
        app()
    except SystemExit as exit_:
        code = exit_.code
        if isinstance(code, str):
            print(code, file=sys.stderr)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code if isinstance(code, int) else 0 if code is None else 1)
