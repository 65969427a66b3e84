"""Escalation that never ends in silence (issue 11) on five more runbooks that wait at an approval gate, on
the time-skipping server with the shipped policy: the gateway's safe restart past its hourly limit, a zombie
gateway's restart, a final ban's new number, a code rollback and resource pressure's spawn block past its
10-minute limit. tests/workflows/test_escalation_ladder.py holds the same ladder for the agent emergency
stop.

Each runbook opens on the severity its route gives it (P0, P1 or P2), so the ladder's shape follows from the
policy, not from this file: the team lead (the `lead` role, carol and dave) is paged when the first answer
window or the severity's response target runs out, whichever comes first (P0's 5 minutes beat the 30-minute
window), `unattended` one level interval later, then paged again every `repeat_every_minutes` until
`give_up_after_hours` after the question, when the incident closes `closed_unattended` with a final page
naming its safe state. Every page reaches each of the lead's people on the kinds the priority picks.

Real effects: the sandbox platform (its runtimes, chat channels, deploys and chat messages), the guardrail
workflows and the audit log in Postgres."""

from __future__ import annotations

import math
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg
import pytest
from temporalio.client import WorkflowHandle

from activities.guardrail import GuardrailActivities
from schemas.approvals import Acknowledgement, ApprovalAnswer
from schemas.channel import AppealVerdict
from schemas.guardrail import ActionCheck, GuardrailLimits, GuardrailRequest, Risk, Ruling
from schemas.incidents import IncidentPolicy, IncidentResult
from schemas.severity import Severity
from stanch.policy import KindsByPriority, Policy
from tests.helpers import (
    SHIPPED_LADDER_REPEATS,
    Incidents,
    Running,
    applied,
    audit_rows,
    chat_messages,
    deploys_of,
    http_client,
    new_service,
    until_state,
)

# Who a page to a role reaches on which kind, by priority (seed 004): P0 instant now, P1 cockpit + instant,
# P2/P3 cockpit. The shipped policy's [notify.kinds] says the same; `kinds_of` checks it does.
SEED_KINDS = {
    Severity.P0: ["instant"],
    Severity.P1: ["cockpit", "instant"],
    Severity.P2: ["cockpit"],
}
# The steps of the ladder's own pages (the gate's and the response target's), as the audit log names them.
LADDER_STEP_PREFIXES = ("gate1-escalate-", "gate1-repeat-", "gate1-give-up", "response-target-missed")
# Early enough to beat every shipped response target (P0's 5 minutes included), late enough that a page at
# the first answer window's end (30 min) would show before the hold's end (34 min).
ACKNOWLEDGED_AFTER = timedelta(minutes=4)
# A wait this long past a page's time lets the page (an activity, then its audit row) land.
JUST_PAST = timedelta(minutes=1)


# ---- the ladder the policy promises --------------------------------------------------------------------


@dataclass(frozen=True)
class Ladder:
    """The pages an unanswered question gets, asked when the incident opens: (audit step, time after the
    question) in order, and when the incident turns `unattended`."""

    pages: list[tuple[str, timedelta]]
    unattended_at: timedelta

    @property
    def first(self) -> tuple[str, timedelta]:
        return self.pages[0]

    @property
    def repeats(self) -> list[tuple[str, timedelta]]:
        return self.pages[1:-1]

    def due_by(self, elapsed: timedelta) -> list[str]:
        return [step for step, at in self.pages if at <= elapsed]


def ladder_of(policy: IncidentPolicy, severity: Severity) -> Ladder:
    """What the policy promises: the first level is paged when the answer window or the response target
    runs out (whichever first: one shared level per incident, docs/escalation.md); the level's own
    interval later the question is unattended, re-paged every `repeat_every` strictly before
    `give_up_after` (counted from the question), which closes it with a final page."""
    assert len(policy.escalation) == 1, "the shipped ladder has one level, the team lead"
    target = policy.response_targets.for_severity(severity)
    if target is not None and target < policy.approval_timeout:
        first = ("response-target-missed", target)
    else:
        first = ("gate1-escalate-1", policy.approval_timeout)
    unattended_at = first[1] + policy.escalation[0].after
    count = math.ceil((policy.give_up_after - unattended_at) / policy.repeat_every) - 1
    repeats = [(f"gate1-repeat-{n}", unattended_at + n * policy.repeat_every) for n in range(1, count + 1)]
    return Ladder(
        pages=[first, *repeats, ("gate1-give-up", policy.give_up_after)], unattended_at=unattended_at
    )


def kinds_of(policy: Policy, severity: Severity) -> list[str]:
    kinds = [
        kind.value
        for kind in (policy.notify.kinds if policy.notify else KindsByPriority()).for_severity(severity)
    ]
    assert kinds == SEED_KINDS[severity]
    return kinds


def lead_people(policy: IncidentPolicy) -> list[str]:
    [level] = policy.escalation
    assert level.notify == ["lead"]
    return policy.roles["lead"]


# ---- what the sandbox and Postgres saw ------------------------------------------------------------------


def step_of(workflow_id: str, idempotency_key: str) -> str:
    """`<workflow id>/<run id>/<step>[/<person>/<kind>]` → the step."""
    return idempotency_key[len(workflow_id) + 1 :].split("/")[1]


def ladder_pages(sandbox: str, workflow_id: str) -> list[dict[str, Any]]:
    """The ladder's notifications (one each), with their step."""
    return [
        {**m, "step": step_of(workflow_id, m["idempotency_key"])}
        for m in chat_messages(sandbox, workflow_id)
        if step_of(workflow_id, m["idempotency_key"]).startswith(LADDER_STEP_PREFIXES)
    ]


def copies(sandbox: str, workflow_id: str) -> dict[str, list[tuple[str, str, str | None]]]:
    """Every copy the sandbox received per ladder step: (audience, person, kind), in order."""
    received: dict[str, list[tuple[str, str, str | None]]] = {}
    for message in http_client.get(f"{sandbox}/chat/messages").json():
        body = message["body"]
        if not body["idempotency_key"].startswith(workflow_id + "/"):
            continue
        step = step_of(workflow_id, body["idempotency_key"])
        if step.startswith(LADDER_STEP_PREFIXES):
            received.setdefault(step, []).append(
                (body["channel"], body.get("person") or "", body.get("kind"))
            )
    return received


def other_channels(sandbox: str, workflow_id: str) -> list[str]:
    """Audiences of the runbook's own notifications (not the ladder's), in order."""
    return [
        m["channel"]
        for m in chat_messages(sandbox, workflow_id)
        if not step_of(workflow_id, m["idempotency_key"]).startswith(LADDER_STEP_PREFIXES)
    ]


def steps(stanch: Running, handle: WorkflowHandle[Any, Any]) -> list[str]:
    return [row["step_key"] for row in audit_rows(stanch.settings, handle.id)]


def row(stanch: Running, handle: WorkflowHandle[Any, Any], step: str) -> dict[str, Any]:
    return next(r for r in audit_rows(stanch.settings, handle.id) if r["step_key"] == step)


def page_times(stanch: Running, handle: WorkflowHandle[Any, Any]) -> list[tuple[str, timedelta]]:
    """When each ladder page's audit row says it went out, after the question (`gate1-requested`), to the
    minute (the time-skipping clock fires timers on the dot; the page's activity adds milliseconds)."""
    with psycopg.connect(stanch.settings.database_url) as conn:
        rows: list[tuple[str, datetime]] = conn.execute(
            "SELECT step_key, occurred_at FROM audit_log WHERE workflow_id = %s ORDER BY id", (handle.id,)
        ).fetchall()
    asked = next(at for step, at in rows if step == "gate1-requested")
    return [
        (step, timedelta(minutes=round((at - asked).total_seconds() / 60)))
        for step, at in rows
        if step.startswith(LADDER_STEP_PREFIXES)
    ]


async def spend(stanch: Running, subsystem: str, kind: str, risk: Risk, count: int) -> None:
    """Automatic actions an earlier incident took on this subsystem, counted by its guardrail, so this
    incident's own is held back and goes to a human."""
    asker = GuardrailActivities(stanch.client, stanch.task_queue)
    for n in range(count):
        check = ActionCheck(
            requested_by="earlier-incident",
            idempotency_key=f"earlier-{subsystem}-{kind}-{n}",
            action=f"{kind} earlier",
            kind=kind,
            risk=risk,
            reason="the same alert, earlier",
        )
        verdict = await asker.ask(
            GuardrailRequest(subsystem=subsystem, check=check, limits=GuardrailLimits())
        )
        assert verdict.ruling is Ruling.allow


def new_runtime(sandbox: str, **spec: Any) -> str:
    name = f"gw-{uuid.uuid4().hex[:8]}"
    http_client.put(f"{sandbox}/runtimes/{name}", json=spec).raise_for_status()
    return name


def runtime(sandbox: str, name: str) -> dict[str, Any]:
    return dict(http_client.get(f"{sandbox}/runtimes/{name}").json())


def runtime_effects(sandbox: str, name: str) -> list[str]:
    """The effect paths this gateway received, in order, past `/runtimes/<name>` (replays not counted)."""
    prefix = f"/runtimes/{name}"
    calls = http_client.get(f"{sandbox}/calls", params={"path_prefix": prefix + "/"}).json()
    return [call["path"][len(prefix) :] for call in calls if not call["replayed"]]


def new_channel(sandbox: str, **spec: Any) -> str:
    name = f"wa-{uuid.uuid4().hex[:8]}"
    http_client.put(f"{sandbox}/chat/channels/{name}", json=spec).raise_for_status()
    return name


def channel(sandbox: str, name: str) -> dict[str, Any]:
    return dict(http_client.get(f"{sandbox}/chat/channels/{name}").json())


# ---- the runbooks, each brought to its gate ---------------------------------------------------------------


@dataclass
class AtTheGate:
    """An incident waiting at its approval gate, with what proves its safe default held or its action ran."""

    handle: WorkflowHandle[Any, IncidentResult]
    safe_default: str
    # Asserts the sandbox shows the safe default in force: nothing restarted, provisioned, rolled back.
    held: Callable[[], None]
    # Asserts the sandbox shows the approved action carried out, once.
    carried_out: Callable[[], None]


@dataclass(frozen=True)
class Runbook:
    name: str
    route: str  # the shipped route whose severity the incident opens with
    action: str  # what the gate asks
    # Audit steps up to and including the question, and the audiences the runbook told before it.
    opening: list[str]
    told_before: list[str]
    # Audit steps between the gate's last step and `closed`: unanswered, and after a late approval.
    after_give_up: list[str]
    after_approval: list[str]
    approved_state: str
    effect_step: str  # the audit row of the approved action, whose actor is the approver
    to_the_gate: Callable[[Running, Incidents, Severity], Awaitable[AtTheGate]]

    def severity(self, policy: Policy) -> Severity:
        route = policy.route_named(self.route)
        assert route is not None and route.runbook == self.name
        return route.severity


HIGH_MEMORY = {
    "memory_mb": 1300,
    "high_watermark_mb": 1536,
    "scheduled_runs": {"digest": "alive", "cron-a": "dead", "cron-b": "dead"},
    "files": ["sessions.json", "s-1.jsonl.deleted", "s-2.jsonl.corrupt", "s-3.jsonl"],
}


async def gateway_restart_held_back(stanch: Running, incidents: Incidents, severity: Severity) -> AtTheGate:
    """Memory high, but three restarts already this hour (the guardrail's limit): a human decides."""
    sandbox = stanch.settings.platform_url
    name = new_runtime(sandbox, **HIGH_MEMORY)
    await spend(stanch, name, "restart", Risk.high, count=3)
    handle = await incidents.open(
        "gateway_safe_restart",
        alertname="GatewayMemoryHigh",
        labels={"gateway": name},
        annotations={"summary": f"GatewayMemoryHigh on {name}"},
        severity=severity,
        service="gateway",
        target={"gateway": name, "subsystem": name},  # its own guardrail: limits never leak between tests
    )

    def held() -> None:
        state = runtime(sandbox, name)
        assert (state["restarts"], state["memory_mb"]) == (0, 1300)
        assert (state["scheduled_runs"], state["files"]) == (
            HIGH_MEMORY["scheduled_runs"],
            HIGH_MEMORY["files"],
        )
        assert runtime_effects(sandbox, name) == []  # not even tidied: that belongs to the restart

    def carried_out() -> None:
        state = runtime(sandbox, name)
        assert (state["restarts"], state["memory_mb"], state["healthy"]) == (1, 520, True)
        assert runtime_effects(sandbox, name) == ["/scheduled-runs/clean", "/files/clean", "/safe-restart"]
        assert applied(sandbox, f"/runtimes/{name}/safe-restart") == 1

    return AtTheGate(handle, f"leave gateway {name} running and keep watching its memory", held, carried_out)


async def zombie_gateway(stanch: Running, incidents: Incidents, severity: Severity) -> AtTheGate:
    sandbox = stanch.settings.platform_url
    name = new_runtime(sandbox, healthy=False, zombie=True, log_lines=["heartbeat missed"])
    handle = await incidents.open(
        "zombie_gateway",
        alertname="GatewayZombie",
        labels={"gateway": name},
        annotations={"summary": f"GatewayZombie on {name}"},
        severity=severity,
        service="gateway",
        target={"gateway": name, "subsystem": name},
    )

    def held() -> None:
        state = runtime(sandbox, name)
        assert (state["restarts"], state["zombie"]) == (0, True)
        assert runtime_effects(sandbox, name) == ["/logs/collect", "/state/collect"]  # evidence only

    def carried_out() -> None:
        state = runtime(sandbox, name)
        assert (state["restarts"], state["zombie"]) == (1, False)
        assert runtime_effects(sandbox, name) == ["/logs/collect", "/state/collect", "/safe-restart"]
        assert applied(sandbox, f"/runtimes/{name}/safe-restart") == 1

    return AtTheGate(
        handle, f"leave gateway {name} for the human on call; nothing restarted", held, carried_out
    )


BANNED = {
    "number": "+5511955550000",
    "number_status": "banned",
    "quality_rating": "low",
    "sends": {
        "template_sends_24h": 1000,
        "spam_reports_24h": 0,
        "blocks_24h": 0,
        "rejected_template_sends": {},
    },
}


async def final_ban(stanch: Running, incidents: Incidents, severity: Severity) -> AtTheGate:
    """The provider's final verdict, sent in at once: a new number needs a human's approval."""
    sandbox = stanch.settings.platform_url
    name = new_channel(sandbox, **BANNED)
    handle = await incidents.number_banned(name, severity=severity)
    await until_state(handle, "awaiting_verdict")
    await handle.signal("verdict", AppealVerdict(by="alice", outcome="final", note="ban upheld"))

    def held() -> None:
        state = channel(sandbox, name)
        assert (state["number"], state["number_status"]) == ("+5511955550000", "banned")
        assert len(state["numbers"]) == 1  # no number provisioned
        assert state["template_sends_enabled"] is False  # stopped at once, and stays stopped
        assert applied(sandbox, f"/chat/channels/{name}/numbers") == 0

    def carried_out() -> None:
        state = channel(sandbox, name)
        assert state["number"] != "+5511955550000" and state["number_status"] == "active"
        assert [n["status"] for n in state["numbers"]] == ["retired", "active"]
        assert state["template_sends_enabled"] is False
        assert applied(sandbox, f"/chat/channels/{name}/numbers") == 1

    return AtTheGate(
        handle,
        "provision no new number; the channel stays without WhatsApp until someone decides",
        held,
        carried_out,
    )


async def code_rollback(stanch: Running, incidents: Incidents, severity: Severity) -> AtTheGate:
    sandbox = stanch.settings.platform_url
    service = new_service(sandbox, ["7.0.0", "7.1.0"])
    handle = await incidents.open(
        "rollback",
        alertname="RollbackRequested",
        annotations={"summary": f"roll back {service} (code)"},
        severity=severity,
        service=service,
        target={"service": service, "kind": "code"},
    )

    def held() -> None:
        assert [d["status"] for d in deploys_of(sandbox, service)] == ["live", "live"]
        assert applied(sandbox, f"/deploys/services/{service}/rollback") == 0

    def carried_out() -> None:
        assert [d["status"] for d in deploys_of(sandbox, service)] == ["rolled_back", "live"]
        assert applied(sandbox, f"/deploys/services/{service}/rollback") == 1

    return AtTheGate(handle, "keep 7.1.0 live", held, carried_out)


async def spawn_block_held_back(stanch: Running, incidents: Incidents, severity: Severity) -> AtTheGate:
    """Pressure again, with spawns already blocked once within 10 minutes (the guardrail's limit)."""
    sandbox = stanch.settings.platform_url
    name = new_runtime(sandbox, memory_mb=1400)
    await spend(stanch, name, "block_spawns", Risk.medium, count=1)
    handle = await incidents.open(
        "resource_pressure",
        alertname="GatewayResourcePressure",
        labels={"gateway": name},
        annotations={"summary": f"GatewayResourcePressure on {name}"},
        severity=severity,
        service="gateway",
        target={"gateway": name, "subsystem": name},
    )

    def held() -> None:
        state = runtime(sandbox, name)
        assert (state["resource_pressure"], state["spawns_blocked"], len(state["reviews"])) == (
            True,
            False,
            1,
        )
        assert runtime_effects(sandbox, name) == ["/pressure", "/reviews"]

    def carried_out() -> None:
        state = runtime(sandbox, name)
        assert (state["resource_pressure"], state["spawns_blocked"]) == (True, True)
        assert runtime_effects(sandbox, name) == ["/pressure", "/reviews", "/spawns/block"]

    return AtTheGate(
        handle,
        f"leave spawns open on gateway {name}; the pressure stays marked and in review",
        held,
        carried_out,
    )


RUNBOOKS = [
    Runbook(
        name="gateway_safe_restart",
        route="gateway-memory",
        action="safe-restart",
        opening=["diagnose", "guardrail", "gate1-requested"],
        told_before=[],
        after_give_up=[],
        after_approval=[
            "clean-scheduled-runs",
            "remove-junk-files",
            "announce",
            "safe-restart",
            "health",
            "memory-compare",
            "restarted",
        ],
        approved_state="restarted",
        effect_step="safe-restart",
        to_the_gate=gateway_restart_held_back,
    ),
    Runbook(
        name="zombie_gateway",
        route="zombie-gateway",
        action="safe-restart",
        opening=[
            "alert-direct",
            "collect-logs",
            "collect-state",
            "event-trail",
            "handoff",
            "gate1-requested",
        ],
        # On-call paged at once; the hand-off (logs, state, options) goes to the escalation level.
        told_before=["on-call", "team-lead"],
        after_give_up=[],
        # The approved restart is still judged by the gateway's guardrail (armed, its window empty).
        after_approval=["guardrail-safe-restart", "safe-restart"],
        approved_state="restarted",
        effect_step="safe-restart",
        to_the_gate=zombie_gateway,
    ),
    Runbook(
        name="number_banned",
        route="number-banned",
        action="provision-number",
        opening=["stop-template-sends", "open-appeal", "tell-oncall", "verdict", "gate1-requested"],
        told_before=["on-call"],
        # Whatever the verdict's outcome, the day's sends are analysed before the incident closes.
        after_give_up=["analysis"],
        after_approval=["provision-number", "tell-customer-number", "analysis"],
        approved_state="number_replaced",
        effect_step="provision-number",
        to_the_gate=final_ban,
    ),
    Runbook(
        name="rollback",
        route="rollback-request",
        action="rollback-deploy",
        opening=["find-deploy", "gate1-requested"],
        told_before=[],
        after_give_up=[],
        after_approval=["rollback-deploy"],
        approved_state="rolled_back",
        effect_step="rollback-deploy",
        to_the_gate=code_rollback,
    ),
    Runbook(
        name="resource_pressure",
        route="resource-pressure",
        action="block-risky-spawns",
        opening=["diagnose", "mark-pressure", "guardrail", "tell-oncall", "review", "gate1-requested"],
        told_before=["on-call"],
        after_give_up=[],
        after_approval=["block-spawns"],
        approved_state="spawns_blocked",
        effect_step="block-spawns",
        to_the_gate=spawn_block_held_back,
    ),
]
each_runbook = pytest.mark.parametrize("runbook", RUNBOOKS, ids=[r.name for r in RUNBOOKS])


async def at_the_gate(runbook: Runbook, stanch: Running, incidents: Incidents, policy: Policy) -> AtTheGate:
    opened = await runbook.to_the_gate(stanch, incidents, runbook.severity(policy))
    brief = await until_state(opened.handle, "awaiting_approval")
    assert brief.awaiting is not None and repr(runbook.action) in brief.awaiting
    assert steps(stanch, opened.handle) == runbook.opening
    assert other_channels(stanch.settings.platform_url, opened.handle.id) == runbook.told_before
    opened.held()
    return opened


# ---- the tests ------------------------------------------------------------------------------------------


@pytest.mark.slow  # nobody answers: the whole ladder to its safe default, dozens of pages (3-14 s)
@each_runbook
async def test_unanswered_the_ladder_pages_the_lead_then_stays_unattended_and_closes_unattended_at_24_hours(
    stanch: Running, incidents: Incidents, policy: Policy, runbook: Runbook
) -> None:
    sandbox = stanch.settings.platform_url
    severity = runbook.severity(policy)
    ladder = ladder_of(incidents.policy.incident_policy(), severity)
    if severity is not Severity.P0:
        # Asked at once, the gate's 30-minute window beats the P1 (60 min) and P2 (4 h) response targets.
        assert ladder.first[0] == "gate1-escalate-1" and len(ladder.repeats) == SHIPPED_LADDER_REPEATS
    else:
        # P0's 5-minute target moves the incident first: unattended 5 minutes after it, one repeat more.
        assert (
            ladder.first[0] == "response-target-missed" and len(ladder.repeats) == SHIPPED_LADDER_REPEATS + 1
        )
    opened = await at_the_gate(runbook, stanch, incidents, policy)
    handle = opened.handle
    lead = lead_people(incidents.policy.incident_policy())
    kinds = kinds_of(policy, severity)

    # The first level: the team lead, each of its people on the priority's kinds.
    first_step, first_at = ladder.first
    await stanch.env.sleep(first_at + JUST_PAST)
    brief = await until_state(handle, "escalated")
    assert brief.awaiting is not None and "escalated to team-lead" in brief.awaiting
    [first] = ladder_pages(sandbox, handle.id)
    assert (first["step"], first["channel"], first["recipient"]) == (first_step, "team-lead", "lead")
    title = "Response target missed:" if first_step == "response-target-missed" else "Escalation:"
    assert first["title"].startswith(title)
    assert copies(sandbox, handle.id)[first_step] == [
        ("team-lead", person, kind) for kind in kinds for person in lead
    ]
    opened.held()

    # Past the last level: unattended, the safe default in force and named, nobody paged for it yet.
    await stanch.env.sleep(ladder.unattended_at - first_at)
    brief = await until_state(handle, "unattended")
    assert brief.awaiting is not None and f"in force meanwhile: {opened.safe_default}" in brief.awaiting
    assert len(ladder_pages(sandbox, handle.id)) == 1
    opened.held()

    # One repeat interval on: paged again, still unattended.
    await stanch.env.sleep(incidents.policy.incident_policy().repeat_every)
    brief = await until_state(handle, "unattended")
    assert [p["step"] for p in ladder_pages(sandbox, handle.id)] == [first_step, "gate1-repeat-1"]

    result = await handle.result()  # nobody ever answers: the server skips every timer to the give-up

    assert result.final_state == "closed_unattended"
    assert result.approval is not None and result.approval.timed_out and not result.approval.approved
    assert (result.approval.action, result.approval.comment) == (runbook.action, opened.safe_default)
    opened.held()

    # Every page, in order and on time, each to the lead on the priority's kinds.
    assert page_times(stanch, handle) == ladder.pages
    sent = ladder_pages(sandbox, handle.id)
    assert [p["step"] for p in sent] == [step for step, _ in ladder.pages]
    assert all((p["channel"], p["recipient"]) == ("team-lead", "lead") for p in sent)
    received = copies(sandbox, handle.id)
    assert all(
        received[step] == [("team-lead", person, kind) for kind in kinds for person in lead]
        for step in received
    )
    assert sum(len(c) for c in received.values()) == len(ladder.pages) * len(lead) * len(kinds)
    for repeat in sent[1:-1]:
        assert repeat["title"].startswith("Still unattended:")
        assert f"in force meanwhile: {opened.safe_default}" in repeat["text"]
    final = sent[-1]
    assert final["title"].startswith("Closed unattended:")
    hours = incidents.policy.incident_policy().give_up_after.total_seconds() / 3600
    assert f"in {hours:g} hours" in final["text"]
    assert f"Still in its safe state: {opened.safe_default}" in final["text"]
    assert other_channels(sandbox, handle.id) == runbook.told_before  # the runbook itself said nothing more

    rows = audit_rows(stanch.settings, handle.id)
    assert [r["step_key"] for r in rows] == [
        *runbook.opening,
        *(step for step, _ in ladder.pages[:-1]),
        "gate1-safe-default",
        "gate1-give-up",
        *runbook.after_give_up,
        "closed",
    ]
    pages_done = [r for r in rows if r["step_key"].startswith(LADDER_STEP_PREFIXES)]
    assert all((r["actor"], r["outcome"]) == ("stanch", "done") for r in pages_done)
    safe = row(stanch, handle, "gate1-safe-default")
    assert (safe["action"], safe["outcome"], safe["reason"]) == (
        runbook.action,
        "not taken",
        opened.safe_default,
    )
    assert (rows[-1]["outcome"], rows[-1]["actor"]) == ("closed_unattended", "stanch")
    assert "gate1-decision" not in [r["step_key"] for r in rows]


@each_runbook
async def test_a_late_approval_while_unattended_is_carried_out_and_audited_with_its_approver(
    stanch: Running, incidents: Incidents, policy: Policy, runbook: Runbook
) -> None:
    sandbox = stanch.settings.platform_url
    ladder = ladder_of(incidents.policy.incident_policy(), runbook.severity(policy))
    opened = await at_the_gate(runbook, stanch, incidents, policy)
    handle = opened.handle

    # Unattended, and paged once again since: the first level's page and one repeat.
    late = ladder.unattended_at + incidents.policy.incident_policy().repeat_every + JUST_PAST
    await stanch.env.sleep(late)
    await until_state(handle, "unattended")
    paged = ladder.due_by(late)
    assert (
        [p["step"] for p in ladder_pages(sandbox, handle.id)] == paged == [ladder.first[0], "gate1-repeat-1"]
    )
    opened.held()

    await handle.signal(
        "approve", ApprovalAnswer(approver="alice", action=runbook.action, comment="late, sorry")
    )
    result = await handle.result()

    assert result.final_state == runbook.approved_state
    assert result.approval is not None and result.approval.approved and result.approval.escalated
    assert result.approval.decided_by == "alice" and not result.approval.timed_out
    opened.carried_out()
    assert steps(stanch, handle) == [
        *runbook.opening,
        *paged,
        "gate1-decision",
        *runbook.after_approval,
        "closed",
    ]
    decision = row(stanch, handle, "gate1-decision")
    assert (decision["actor"], decision["action"], decision["outcome"], decision["reason"]) == (
        "alice",
        runbook.action,
        "approved",
        "late, sorry",
    )
    effect = row(stanch, handle, runbook.effect_step)
    assert (effect["actor"], effect["outcome"]) == ("alice", "done")
    assert row(stanch, handle, "closed")["outcome"] == runbook.approved_state
    # Nobody was paged after the approval.
    assert [p["step"] for p in ladder_pages(sandbox, handle.id)] == paged


ACKNOWLEDGED = [r for r in RUNBOOKS if r.name in ("gateway_safe_restart", "zombie_gateway", "rollback")]


@pytest.mark.parametrize("runbook", ACKNOWLEDGED, ids=[r.name for r in ACKNOWLEDGED])
async def test_an_acknowledgement_runs_out_after_30_minutes_and_the_lead_is_paged_saying_so(
    stanch: Running, incidents: Incidents, policy: Policy, runbook: Runbook
) -> None:
    sandbox = stanch.settings.platform_url
    incident_policy = incidents.policy.incident_policy()
    hold = incident_policy.acknowledge_holds
    assert hold == timedelta(minutes=30)  # what the test's name says; the shipped default
    opened = await at_the_gate(runbook, stanch, incidents, policy)
    handle = opened.handle

    await stanch.env.sleep(ACKNOWLEDGED_AFTER)
    await handle.signal("acknowledge", Acknowledgement(by="bob"))
    # Held past the first answer window (30 min after the question) and, at P0, past the response target
    # (5 min), which bob's acknowledgement met: nobody is paged.
    await stanch.env.sleep(incident_policy.approval_timeout + JUST_PAST - ACKNOWLEDGED_AFTER)
    assert (await until_state(handle, "awaiting_approval")).state == "awaiting_approval"
    assert ladder_pages(sandbox, handle.id) == []
    assert steps(stanch, handle) == runbook.opening

    # The hold runs out 30 minutes after the acknowledgement: the team lead is paged, told so.
    await stanch.env.sleep(ACKNOWLEDGED_AFTER + hold - incident_policy.approval_timeout)
    brief = await until_state(handle, "escalated")
    assert brief.awaiting is not None and "escalated to team-lead" in brief.awaiting
    [page] = ladder_pages(sandbox, handle.id)
    assert (page["step"], page["channel"], page["recipient"]) == ("gate1-escalate-1", "team-lead", "lead")
    minutes = int(hold.total_seconds() // 60)
    assert page["text"].startswith(f"The acknowledgement by bob ran out after {minutes} minutes.")
    kinds = kinds_of(policy, runbook.severity(policy))
    lead = lead_people(incident_policy)
    assert copies(sandbox, handle.id)["gate1-escalate-1"] == [
        ("team-lead", person, kind) for kind in kinds for person in lead
    ]
    assert page_times(stanch, handle) == [("gate1-escalate-1", ACKNOWLEDGED_AFTER + hold)]
    assert steps(stanch, handle) == [*runbook.opening, "gate1-escalate-1"]
    opened.held()

    # The ladder resumed where it stood: the lead's interval on, unattended (no page for that).
    await stanch.env.sleep(incident_policy.escalation[0].after)
    await until_state(handle, "unattended")
    assert len(ladder_pages(sandbox, handle.id)) == 1

    await handle.signal("approve", ApprovalAnswer(approver="carol", action=runbook.action))
    result = await handle.result()
    assert result.final_state == runbook.approved_state
    assert result.approval is not None and result.approval.decided_by == "carol" and result.approval.escalated
    opened.carried_out()
    assert steps(stanch, handle) == [
        *runbook.opening,
        "gate1-escalate-1",
        "gate1-decision",
        *runbook.after_approval,
        "closed",
    ]
    assert row(stanch, handle, runbook.effect_step)["actor"] == "carol"
