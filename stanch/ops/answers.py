"""`stanch brief`, `approve` and `reject`, and the signing helpers the CLI's other deciding commands share,
without typer (issue 15, goal 7).

These are what a person types at 3 a.m., so they must answer within three times the `temporal` CLI. With
STANCH_TEMPORAL_HTTP_URL set they go over Temporal's HTTP API (stanch/ops/temporal_http.py: neither the
SDK nor pydantic-settings), and the console entry point (stanch/ops/entry.py) runs them before typer is
imported. `stanch brief` prints the brief from the query's JSON (stanch.brief_text), and an unsigned
decision is read and written as JSON too (stanch.questions applies the golden rule to it), so those paths
load no pydantic either; signing loads the models and cryptography as before. The typer commands in
stanch/ops/cli.py call the same functions, with the same output and exit codes: a failure says its one
line on stderr and raises SystemExit, as `typer.Exit` would. Unset or unanswered, every command falls
back to the SDK, loaded here only then.
"""

from __future__ import annotations

import json
import os
import re
import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from collections.abc import Coroutine

    from temporalio.client import Client, WorkflowUpdateFailedError

    from schemas.approvals import Decision, DecisionOutcome
    from schemas.briefs import Brief
    from schemas.signatures import SignedDecision, ToSign, Verdict
    from stanch.ops.signer import Signer
    from stanch.ops.temporal_http import TemporalHttp
    from stanch.settings import Settings

T = TypeVar("T")

KEY_HELP = "private key to sign with (OpenSSH Ed25519); default: $STANCH_SIGNING_KEY, else ~/.ssh/id_ed25519"
YES_HELP = "sign without asking (read what it signs first: it is printed all the same)"

# What click.echo strips from text going to anything but a terminal (click's own pattern), kept so these
# commands print the bytes they printed through typer.
_ANSI = re.compile(r"\033\[[;?0-9]*[a-zA-Z]")


def say(message: str, *, err: bool = False) -> None:
    """One line to stdout (or stderr), as click.echo writes it."""
    stream = sys.stderr if err else sys.stdout
    if not stream.isatty():
        message = _ANSI.sub("", message)
    stream.write(message + "\n")
    stream.flush()


def refused(reason: str) -> SystemExit:
    say(f"stanch: refused: {reason}", err=True)
    return SystemExit(1)


def temporal_said(message: str) -> SystemExit:
    # The same line for the HTTP API's error and the SDK's RPCError, so both paths fail alike.
    say(f"stanch: Temporal said: {message}", err=True)
    return SystemExit(1)


def workflow_id(incident: str) -> str:
    # A post-mortem (`postmortem-<incident id>`) is answered like an incident: brief, timeline, learning.
    return incident if incident.startswith(("incident-", "postmortem-")) else f"incident-{incident}"


# ---- the SDK path ------------------------------------------------------------------------------------


def settings() -> Settings:
    from stanch.settings import load_settings_or_exit

    return load_settings_or_exit()


async def connect(settings: Settings) -> Client:
    from stanch.temporal_client import connect as connect_to_temporal

    return await connect_to_temporal(settings)


def run(coro: Coroutine[Any, Any, T]) -> T:
    import asyncio

    from temporalio.service import RPCError

    try:
        return asyncio.run(coro)
    except RPCError as error:
        raise temporal_said(error.message) from None
    except RuntimeError as error:
        if "connect" in str(error).lower():
            say(f"stanch: cannot reach Temporal: {error}", err=True)
            raise SystemExit(1) from None
        raise


def http() -> TemporalHttp | None:
    """Temporal's HTTP API when STANCH_TEMPORAL_HTTP_URL names one (issue 15: neither the SDK nor
    pydantic-settings to load), else None: the SDK path, which validates every setting."""
    from stanch.ops.temporal_http import HttpSettings, TemporalHttp

    found = HttpSettings.from_environment(os.environ)
    return TemporalHttp(found) if found is not None else None


# ---- brief -------------------------------------------------------------------------------------------


def _brief_of(raw: bytes | None) -> str:
    """The brief's text from the query's JSON (stanch.brief_text); JSON that is not a brief goes through
    the model, whose validation error says what is wrong with it, as on the SDK path."""
    from stanch.brief_text import brief_text

    try:
        return brief_text(json.loads(raw or b"null"))
    except (KeyError, TypeError, ValueError, AttributeError):
        from schemas.briefs import Brief

        return Brief.model_validate_json(raw or b"null").as_text()


def _timeline_of(raw: bytes | None) -> str:
    from stanch.brief_text import timeline_text

    try:
        return timeline_text(json.loads(raw or b"null")["entries"])
    except (KeyError, TypeError, ValueError, AttributeError):
        from schemas.briefs import Timeline

        return timeline_text(Timeline.model_validate_json(raw or b"null").model_dump(mode="json")["entries"])


def _brief_over_http(wid: str, timeline: bool) -> bool:
    """Answer `stanch brief` over the HTTP API; False when it is not there (the SDK path answers then).
    Both queries are asked before anything is printed, so a fallback never prints the brief twice. A
    closed run is read from its history (stanch.closed_brief) like on the SDK path."""
    from stanch.ops.temporal_http import QueryRejected, TemporalSaid, Unavailable

    over_http = http()
    if over_http is None:
        return False
    try:
        text = _brief_of(over_http.query(wid, "brief", reject_closed=True))
        if timeline:
            text += "\n" + _timeline_of(over_http.query(wid, "timeline"))
    except Unavailable:
        return False
    except QueryRejected:
        _closed_brief(settings(), wid, timeline)
        return True
    except TemporalSaid as error:
        raise temporal_said(error.message) from None
    say(text)
    return True


def _sdk_text(brief: Brief, timeline: Any | None) -> str:
    from stanch.brief_text import timeline_text

    text = brief.as_text()  # plain text: a terminal renders no Markdown
    if timeline is not None:
        text += "\n" + timeline_text(timeline.model_dump(mode="json")["entries"])
    return text


def _closed_brief(found: Settings, wid: str, timeline: bool) -> None:
    """A closed incident answers no query without a worker of its version (issue 16): read its history."""
    from schemas.briefs import Brief, Timeline
    from stanch.closed_brief import ClosedBriefError, closed_brief

    async def go() -> None:
        client = await connect(found)
        try:
            answer = await closed_brief(client, wid)
        except ClosedBriefError:
            # Not an incident's history (a post-mortem's, say): ask its workers, as before.
            handle = client.get_workflow_handle(wid)
            result = await handle.query("brief", result_type=Brief)
            entries = await handle.query("timeline", result_type=Timeline) if timeline else None
            say(_sdk_text(result, entries))
            return
        say(f"stanch: {wid} is {answer.status}: brief read from its history, not from a worker", err=True)
        say(_sdk_text(answer.brief, answer.timeline if timeline else None))

    run(go())


def brief(incident: str, timeline: bool) -> None:
    """Print an incident's decision brief (a closed incident's is read from its history)."""
    wid = workflow_id(incident)
    if _brief_over_http(wid, timeline):
        return
    found = settings()
    from temporalio.client import WorkflowQueryRejectedError
    from temporalio.common import QueryRejectCondition

    from schemas.briefs import Brief, Timeline

    async def go() -> bool:
        handle = (await connect(found)).get_workflow_handle(wid)
        try:
            result = await handle.query(
                "brief", result_type=Brief, reject_condition=QueryRejectCondition.NOT_OPEN
            )
        except WorkflowQueryRejectedError:
            return False
        entries = await handle.query("timeline", result_type=Timeline) if timeline else None
        say(_sdk_text(result, entries))
        return True

    if not run(go()):
        _closed_brief(found, wid, timeline)


# ---- signing (issue 13): the same key rules, confirmation and refusals for every command that signs ----


def signer_for(key: Path | None, *, required: bool = False) -> Signer | None:
    """The key this command signs with (`--key` > STANCH_SIGNING_KEY > ~/.ssh/id_ed25519), loaded; None when
    none was named and the default does not exist: the decision goes out unsigned, as said on stderr."""
    from stanch.ops.key_choice import choose_key, unsigned_notice

    choice = choose_key(key, os.environ, Path.home())
    if choice is None:
        if required:
            say(
                "stanch: nothing to sign with: pass --key PATH, set STANCH_SIGNING_KEY, or make "
                "~/.ssh/id_ed25519 (ssh-keygen -t ed25519)",
                err=True,
            )
            raise SystemExit(2)
        say(unsigned_notice(), err=True)
        return None
    # Only now the signer (cryptography, the pydantic models): an unsigned decision needs neither.
    from stanch.ops.signer import SignerError, load_signing_key

    ask = _ask_passphrase if sys.stdin.isatty() else None
    try:
        return load_signing_key(choice, os.environ, ask)
    except SignerError as error:
        say(f"stanch: {error}", err=True)
        raise SystemExit(2) from None


def _ask_passphrase(prompt: str) -> str:
    import typer  # only at a terminal, where a person types: its prompt is click's

    try:
        passphrase: str = typer.prompt(prompt, hide_input=True, err=True)
    except typer.Abort:
        raise aborted() from None
    return passphrase


def aborted() -> SystemExit:
    # Ctrl-C or end of input at a prompt: what click's main says for it, on either entry point.
    say("Aborted!", err=True)
    return SystemExit(1)


def sign(to_sign: ToSign, verdict: Verdict, approver: str, signer: Signer, yes: bool) -> SignedDecision:
    """Show what is about to be signed, ask (unless --yes), then sign it: the expiry runs from the answer."""
    from datetime import UTC, datetime

    from stanch.ops.signer import confirmation_text, signed_decision

    say(confirmation_text(to_sign, verdict, approver, signer), err=True)
    if not yes:
        if not sys.stdin.isatty():
            say(
                "stanch: not signed: there is no terminal to ask you in; read the above and pass --yes to sign",
                err=True,
            )
            raise SystemExit(2)
        import typer  # at a terminal only, as above

        try:
            confirmed = typer.confirm("Sign it?", default=False, err=True)
        except typer.Abort:
            raise aborted() from None
        if not confirmed:
            say("stanch: not signed; nothing sent", err=True)
            raise SystemExit(1)
    return signed_decision(to_sign, verdict, approver, signer, datetime.now(UTC))


def update_refusal(error: WorkflowUpdateFailedError) -> str:
    # The validator's own sentence, without the exception type the SDK wraps it in.
    return getattr(error.cause, "message", None) or str(error.cause or error)


def fetch_brief(incident: str) -> Brief:
    from schemas.briefs import Brief

    async def go() -> Brief:
        handle = (await connect(settings())).get_workflow_handle(workflow_id(incident))
        brief: Brief = await handle.query("brief", result_type=Brief)
        return brief

    return run(go())


def question(brief: Brief, action: str | None) -> ToSign | None:
    from stanch.ops.signer import SignerError, pick_question

    try:
        return pick_question(brief, action)
    except SignerError as error:
        raise refused(str(error)) from None


def signed_by(signed: SignedDecision | None) -> str:
    return f"; signed, key {signed.key}" if signed is not None else ""


# ---- approve / reject --------------------------------------------------------------------------------


def _brief_to_decide(incident: str, over_http: TemporalHttp | None) -> tuple[Brief, TemporalHttp | None]:
    """The brief a decision answers, over the HTTP API when it is there; with the HTTP client to send the
    decision by (None: it was not there, so the SDK sends it)."""
    from schemas.briefs import Brief
    from stanch.ops.temporal_http import TemporalSaid, Unavailable

    if over_http is not None:
        try:
            raw = over_http.query(workflow_id(incident), "brief")
            return Brief.model_validate_json(raw or b"null"), over_http
        except Unavailable:
            pass
        except TemporalSaid as error:
            raise temporal_said(error.message) from None
    return fetch_brief(incident), None


def decide(
    incident: str,
    action: str | None,
    approver: str,
    comment: str,
    approved: bool,
    text: str | None,
    key: Path | None,
    yes: bool,
) -> None:
    """`stanch approve` (approved) and `stanch reject`."""
    verdict: Verdict = "approve" if approved else "reject"
    signer = signer_for(key)
    over_http = http()
    if signer is None and over_http is not None:
        # Unsigned over the HTTP API: the brief's JSON and the decision's, no pydantic (issue 15).
        done, over_http = _decide_unsigned_over_http(
            incident, action, approver, comment, approved, text, over_http
        )
        if done:
            return
    from schemas.approvals import Decision

    # The brief says which question is open and what it shows: the action must be that one (the golden
    # rule, checked here before anything is signed and again by the workflow), and the digest binds the
    # answer to what was read now, signed or not.
    brief, over_http = _brief_to_decide(incident, over_http)
    to_sign = question(brief, action)
    if to_sign is None:
        if signer is not None:
            raise refused(f"{workflow_id(incident)} lists no open question to sign")
        if action is None:
            raise refused(f"{workflow_id(incident)} lists no open question; name the action to decide")
        # A worker from before signed decisions lists none: send it as before; the workflow answers.
        decision = Decision(approver=approver, action=action, comment=comment, approved=approved, text=text)
    else:
        signed = sign(to_sign, verdict, approver, signer, yes) if signer is not None else None
        decision = Decision(
            approver=approver,
            action=to_sign.shown.action,
            comment=comment,
            approved=approved,
            text=text,
            signed=signed,
            digest=None if signed is not None else to_sign.digest,
        )

    outcome = _send_decision(incident, decision, over_http)
    say(f"{workflow_id(incident)}: {outcome.detail} (by {outcome.approver}{signed_by(decision.signed)})")


def decision_json(
    approver: str, action: str, comment: str, approved: bool, text: str | None, digest: str | None
) -> bytes:
    """An unsigned `decide` update's argument, byte for byte as `Decision(...).model_dump_json()` writes it
    (its fields in the model's order, compact; tests/stanch/test_answers.py compares), without pydantic."""
    fields = {
        "approver": approver,
        "action": action,
        "comment": comment,
        "text": text,
        "signed": None,
        "digest": digest,
        "approved": approved,
    }
    return json.dumps(fields, ensure_ascii=False, separators=(",", ":")).encode()


def _decide_unsigned_over_http(
    incident: str,
    action: str | None,
    approver: str,
    comment: str,
    approved: bool,
    text: str | None,
    over_http: TemporalHttp,
) -> tuple[bool, TemporalHttp | None]:
    """An unsigned approve / reject from the brief's JSON: the same question rule (stanch.questions), the
    same refusals and the same line printed as with the models. (True, _) when answered; else (False, the
    HTTP client for the model path: a brief this cannot read, whose model says what is wrong), or (False,
    None) when the HTTP API was not there (the SDK answers)."""
    from stanch.ops.temporal_http import TemporalSaid, Unavailable
    from stanch.questions import SignerError, pick_open_question

    wid = workflow_id(incident)
    try:
        brief = json.loads(over_http.query(wid, "brief") or b"null")
        to_sign = pick_open_question(
            brief.get("to_sign") or [],
            action,
            lambda item: item["verdicts"],
            lambda item: item["shown"]["action"],
        )
    except Unavailable:
        return False, None
    except TemporalSaid as error:
        raise temporal_said(error.message) from None
    except SignerError as error:
        raise refused(str(error)) from None
    except (KeyError, TypeError, ValueError, AttributeError):
        return False, over_http
    if to_sign is None:
        if action is None:
            raise refused(f"{wid} lists no open question; name the action to decide")
        # A worker from before signed decisions lists none: send it as before; the workflow answers.
        decision = decision_json(approver, action, comment, approved, text, None)
    else:
        decision = decision_json(
            approver, to_sign["shown"]["action"], comment, approved, text, to_sign["digest"]
        )
    update_id = str(uuid.uuid4())
    try:
        answer = over_http.update(wid, "decide", decision, update_id)
    except Unavailable:
        # Gone since the brief was read, or the answer lost on the way back after the update was sent: the
        # SDK sends the same decision under the same update id, so the server answers the one it may hold.
        from schemas.approvals import Decision

        outcome = _send_decision(incident, Decision.model_validate_json(decision), None, update_id)
        say(f"{wid}: {outcome.detail} (by {outcome.approver})")
        return True, None
    except TemporalSaid as error:
        raise temporal_said(error.message) from None
    if answer.refusal is not None:
        raise refused(answer.refusal)
    try:
        said = json.loads(answer.value or b"null")
        line = f"{wid}: {said.get('detail', '')} (by {said['approver']})"
    except (KeyError, TypeError, ValueError, AttributeError):
        from schemas.approvals import DecisionOutcome

        outcome = DecisionOutcome.model_validate_json(answer.value or b"null")  # says what is wrong
        line = f"{wid}: {outcome.detail} (by {outcome.approver})"
    say(line)
    return True, None


def _send_decision(
    incident: str, decision: Decision, over_http: TemporalHttp | None, update_id: str | None = None
) -> DecisionOutcome:
    """The `decide` update, over the HTTP API when the brief came that way, else with the SDK; a refusal by
    the validator or the gate exits 1 with its sentence either way. One update id for both ways: an update
    the HTTP API took but whose answer was lost is answered again, not sent a second time."""
    from schemas.approvals import DecisionOutcome
    from stanch.ops.temporal_http import TemporalSaid, Unavailable

    update_id = update_id or str(uuid.uuid4())
    if over_http is not None:
        try:
            answer = over_http.update(
                workflow_id(incident), "decide", decision.model_dump_json().encode(), update_id
            )
        except Unavailable:
            pass  # gone since the brief was read, or its answer lost: the SDK asks under the same update id
        except TemporalSaid as error:
            raise temporal_said(error.message) from None
        else:
            if answer.refusal is not None:
                raise refused(answer.refusal)
            return DecisionOutcome.model_validate_json(answer.value or b"null")

    from temporalio.client import WorkflowUpdateFailedError

    async def go() -> DecisionOutcome:
        handle = (await connect(settings())).get_workflow_handle(workflow_id(incident))
        return await handle.execute_update("decide", decision, id=update_id, result_type=DecisionOutcome)

    try:
        return run(go())
    except WorkflowUpdateFailedError as error:
        raise refused(update_refusal(error)) from None
