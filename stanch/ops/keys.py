"""`stanch keys`: the signing keys the policy trusts, and getting a change of them to what is already running.

Every incident and guardrail checks signed decisions against the keyring it was started with (issue 13), so
a key added to or removed from the policy reaches new ones only. `stanch keys sync` sends the policy's
keyring to every running incident and guardrail as the `keys` signal: a recorded message, so history holds
the keys in force at each event and a decision signed with a removed key is refused from the moment the
signal is in the incident's history. `stanch keys list` shows what the policy holds, as `ssh-keygen -lf`
prints it, so a person can compare it with their own key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    # Each command imports what it uses: `stanch --help` builds this group too, and should not wait for
    # pydantic, the policy or the Temporal client (stanch/ops/cli.py says more).
    from temporalio.client import Client

    from schemas.signatures import Keyring
    from stanch.policy import Policy

keys_app = typer.Typer(
    help="The signing keys the policy trusts; send a change of them to running incidents.",
    rich_markup_mode=None,  # plain help, as the other groups of stanch/ops/cli.py, for the same reason
)

KEYS_SIGNAL = "keys"


def running_holders_query() -> str:
    """Every running incident (each runbook sets StanchRunbook) and every running guardrail, in one list."""
    from schemas.guardrail import GUARDRAIL_WORKFLOW

    return f"ExecutionStatus = 'Running' AND (StanchRunbook IS NOT NULL OR WorkflowType = '{GUARDRAIL_WORKFLOW}')"


# Signals in flight at once: enough to sync thousands of parked incidents in seconds, few enough that the
# server is not flooded by one command.
PARALLEL_SIGNALS = 16


# ---- list ----------------------------------------------------------------------------------------------


def keygen_line(line: str) -> str:
    """One public key as `ssh-keygen -lf` prints it: bits, fingerprint, comment, type."""
    from stanch.signing import parse_public_key

    key = parse_public_key(line)
    return f"256 {key.fingerprint} {key.comment or 'no comment'} (ED25519)"


def key_listing(policy: Policy) -> list[str]:
    """Each person's and each trusted service's keys, demo ones marked; people without a key said so."""
    lines: list[str] = []
    for name, person in policy.people.items():
        if not person.keys:
            lines.append(f"{name}: no key (cannot sign)")
            continue
        lines.append(
            f"{name}{' (demo keys: trusted only by stanch dev and the tests)' if person.demo else ''}"
        )
        lines += [f"  {keygen_line(key)}" for key in person.keys]
    for name, service in policy.approvals.services.items():
        demo = " (demo keys: trusted only by stanch dev and the tests)" if service.demo else ""
        lines.append(f"service {name}{demo}: may sign for the people it signed in")
        lines += [f"  {keygen_line(key)}" for key in service.keys]
    return lines


@keys_app.command("list")
def list_keys() -> None:
    """Print the policy's signing keys: each person's and service's fingerprints, and which are demo keys.

    Each key as `ssh-keygen -lf` prints it, so a person can compare it with their own key file."""
    from stanch.policy import load_policy_or_exit
    from stanch.settings import load_settings_or_exit
    from stanch.signing import SigningKeyError

    settings = load_settings_or_exit()
    policy = load_policy_or_exit(settings.config)
    typer.echo(
        f"signing keys in {settings.config} ([approvals] signatures = {policy.approvals.signatures!r}):"
    )
    try:
        for line in key_listing(policy):
            typer.echo(f"  {line}")
    except SigningKeyError as error:  # the policy validated every key at load; kept for a clear line anyway
        typer.echo(f"stanch: {error}", err=True)
        raise typer.Exit(2) from None


# ---- sync ----------------------------------------------------------------------------------------------


@dataclass
class SyncReport:
    incidents: list[str] = field(default_factory=list)
    guardrails: list[str] = field(default_factory=list)
    # Closed between the list and the signal: they decide nothing more, so they need no keys.
    finished: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)

    def lines(self) -> list[str]:
        def count(n: int, what: str) -> str:
            return f"{n} {what}{'' if n == 1 else 's'}"

        lines = [
            f"keyring sent to {count(len(self.incidents), 'running incident')} and "
            f"{count(len(self.guardrails), 'guardrail')}"
        ]
        if self.finished:
            lines.append(
                f"{count(len(self.finished), 'workflow')} ended before it arrived (nothing left to sign)"
            )
        lines += [f"  not sent to {workflow_id}: {reason}" for workflow_id, reason in self.failed]
        return lines


async def sync_keyring(client: Client, keyring: Keyring) -> SyncReport:
    """Send `keyring` to every running incident and guardrail: one visibility list, then one signal each.

    The signal goes to the workflow id's current run, so a guardrail that continued-as-new since the list
    still gets it (its next run carries it on)."""
    import asyncio

    from temporalio.service import RPCError, RPCStatusCode

    from schemas.guardrail import GUARDRAIL_WORKFLOW

    report = SyncReport()
    running = [
        (execution.id, execution.workflow_type)
        async for execution in client.list_workflows(running_holders_query())
    ]
    gate = asyncio.Semaphore(PARALLEL_SIGNALS)

    async def send(workflow_id: str, workflow_type: str) -> None:
        async with gate:
            try:
                await client.get_workflow_handle(workflow_id).signal(KEYS_SIGNAL, keyring)
            except RPCError as error:
                if error.status is RPCStatusCode.NOT_FOUND:
                    report.finished.append(workflow_id)
                else:
                    report.failed.append((workflow_id, error.message))
                return
        (report.guardrails if workflow_type == GUARDRAIL_WORKFLOW else report.incidents).append(workflow_id)

    await asyncio.gather(*(send(workflow_id, workflow_type) for workflow_id, workflow_type in running))
    return report


def _key_count(keyring: Keyring) -> str:
    keys = sum(len(lines) for lines in (*keyring.people.values(), *keyring.services.values()))
    # People with a key of their own: the keyring lists every person (a service may sign for any of them).
    people = sum(1 for lines in keyring.people.values() if lines)
    return (
        f"{people} {'person' if people == 1 else 'people'}, "
        f"{len(keyring.services)} service{'' if len(keyring.services) == 1 else 's'}, "
        f"{keys} key{'' if keys == 1 else 's'}"
    )


@keys_app.command("sync")
def sync() -> None:
    """Send the policy's keys to every running incident and guardrail; prints how many got it.

    The `keys` signal replaces each one's keyring, so a key added to or removed from the policy counts for
    decisions on what is already running as soon as this returns."""
    import asyncio

    from temporalio.service import RPCError

    from stanch.policy import load_policy_or_exit
    from stanch.settings import load_settings_or_exit
    from stanch.temporal_client import connect
    from stanch.trust import demo_keys_refusal

    settings = load_settings_or_exit()
    policy = load_policy_or_exit(settings.config)
    # Sending demo keys to running incidents would make them trust keys whose private halves are public.
    refusal = demo_keys_refusal(
        policy,
        settings.config,
        dev_fix="against the dev stack, load its environment: set -a; . .stanch/dev.env; set +a",
    )
    if refusal:
        typer.echo(f"stanch: {refusal}", err=True)
        raise typer.Exit(2)
    keyring = policy.keyring()

    async def go() -> SyncReport:
        return await sync_keyring(await connect(settings), keyring)

    try:
        report = asyncio.run(go())
    except RPCError as error:
        typer.echo(f"stanch: Temporal said: {error.message}", err=True)
        raise typer.Exit(1) from None
    except RuntimeError as error:
        if "connect" not in str(error).lower():
            raise
        typer.echo(f"stanch: cannot reach Temporal: {error}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"keyring of {settings.config}: {_key_count(keyring)}")
    for line in report.lines():
        typer.echo(line)
    if report.failed:
        raise typer.Exit(1)
