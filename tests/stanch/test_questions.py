"""The golden rule — an approve or reject answers only a question the incident recommended — over the
brief's `to_sign` list in either form (stanch/questions.py): its models (stanch.decisions.pick_question) and
its JSON (an unsigned `stanch approve` over the HTTP API). Both forms pick the same question and refuse
with the same sentence."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from schemas.briefs import Brief
from schemas.signatures import GateShown, ToSign
from stanch.decisions import pick_question
from stanch.questions import SignerError, pick_open_question
from stanch.signing import gate_digest

NOW = datetime(2026, 12, 4, 3, 0, tzinfo=UTC)


def entry(gate: str, action: str, verdicts: list[str]) -> ToSign:
    shown = GateShown(action=action, recommendation=f"{action} bot-1")
    return ToSign.model_validate(
        {
            "workflow_id": "incident-bot-1",
            "run_id": "run-1",
            "gate": gate,
            "verdicts": verdicts,
            "shown": shown,
            "digest": gate_digest(shown),
            "signature_needed": False,
        }
    )


def brief_with(*to_sign: ToSign) -> Brief:
    return Brief(
        incident_id="incident-bot-1",
        runbook="agent_emergency_stop",
        severity="P0",
        service="agents",
        summary="bot-1",
        started_at=NOW,
        last_update_at=NOW,
        state="awaiting_approval",
        to_sign=list(to_sign),
    )


def from_json(brief: Brief, action: str | None) -> dict[str, Any] | None:
    as_queried = json.loads(brief.model_dump_json())["to_sign"]
    picked: dict[str, Any] | None = pick_open_question(
        as_queried, action, lambda item: item["verdicts"], lambda item: item["shown"]["action"]
    )
    return picked


ROLLBACK = entry("gate1", "rollback", ["approve", "reject"])
REVIEW = entry("review-send", "send-customer-message", ["approve", "reject"])
RESOLVE = entry("resolve", "resolve", ["resolve"])


@pytest.mark.parametrize(
    ("to_sign", "action", "picked"),
    [
        ((ROLLBACK, RESOLVE), None, ROLLBACK),  # the only approval question open
        ((ROLLBACK, REVIEW), "send-customer-message", REVIEW),
        ((RESOLVE,), "rollback", None),  # nothing to approve: the workflow says so itself
        ((), None, None),
    ],
)
def test_both_forms_pick_the_same_question(
    to_sign: tuple[ToSign, ...], action: str | None, picked: ToSign | None
) -> None:
    brief = brief_with(*to_sign)
    assert pick_question(brief, action) == picked
    expected = None if picked is None else json.loads(picked.model_dump_json())
    assert from_json(brief, action) == expected


@pytest.mark.parametrize(
    ("to_sign", "action", "sentence"),
    [
        ((ROLLBACK,), "shutdown", "'shutdown' was not recommended; the pending action is 'rollback'"),
        (
            (ROLLBACK, REVIEW),
            None,
            "several questions are open ('rollback', 'send-customer-message'): name the action to decide",
        ),
    ],
)
def test_both_forms_refuse_with_the_same_sentence(
    to_sign: tuple[ToSign, ...], action: str | None, sentence: str
) -> None:
    brief = brief_with(*to_sign)
    with pytest.raises(SignerError) as by_model:
        pick_question(brief, action)
    with pytest.raises(SignerError) as by_json:
        from_json(brief, action)
    assert str(by_model.value) == str(by_json.value) == sentence
