"""The CLI's side of signed decisions (issue 13): which private key signs, its passphrase, which of the
decisions an incident lists (`Brief.to_sign`) a command answers, the statement it signs, the words a person
reads before signing, and the JSON the Temporal UI's dialogs take.

Everything here but `load_signing_key` (it reads the key file and may ask for its passphrase) is a pure
function of its arguments, so the tests check it with real keys and real briefs and no stack. The CLI
(stanch/ops/cli.py) does the talking to Temporal and to the terminal.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel

from schemas.signatures import SignedDecision, ToSign, Verdict
from stanch.decisions import (
    KILL_SWITCH_GATE,
    RESOLVE_GATE,
    TRIAGE_GATE,
    Signer,
    SignerError,
    handover,
    pick_gate,
    pick_question,
    questions,
    signed_decision,
)
from stanch.markup import plain
from stanch.ops.key_choice import DEFAULT_KEY, KEY_ENV, KeyChoice, choose_key, unsigned_notice
from stanch.signing import (
    DEFAULT_TTL,
    PassphraseNeeded,
    SigningKeyError,
    gate_digest,
    kill_switch_shown,
    load_private_key,
)

PASSPHRASE_ENV = "STANCH_SIGNING_PASSPHRASE"

# The pure parts (which decision, the signed statement) live in stanch/decisions.py, which the console
# shares, and which key in stanch/ops/key_choice.py, which `stanch approve` reads without pydantic or
# cryptography when it signs nothing; they are re-exported here for the CLI and its tests.
__all__ = [
    "DEFAULT_KEY",
    "KEY_ENV",
    "KILL_SWITCH_GATE",
    "RESOLVE_GATE",
    "TRIAGE_GATE",
    "KeyChoice",
    "Signer",
    "SignerError",
    "choose_key",
    "handover",
    "pick_gate",
    "pick_question",
    "questions",
    "signed_decision",
    "unsigned_notice",
]


# ---- which key ----------------------------------------------------------------------------------------


def load_signing_key(
    choice: KeyChoice, environ: Mapping[str, str], ask: Callable[[str], str] | None
) -> Signer:
    """The key `choice` names. An encrypted key takes `STANCH_SIGNING_PASSPHRASE`, else `ask` (a hidden
    prompt; None when there is no terminal to ask in)."""
    try:
        return Signer(load_private_key(choice.path), choice.path)
    except PassphraseNeeded:
        pass
    except SigningKeyError as error:
        raise SignerError(f"{error} (from {choice.source})") from None
    passphrase = environ.get(PASSPHRASE_ENV)
    if passphrase is None:
        if ask is None:
            raise SignerError(
                f"the signing key {choice.path} is encrypted and there is no terminal to ask its "
                f"passphrase in: set {PASSPHRASE_ENV}"
            )
        passphrase = ask(f"Passphrase for {choice.path}")
    try:
        return Signer(load_private_key(choice.path, passphrase), choice.path)
    except SigningKeyError as error:
        raise SignerError(str(error)) from None


KillSwitchVerdict = Literal["kill_switch_off", "kill_switch_disengage"]


def kill_switch_verdict(current: str, new: str) -> KillSwitchVerdict | None:
    """What a kill-switch move undoes, if anything: turning it off, or disengaging it (engaged → armed).
    Arming and engaging add a safety and are never signed (workflows/guardrail.py decides the same)."""
    if new == "off" and current != "off":
        return "kill_switch_off"
    if new == "armed" and current == "engaged":
        return "kill_switch_disengage"
    return None


def kill_switch_decision(
    workflow_id: str, run_id: str, subsystem: str, current: str, new: str, verdict: KillSwitchVerdict
) -> ToSign:
    """What a kill-switch change signs, for the guardrail's current run and the move from its mode now."""
    shown = kill_switch_shown(subsystem, current, new)
    return ToSign(
        workflow_id=workflow_id,
        run_id=run_id,
        gate=KILL_SWITCH_GATE,
        verdicts=[verdict],
        shown=shown,
        digest=gate_digest(shown),
        signature_needed=True,
    )


# ---- what the person reads ----------------------------------------------------------------------------

VERB = {
    "approve": "approve",
    "reject": "reject",
    "resolve": "resolve",
    "run_runbook": "hand over to",
    "kill_switch_off": "turn off",
    "kill_switch_disengage": "disengage",
}


def approvers_text(to_sign: ToSign) -> str:
    shown = to_sign.shown
    who = ", ".join(shown.required_approvers) or "anyone the policy names"
    count = f"{shown.required_approvals} different people of " if shown.required_approvals > 1 else ""
    return f"{count}{who}"


def confirmation_text(to_sign: ToSign, verdict: Verdict, approver: str, signer: Signer) -> str:
    """What a person reads before a decision is signed: what the question shows (the fields its digest
    covers), what the signature will say, and with which key. Every value from the incident is shown
    `plain` (control characters written out): a terminal escape in an alert must not rewrite what is read."""
    shown = to_sign.shown
    target = ", ".join(f"{plain(key)}={plain(value)}" for key, value in sorted(shown.target.items()))
    needed = "yes" if to_sign.signature_needed else "no (a signature given is still checked)"
    minutes = f"{DEFAULT_TTL.total_seconds() / 60:g}"
    lines = [
        f"You are about to sign, as {plain(approver)}:",
        f"  {VERB[verdict]} '{plain(shown.action)}' on {plain(to_sign.workflow_id)}",
        f"  Recommendation: {plain(shown.recommendation) or 'none stated'}",
        f"  Risk if no action: {plain(shown.risk) or 'none stated'}",
        f"  Target: {target or 'none'}",
        f"  Who must approve: {plain(approvers_text(to_sign))}",
        f"  Signature needed by the policy: {needed}",
        f"  Signed over: run {to_sign.run_id}, question {plain(to_sign.gate)}, digest {to_sign.digest}",
        f"  Valid for {minutes} minutes from signing, once",
        f"  Key: {signer.fingerprint} ({signer.path})",
    ]
    return "\n".join(lines)


# ---- the Temporal UI's dialogs ------------------------------------------------------------------------


@dataclass(frozen=True)
class Dialog:
    """Where a payload goes: "Send a Signal" or "Send an Update", and the name to choose there."""

    kind: Literal["signal", "update"]
    name: str

    def hint(self, workflow_id: str, signed: SignedDecision) -> str:
        title = "Send a Signal" if self.kind == "signal" else "Send an Update"
        cli = (
            f"temporal workflow signal --workflow-id {workflow_id} --name {self.name} --input '<the JSON>'"
            if self.kind == "signal"
            else f"temporal workflow update execute --workflow-id {workflow_id} --name {self.name} "
            "--input '<the JSON>'"
        )
        return (
            f"In the Temporal UI, open {workflow_id}, choose {title}, name `{self.name}`, and paste the JSON "
            f"above (or: {cli}). It is valid until {signed.statement.expires_at:%H:%M:%S} UTC, once."
        )


def payload_json(payload: BaseModel, *, pretty: bool = False) -> str:
    """A payload as the Temporal UI's JSON input takes it: one line (or indented), unset fields left out."""
    return json.dumps(payload.model_dump(mode="json", exclude_none=True), indent=2 if pretty else None)
