"""Which of the decisions an incident lists (`Brief.to_sign`) a person's answer is about, and the signed
statement for it: pure functions of their arguments, shared by every client that signs — the CLI
(stanch/ops/signer.py, with a person's own key) and the console (workers/console/, with its service key and
`via="console"`). In the core of `stanch`, since the console is a process and imports no operator tool.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from schemas.briefs import Brief
from schemas.signatures import SignedDecision, ToSign, Verdict

# SignerError is defined with the question rule it is raised by (stanch/questions.py); re-exported here.
from stanch.questions import SignerError as SignerError
from stanch.questions import approval_questions, pick_open_question
from stanch.signing import fingerprint, gate_digest, handover_shown, sign, statement_for

# The gates of `ToSign` that are not approval questions (those are gate<N> and review-<step>).
RESOLVE_GATE = "resolve"
TRIAGE_GATE = "triage"
KILL_SWITCH_GATE = "kill-switch"


@dataclass(frozen=True)
class Signer:
    """A loaded private key and where it came from."""

    key: Ed25519PrivateKey
    path: Path

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.key.public_key())


# ---- which decision -----------------------------------------------------------------------------------


def questions(brief: Brief) -> list[ToSign]:
    """The approval questions open now (the gate's and customer-message reviews): they take approve/reject."""
    return approval_questions(brief.to_sign, _verdicts)


def pick_question(brief: Brief, action: str | None) -> ToSign | None:
    """The question an approve or reject answers: the one whose action is `action` (the golden rule: only
    what was recommended), or the only one open when no action is named. None: the incident lists none
    (nothing pending, or a worker from before signed decisions), for the workflow to say so itself.
    (stanch.questions holds the rule, which `stanch approve` also applies to the brief's JSON.)"""
    return pick_open_question(brief.to_sign, action, _verdicts, _action)


def _verdicts(item: ToSign) -> list[Verdict]:
    return item.verdicts


def _action(item: ToSign) -> str:
    return item.shown.action


def pick_gate(brief: Brief, gate: str) -> ToSign | None:
    return next((item for item in brief.to_sign if item.gate == gate), None)


def handover(to_sign: ToSign, runbook: str, target: Mapping[str, str]) -> ToSign:
    """A triage hand-over signs the runbook and the target it sends, not the brief's suggestion: the same
    fields the workflow checks (`handover_shown` over the triage recommendation)."""
    shown = handover_shown(to_sign.shown.recommendation, runbook, target)
    return to_sign.model_copy(update={"shown": shown, "digest": gate_digest(shown)})


def signed_decision(
    to_sign: ToSign, verdict: Verdict, approver: str, signer: Signer, now: datetime, via: str = ""
) -> SignedDecision:
    """The statement for this decision, signed: a fresh random nonce makes each one usable once. `via`: the
    trusted service (the console) whose key signs for the `approver` it signed in; empty for their own key."""
    statement = statement_for(
        to_sign, verdict=verdict, approver=approver, now=now, nonce=secrets.token_hex(16), via=via
    )
    return sign(statement, signer.key)
