"""The console's view data, pure (workers/console/views.py): which buttons a person sees on a brief, the one
visibility query of the incidents page, its rows; with the test policy's real roles and real briefs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from schemas.briefs import Brief
from schemas.signatures import GateShown, ToSign
from stanch.policy import Policy, load_policy
from stanch.settings import REPO_ROOT
from stanch.signing import gate_digest
from workers.console import views

NOW = datetime(2026, 12, 2, 3, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def policy() -> Policy:
    return load_policy(REPO_ROOT / "tests" / "policy.toml")


def question(gate: str, action: str, roles: list[str], verdicts: list[str] | None = None) -> ToSign:
    shown = GateShown(
        action=action, recommendation=f"do {action}", risk="it gets worse", required_approvers=roles
    )
    return ToSign(
        workflow_id="incident-x",
        run_id="run-1",
        gate=gate,
        verdicts=verdicts or ["approve", "reject"],  # type: ignore[arg-type]
        shown=shown,
        digest=gate_digest(shown),
        signature_needed=False,
    )


def brief(*to_sign: ToSign) -> Brief:
    return Brief(
        incident_id="incident-x",
        runbook="agent_emergency_stop",
        severity="P1",
        service="support",
        summary="support-bot left its persona",
        started_at=NOW,
        last_update_at=NOW,
        state="awaiting_approval",
        to_sign=list(to_sign),
    )


ROLLBACK = question("gate1", "rollback", ["oncall", "lead"])
RESOLVE = question("resolve", "resolve", [], ["resolve"])


def kinds(actions: list[views.Action]) -> list[str]:
    return [action.kind for action in actions]


def test_on_call_sees_approve_and_reject_of_the_open_question_only_and_the_responders_actions(
    policy: Policy,
) -> None:
    actions = views.actions_for(brief(ROLLBACK, RESOLVE), policy, "alice", running=True)
    assert kinds(actions) == ["approve", "reject", "acknowledge", "escalate", "resolve"]
    approve = views.allowed(actions, "approve", "gate1")
    assert approve is not None and approve.label == "Approve rollback" and approve.destructive
    assert "do rollback" in approve.explains
    # The golden rule: no button for an action the incident did not recommend, and none for another gate.
    assert views.allowed(actions, "approve", "gate2") is None


def test_a_person_without_the_questions_role_sees_no_approve_and_not_responding_no_resolve(
    policy: Policy,
) -> None:
    # erin is the owner: neither on call nor on the ladder (lead), so the rollback and the resolve are not hers.
    assert views.actions_for(brief(ROLLBACK, RESOLVE), policy, "erin", running=True) == []
    # carol is a lead: the rollback names her role, and the ladder pages the lead.
    assert "approve" in kinds(views.actions_for(brief(ROLLBACK), policy, "carol", running=True))
    # A question for the owner is erin's to decide.
    owner = question("gate1", "terminate", ["owner"])
    assert kinds(views.actions_for(brief(owner), policy, "erin", running=True)) == ["approve", "reject"]
    assert "approve" not in kinds(views.actions_for(brief(owner), policy, "alice", running=True))


def test_a_closed_incident_offers_nothing(policy: Policy) -> None:
    assert views.actions_for(brief(ROLLBACK, RESOLVE), policy, "alice", running=False) == []


def test_a_customer_message_review_is_offered_with_its_draft_and_a_triage_hand_over_to_responders(
    policy: Policy,
) -> None:
    review = question("review-customer-1", "send-customer-message", ["oncall"])
    triage = question("triage", "run_runbook", [], ["run_runbook"])
    actions = views.actions_for(brief(review, triage), policy, "bob", running=True)
    assert kinds(actions) == ["review", "handover", "acknowledge", "escalate"]
    assert actions[0].draft == "do send-customer-message"
    assert views.allowed(actions, "handover", "triage") is not None
    assert views.actions_for(brief(review, triage), policy, "erin", running=True) == []


def test_the_actions_key_changes_when_the_offered_buttons_change(policy: Policy) -> None:
    before = views.actions_key(views.actions_for(brief(ROLLBACK, RESOLVE), policy, "alice", running=True))
    after = views.actions_key(views.actions_for(brief(RESOLVE), policy, "alice", running=True))
    assert before != after and "approve:gate1" in before and "approve" not in after


def test_the_incidents_list_is_one_visibility_query_with_every_filter_quoted() -> None:
    assert (
        views.list_query(views.ListFilters(), "alice")
        == "StanchRunbook IS NOT NULL AND ExecutionStatus = 'Running'"
    )
    query = views.list_query(
        views.ListFilters(
            severity="P1", runbook="agent_emergency_stop", service="o'brien", mine=True, closed=True
        ),
        "alice",
    )
    assert query == (
        "StanchRunbook IS NOT NULL AND StanchSeverity = 'P1' AND StanchRunbook = 'agent_emergency_stop' "
        "AND StanchService = 'o\\'brien' AND StanchAwaiting = 'alice'"
    )


def test_the_lists_refresh_asks_with_the_pages_filters_and_only_those_set() -> None:
    assert views.filters_query(views.ListFilters()) == ""
    filters = views.ListFilters(severity="P1", service="o'brien & co", mine=True)
    assert views.filters_query(filters) == "severity=P1&service=o%27brien+%26+co&mine=true"
    assert views.filters_query(views.ListFilters(closed=True)) == "closed=true"


def test_a_row_reads_the_search_attributes_and_says_whether_it_waits_for_me() -> None:
    attributes = {
        "StanchSeverity": "P1",
        "StanchRunbook": "agent_emergency_stop",
        "StanchService": "support",
        "StanchState": "escalated",
        "StanchAwaiting": ["alice", "bob"],
        "StanchEscalationLevel": 1,
    }
    row = views.incident_row("incident-x", attributes, NOW - timedelta(minutes=135), True, NOW, "alice")
    assert row.awaiting == ["alice", "bob"] and row.waiting_for_me
    assert row.age == "2 h 15 min"
    assert row.escalation == "level 1 · escalated: the ladder is paging"
    quiet = views.incident_row("incident-y", {"StanchSeverity": "P3"}, NOW, False, NOW, "alice")
    assert quiet.awaiting == [] and not quiet.waiting_for_me and quiet.escalation == "" and quiet.state == "?"
    assert [r.workflow_id for r in views.sorted_rows([quiet, row])] == ["incident-x", "incident-y"]


def test_ages_read_in_minutes_hours_and_days() -> None:
    assert [views.age_text(timedelta(minutes=m)) for m in (0, 59, 60, 60 * 24 + 61)] == [
        "0 min",
        "59 min",
        "1 h 0 min",
        "1 d 1 h",
    ]


def test_a_person_gets_their_roles_from_the_policy(policy: Policy) -> None:
    alice = views.person_of(policy, "alice")
    assert alice is not None and {"oncall", "devops", "qa"} <= set(alice.roles)
    assert views.person_of(policy, "mallory") is None
    assert {"alice", "bob", "carol", "dave"} <= views.responders(policy)
    assert "erin" not in views.responders(policy)


def test_pages_sent_are_the_notification_rows() -> None:
    rows = [
        ("Notify on-call: rollback?", "done", "03:00:01"),
        ("Pause agent support-bot", "done", "03:00:00"),
    ]
    assert views.pages_sent(rows) == ["03:00:01 Notify on-call: rollback?: done"]


def test_the_chain_verification_is_redone_only_once_its_interval_has_passed() -> None:
    chain = views.ChainVerification(every=timedelta(seconds=60))
    start = datetime(2026, 12, 2, 3, 0, tzinfo=UTC)
    assert chain.due(start) and chain.text() == "never verified"
    chain.record(start, True, "1 chain(s), 4 row(s) intact")
    assert not chain.due(start + timedelta(seconds=59))
    assert chain.text() == "verified at 03:00:00 UTC: 1 chain(s), 4 row(s) intact"
    assert chain.due(start + timedelta(seconds=60))
    chain.record(start + timedelta(seconds=60), False, "1 broken")
    assert not chain.intact and chain.text().startswith("verified at 03:01:00 UTC")
