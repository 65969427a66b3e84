"""`stanch`: run the stack, fire alerts, and answer incidents from a terminal."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Coroutine
from typing import Any, TypeVar

import httpx
import typer
from temporalio.client import WorkflowUpdateFailedError
from temporalio.service import RPCError

from schemas.approvals import Decision, DecisionOutcome, EscalationRequest, Resolution
from schemas.briefs import Brief, Timeline
from stanch.settings import Settings, load_settings_or_exit
from stanch.temporal_client import connect

app = typer.Typer(help="Stanch: incident runbooks as durable Temporal workflows.", no_args_is_help=True)
audit_app = typer.Typer(help="Read and verify the audit trail.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")

T = TypeVar("T")


def _run(coro: Coroutine[Any, Any, T]) -> T:
    try:
        return asyncio.run(coro)
    except RPCError as error:
        typer.echo(f"stanch: Temporal said: {error.message}", err=True)
        raise typer.Exit(1) from None
    except RuntimeError as error:
        if "connect" in str(error).lower():
            typer.echo(f"stanch: cannot reach Temporal: {error}", err=True)
            raise typer.Exit(1) from None
        raise


def _settings() -> Settings:
    return load_settings_or_exit()


def workflow_id(incident: str) -> str:
    return incident if incident.startswith("incident-") else f"incident-{incident}"


# ---- processes -----------------------------------------------------------------------------------


@app.command()
def dev() -> None:
    """Bring up everything: Temporal + UI, Postgres, worker, intake and sandbox. Ctrl-C stops it all."""
    from stanch.devstack import DevStack
    from stanch.policy import load_policy_or_exit

    settings = _settings()
    load_policy_or_exit(settings.config)
    DevStack(settings).run_forever()


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
def sandbox() -> None:
    """Run the sandbox platform (a stand-in for your agent platform, gateway, chat and deploys)."""
    from workers.sandbox import main

    settings = _settings()
    main(settings.host, settings.sandbox_port)


# ---- operators -----------------------------------------------------------------------------------


@app.command()
def fire(
    scenario: str = typer.Argument(..., help="sample alert, e.g. agent-hallucination"),
    agent: str = typer.Option("support-bot", help="the agent the alert is about"),
    fingerprint: str | None = typer.Option(None, help="override the alert fingerprint (dedupe key)"),
) -> None:
    """POST a sample Alertmanager alert to the intake, as monitoring would."""
    from stanch.samples import SAMPLES, sample

    settings = _settings()
    if scenario not in SAMPLES:
        typer.echo(f"stanch: unknown scenario {scenario!r}; choose one of: {', '.join(SAMPLES)}", err=True)
        raise typer.Exit(2)
    headers = {}
    if settings.intake_token:
        headers["Authorization"] = f"Bearer {settings.intake_token.get_secret_value()}"
    url = f"http://{settings.host}:{settings.intake_port}/alerts/alertmanager"
    try:
        response = httpx.post(
            url, json=sample(scenario, agent=agent, fingerprint=fingerprint), headers=headers
        )
    except httpx.HTTPError as error:
        typer.echo(f"stanch: cannot reach the intake at {url}: {error}", err=True)
        raise typer.Exit(1) from None
    typer.echo(json.dumps(response.json(), indent=2))
    if response.status_code >= 400:
        raise typer.Exit(1)


@app.command("list")
def list_incidents(
    state: str | None = typer.Option(None, help="only incidents in this state, e.g. awaiting_approval"),
    all_runs: bool = typer.Option(False, "--all", help="include closed incidents"),
) -> None:
    """List incidents (open ones by default)."""

    async def go() -> None:
        client = await connect(_settings())
        clauses = ["StanchRunbook IS NOT NULL"]
        if state:
            clauses.append(f"StanchState = '{state}'")
        if not all_runs:
            clauses.append("ExecutionStatus = 'Running'")
        async for execution in client.list_workflows(" AND ".join(clauses)):
            attrs = {key.name: value for key, value in execution.typed_search_attributes}
            typer.echo(
                f"{execution.id:<50} {attrs.get('StanchSeverity', '?'):<3} {attrs.get('StanchRunbook', '?'):<24} "
                f"{attrs.get('StanchState', '?'):<18} {execution.start_time:%Y-%m-%d %H:%M:%S}"
            )

    _run(go())


@app.command()
def brief(incident: str, timeline: bool = typer.Option(False, help="print the timeline too")) -> None:
    """Print an incident's decision brief."""

    async def go() -> None:
        handle = (await connect(_settings())).get_workflow_handle(workflow_id(incident))
        result = await handle.query("brief", result_type=Brief)
        typer.echo(result.as_markdown().replace("\n\n", "\n"))
        if timeline:
            entries = await handle.query("timeline", result_type=Timeline)
            typer.echo("\nTimeline:")
            for entry in entries.entries:
                typer.echo(f"  {entry.at:%H:%M:%S} {entry.kind:<11} {entry.actor:<12} {entry.text}")

    _run(go())


def _decide(incident: str, action: str, approver: str, comment: str, approved: bool) -> None:
    async def go() -> DecisionOutcome:
        handle = (await connect(_settings())).get_workflow_handle(workflow_id(incident))
        decision = Decision(approver=approver, action=action, comment=comment, approved=approved)
        return await handle.execute_update("decide", decision, result_type=DecisionOutcome)

    try:
        outcome = _run(go())
    except WorkflowUpdateFailedError as error:
        # The validator's own sentence, without the exception type the SDK wraps it in.
        reason = getattr(error.cause, "message", None) or str(error.cause or error)
        typer.echo(f"stanch: refused: {reason}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"{workflow_id(incident)}: {outcome.detail} (by {outcome.approver})")


@app.command()
def approve(
    incident: str,
    action: str,
    approver: str = typer.Option(..., "--as", help="who approves (must hold an allowed role)"),
    comment: str = typer.Option("", help="why"),
) -> None:
    """Approve the action an incident recommends (refused if it is not the recommended one)."""
    _decide(incident, action, approver, comment, approved=True)


@app.command()
def reject(
    incident: str,
    action: str,
    approver: str = typer.Option(..., "--as", help="who rejects"),
    comment: str = typer.Option("", help="why"),
) -> None:
    """Reject the action an incident recommends; the runbook keeps its safe state."""
    _decide(incident, action, approver, comment, approved=False)


@app.command()
def escalate(incident: str, by: str = typer.Option(..., "--as"), reason: str = typer.Option("")) -> None:
    """Escalate to the next level now instead of waiting for the timer."""

    async def go() -> None:
        handle = (await connect(_settings())).get_workflow_handle(workflow_id(incident))
        await handle.signal("escalate", EscalationRequest(by=by, reason=reason))

    _run(go())
    typer.echo(f"{workflow_id(incident)}: escalation requested by {by}")


@app.command()
def resolve(incident: str, by: str = typer.Option(..., "--as"), note: str = typer.Option("")) -> None:
    """Mark an incident resolved."""

    async def go() -> None:
        handle = (await connect(_settings())).get_workflow_handle(workflow_id(incident))
        await handle.signal("resolve", Resolution(by=by, note=note))

    _run(go())
    typer.echo(f"{workflow_id(incident)}: marked resolved by {by}")


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
) -> None:
    """Check the audit log's hash chains; report the first broken link of each."""
    from stanch.audit_store import verify_chains

    report = verify_chains(_settings().database_url, workflow_id(incident) if incident else None)
    typer.echo(report.summary())
    if report.broken:
        raise typer.Exit(1)


# ---- schedules -----------------------------------------------------------------------------------

schedule_app = typer.Typer(help="Temporal Schedules Stanch keeps (the daily report).", no_args_is_help=True)
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
