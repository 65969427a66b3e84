"""What the console's pages show, as pure functions of the policy, the signed-in person, a brief and the
visibility list: the tests check them with no server, no browser and no Temporal (tests/workers/console/).

The golden rule holds here: an incident page offers approve and reject only for the questions the incident
itself lists as open (`Brief.to_sign`), never another action; and a button shows only to a person whose
roles let them take it. The server checks the same function again on every POST (workers/console/app.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Literal
from urllib.parse import urlencode

from pydantic import BaseModel, Field

from schemas.briefs import Brief
from schemas.signatures import ToSign
from stanch.decisions import RESOLVE_GATE, TRIAGE_GATE
from stanch.policy import ON_CALL_ROLE, Policy

# The search attributes the incidents page reads from the one visibility list (workflows/steps/incident.py).
SEVERITIES = ("P0", "P1", "P2", "P3")
# What a state says about the ladder, beside the level itself (StanchEscalationLevel).
ESCALATION_OF_STATE = {
    "escalated": "escalated: the ladder is paging",
    "unattended": "unattended: safe default in force, still paging",
    "closed_unattended": "closed unattended",
}

ActionKind = Literal["approve", "reject", "review", "acknowledge", "escalate", "resolve", "handover"]


class Person(BaseModel):
    """Who is signed in, and the roles the policy gives them."""

    name: str
    roles: list[str] = Field(default_factory=list)


def person_of(policy: Policy, name: str) -> Person | None:
    if name not in policy.people:
        return None
    roles = sorted(role for role, people in policy.role_people().items() if name in people)
    return Person(name=name, roles=roles)


def responders(policy: Policy) -> set[str]:
    """Who may respond to any incident (acknowledge, escalate, resolve, hand over, open one): on-call and
    every person the escalation ladder pages. A decision on a question is narrower: the question's roles."""
    people = set(policy.role_people().get(ON_CALL_ROLE, []))
    for level in policy.escalation:
        people.update(policy.people_of(level.notify))
    return people


# ---- the incidents page -------------------------------------------------------------------------------


class ListFilters(BaseModel):
    severity: str | None = None
    runbook: str | None = None
    state: str | None = None
    service: str | None = None
    mine: bool = Field(False, description='"waiting for me": a question the person may decide now')
    closed: bool = Field(False, description="closed incidents too")


def quoted(value: str) -> str:
    """A string literal of Temporal's visibility query language: a quote in a value cannot end it."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def list_query(filters: ListFilters, me: str) -> str:
    """The one visibility query of the incidents page: never a query per incident."""
    clauses = ["StanchRunbook IS NOT NULL"]
    for attribute, value in (
        ("StanchSeverity", filters.severity),
        ("StanchRunbook", filters.runbook),
        ("StanchState", filters.state),
        ("StanchService", filters.service),
    ):
        if value:
            clauses.append(f"{attribute} = {quoted(value)}")
    if filters.mine:
        clauses.append(f"StanchAwaiting = {quoted(me)}")
    if not filters.closed:
        clauses.append("ExecutionStatus = 'Running'")
    return " AND ".join(clauses)


def filters_query(filters: ListFilters) -> str:
    """The filters as the page's query string (only those set): the list's refresh asks with the same ones,
    so a refreshed list keeps its filters and "waiting for me"."""
    fields: dict[str, str] = {}
    for name in ("severity", "runbook", "state", "service"):
        value = getattr(filters, name)
        if value:
            fields[name] = value
    for name in ("mine", "closed"):
        if getattr(filters, name):
            fields[name] = "true"
    return urlencode(fields)


class IncidentRow(BaseModel):
    workflow_id: str
    severity: str
    runbook: str
    service: str
    state: str
    awaiting: list[str]
    escalation: str
    age: str
    running: bool
    waiting_for_me: bool


def age_text(span: timedelta) -> str:
    minutes = max(0, int(span.total_seconds() // 60))
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"


def escalation_text(state: str, level: int = 0) -> str:
    """How far up the ladder, from the search attributes (StanchEscalationLevel, StanchState)."""
    words = ESCALATION_OF_STATE.get(state, "")
    if level:
        return f"level {level}" + (f" · {words}" if words else "")
    return words


def incident_row(
    workflow_id: str,
    attributes: Mapping[str, object],
    started: datetime,
    running: bool,
    now: datetime,
    me: str,
) -> IncidentRow:
    awaiting = attributes.get("StanchAwaiting")
    people = [str(person) for person in awaiting] if isinstance(awaiting, list) else []
    state = str(attributes.get("StanchState", "?"))
    level = attributes.get("StanchEscalationLevel")
    return IncidentRow(
        workflow_id=workflow_id,
        severity=str(attributes.get("StanchSeverity", "?")),
        runbook=str(attributes.get("StanchRunbook", "?")),
        service=str(attributes.get("StanchService", "?")),
        state=state,
        awaiting=people,
        escalation=escalation_text(state, level if isinstance(level, int) else 0),
        age=age_text(now - started),
        running=running,
        waiting_for_me=me in people,
    )


def sorted_rows(rows: Sequence[IncidentRow]) -> list[IncidentRow]:
    """Most urgent first: waiting for me, then severity, then the oldest."""
    order = {severity: index for index, severity in enumerate(SEVERITIES)}
    return sorted(rows, key=lambda row: (not row.waiting_for_me, order.get(row.severity, 9)))


# ---- an incident's actions ----------------------------------------------------------------------------


class Action(BaseModel):
    """One button of an incident page: what it does, in words, and whether it asks for confirmation."""

    kind: ActionKind
    label: str
    explains: str
    gate: str = ""
    digest: str = Field(
        "", description="approve/reject/review: the digest of the question as the page shows it"
    )
    destructive: bool = False
    draft: str = Field("", description="review: the customer message as drafted, editable")


def may_decide(to_sign: ToSign, roles: Mapping[str, list[str]], me: str) -> bool:
    """Whether `me` may approve or reject this question: as the gate decides (workflows/steps/approval.py
    `_may_decide`): a person of one of its roles, or of any role when it names none."""
    if not roles:
        return True
    wanted = to_sign.shown.required_approvers or list(roles)
    return any(me in roles.get(role, []) for role in wanted)


def actions_for(brief: Brief, policy: Policy, me: str, running: bool) -> list[Action]:
    """Every action `me` may take on this incident now, and only those."""
    if not running:
        return []
    roles = policy.role_people()
    actions: list[Action] = []
    for item in brief.to_sign:
        shown = item.shown
        if item.gate.startswith("review-") and "approve" in item.verdicts:
            if may_decide(item, roles, me):
                actions.append(
                    Action(
                        kind="review",
                        label="Send this customer message",
                        explains="Sends the message below to the customer, as you leave it (edit it first if "
                        "needed); reject holds it back.",
                        gate=item.gate,
                        digest=item.digest,
                        draft=shown.recommendation,
                    )
                )
            continue
        if "approve" in item.verdicts and may_decide(item, roles, me):
            actions.append(
                Action(
                    kind="approve",
                    label=f"Approve {shown.action}",
                    explains=f"Carries out the recommended action now: {shown.recommendation or shown.action}",
                    gate=item.gate,
                    digest=item.digest,
                    destructive=True,
                )
            )
            actions.append(
                Action(
                    kind="reject",
                    label=f"Reject {shown.action}",
                    explains="The runbook keeps its safe state and does not act.",
                    gate=item.gate,
                    digest=item.digest,
                )
            )
    if me in responders(policy):
        gates = {item.gate for item in brief.to_sign}
        if TRIAGE_GATE in gates:
            actions.append(
                Action(
                    kind="handover",
                    label="Hand over to a runbook",
                    explains="Starts the runbook you choose on the target you give; this triage incident "
                    "then follows it.",
                    gate=TRIAGE_GATE,
                    destructive=True,
                )
            )
        actions.append(
            Action(
                kind="acknowledge",
                label="Acknowledge",
                explains="Says you are on it: the escalation clock holds for a while.",
            )
        )
        actions.append(
            Action(
                kind="escalate",
                label="Escalate now",
                explains="Pages the next level of the escalation ladder now instead of waiting.",
            )
        )
        if RESOLVE_GATE in gates:
            actions.append(
                Action(
                    kind="resolve",
                    label="Mark resolved",
                    explains="The runbook stands down where it is (systems stay as they are), withdraws its "
                    "open question and closes resolved.",
                    gate=RESOLVE_GATE,
                    destructive=True,
                )
            )
    return actions


def allowed(actions: Sequence[Action], kind: ActionKind, gate: str = "") -> Action | None:
    """The action a POST asks for, if the page would offer it to this person now."""
    return next(
        (action for action in actions if action.kind == kind and (not gate or action.gate == gate)), None
    )


def actions_key(actions: Sequence[Action]) -> str:
    """A short text that changes when the offered actions change: the live poll reloads the page then, so a
    button for a question decided elsewhere disappears."""
    return ",".join(f"{action.kind}:{action.gate}" for action in actions)


# ---- the audit rows a page shows ----------------------------------------------------------------------


def pages_sent(audit_actions: Sequence[tuple[str, str, str]]) -> list[str]:
    """From (action, outcome, time) of an incident's audit rows: the pages and notifications it sent."""
    return [
        f"{at} {action}: {outcome}" for action, outcome, at in audit_actions if action.startswith("Notify ")
    ]


class ChainVerification:
    """The last verification of the whole audit log's chains, redone at most every `every`.

    Verifying recomputes every row's hash; the health page (and a monitor polling `/api/health`) is asked far
    more often than rows are written, so each look shows the last verification and its time instead of
    reading the whole log again. Postgres itself is still probed on every look.
    """

    def __init__(self, every: timedelta = timedelta(seconds=60)) -> None:
        self.every = every
        self.at: datetime | None = None
        self.intact = False
        self.summary = ""

    def due(self, now: datetime) -> bool:
        return self.at is None or now - self.at >= self.every

    def record(self, now: datetime, intact: bool, summary: str) -> None:
        self.at, self.intact, self.summary = now, intact, summary

    def text(self) -> str:
        if self.at is None:
            return "never verified"
        return f"verified at {self.at:%H:%M:%S} UTC: {self.summary}"
