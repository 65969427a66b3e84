"""Which open question a person's approve or reject answers — the golden rule: only what the incident
recommended — over the brief's `to_sign` list in any form: its models (stanch.decisions.pick_question, for
the console and the CLI) or its JSON (an unsigned `stanch approve` over Temporal's HTTP API, which loads no
pydantic: issue 15). One rule, one refusal sentence, whichever form the brief came in.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

Question = TypeVar("Question")


class SignerError(Exception):
    """Why the CLI cannot sign: a sentence for the person, naming the file or the decision at fault."""


def approval_questions(
    to_sign: Sequence[Question], verdicts: Callable[[Question], Sequence[str]]
) -> list[Question]:
    """The approval questions open now (the gate's and customer-message reviews): they take approve/reject."""
    return [item for item in to_sign if "approve" in verdicts(item)]


def pick_open_question(
    to_sign: Sequence[Question],
    action: str | None,
    verdicts: Callable[[Question], Sequence[str]],
    action_of: Callable[[Question], str],
) -> Question | None:
    """The question an approve or reject answers: the one whose action is `action`, or the only one open
    when no action is named. None: the incident lists none (nothing pending, or a worker from before
    signed decisions), for the workflow to say so itself."""
    open_now = approval_questions(to_sign, verdicts)
    if not open_now:
        return None
    pending = ", ".join(repr(action_of(item)) for item in open_now)
    if action is None:
        if len(open_now) > 1:
            raise SignerError(f"several questions are open ({pending}): name the action to decide")
        return open_now[0]
    for item in open_now:
        if action_of(item) == action:
            return item
    # The workflow's own sentence for the same refusal (workflows/steps/approval.py).
    raise SignerError(f"{action!r} was not recommended; the pending action is {pending}")
