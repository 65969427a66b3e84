"""The kill switch deciding what runbooks do (seed 002), on the time-skipping server with real effects: the
sandbox's gateways, databases and agents over HTTP, the per-subsystem guardrail workflows and the audit log in
Postgres. Armed (the default) lets two destructive or critical actions through per 5 minutes and asks a human
for the third; engaged asks a human for every one; a security incident engages its subsystem's switch."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import WorkflowHandle

from activities.guardrail import update_guardrail
from schemas.approvals import ApprovalAnswer
from schemas.briefs import Brief
from schemas.guardrail import (
    KILL_SWITCH_UPDATE,
    STATE_QUERY,
    GuardrailLimits,
    GuardrailState,
    KillSwitchChange,
    KillSwitchMode,
    guardrail_workflow_id,
)
from schemas.incidents import IncidentResult
from schemas.severity import Severity
from stanch.policy import GuardrailRules, Policy
from stanch.settings import get_settings
from tests.clock import settle_and_terminate, settled
from tests.helpers import (
    Incidents,
    Running,
    applied,
    audit_rows,
    cli,
    get,
    http_client,
    new_service,
    put,
    until_state,
)
from tests.helpers_keys import demo_signed, policy_with_keys

HIGH_MEMORY = {"memory_mb": 1300, "high_watermark_mb": 1536}


class Subsystems:
    """Fresh guardrail subsystems per test, terminated (once settled) afterwards."""

    def __init__(self, stanch: Running) -> None:
        self.stanch = stanch
        self.names: list[str] = []

    def new(self, name: str | None = None) -> str:
        subsystem = name or f"ks-{uuid.uuid4().hex[:8]}"
        self.names.append(subsystem)
        return subsystem

    async def set_mode(self, subsystem: str, mode: KillSwitchMode, *, by: str, reason: str) -> GuardrailState:
        """What `stanch kill-switch` and the Temporal UI send: starts the guardrail if it is not running."""
        state: GuardrailState = await update_guardrail(
            self.stanch.client,
            self.stanch.task_queue,
            subsystem,
            GuardrailLimits(),
            KILL_SWITCH_UPDATE,
            KillSwitchChange(by=by, mode=mode, reason=reason),
            result_type=GuardrailState,
            refused="the kill switch",
        )
        return state

    async def state(self, subsystem: str) -> GuardrailState:
        handle = self.stanch.client.get_workflow_handle(guardrail_workflow_id(subsystem))
        state: GuardrailState = await handle.query(STATE_QUERY, result_type=GuardrailState)
        return state

    async def rows(self, subsystem: str, count: int) -> list[dict[str, Any]]:
        """The guardrail answers a change at once and writes its row after: wait (bounded) for `count`."""
        for _ in range(200):
            rows = audit_rows(self.stanch.settings, guardrail_workflow_id(subsystem))
            if len(rows) >= count:
                return rows
            await asyncio.sleep(0.05)
        return rows


@pytest.fixture
async def subsystems(stanch: Running) -> AsyncIterator[Subsystems]:
    made = Subsystems(stanch)
    yield made
    await settle_and_terminate(stanch.client, [guardrail_workflow_id(name) for name in made.names])


def new_gateway(sandbox: str) -> str:
    name = f"gw-{uuid.uuid4().hex[:8]}"
    http_client.put(f"{sandbox}/runtimes/{name}", json=HIGH_MEMORY).raise_for_status()
    return name


def restarts(sandbox: str, gateway: str) -> int:
    return int(get(sandbox, f"/runtimes/{gateway}")["restarts"])


async def open_restart(
    incidents: Incidents, gateway: str, subsystem: str, **options: Any
) -> WorkflowHandle[Any, IncidentResult]:
    return await incidents.open(
        "gateway_safe_restart",
        alertname="GatewayMemoryHigh",
        labels={"gateway": gateway},
        annotations={"summary": f"GatewayMemoryHigh on {gateway}"},
        severity=Severity.P1,
        service="gateway",
        target={"gateway": gateway, "subsystem": subsystem},
        **options,
    )


async def until_awaiting(handle: WorkflowHandle[Any, Any], action: str) -> Brief:
    """Wait for the gate that asks for `action` (a runbook's gates share the awaiting_approval state)."""
    for _ in range(200):
        brief = await handle.query("brief", result_type=Brief)
        if brief.awaiting and f"'{action}'" in brief.awaiting:
            await settled(handle)
            return brief
        await asyncio.sleep(0.05)
    raise AssertionError(f"never asked for {action}; last brief: {brief}")


def row(stanch: Running, workflow_id: str, step: str) -> dict[str, Any]:
    return next(r for r in audit_rows(stanch.settings, workflow_id) if r["step_key"] == step)


def steps(stanch: Running, workflow_id: str) -> list[str]:
    return [r["step_key"] for r in audit_rows(stanch.settings, workflow_id)]


# ---- armed: the seed's window ---------------------------------------------------------------------------


async def test_armed_third_restart_within_five_minutes_asks_approval_while_the_first_two_ran(
    stanch: Running, incidents: Incidents, subsystems: Subsystems
) -> None:
    sandbox = stanch.settings.platform_url
    subsystem = subsystems.new()
    gateways = [new_gateway(sandbox) for _ in range(3)]
    # Three gateways of one subsystem need a restart at once; which one asks the guardrail third is a race.
    handles = [await open_restart(incidents, gateway, subsystem) for gateway in gateways]
    answers = await guardrail_answers(stanch, [handle.id for handle in handles])

    assert sorted(answers) == ["allow", "allow", "needs_approval"]
    third = handles[answers.index("needs_approval")]
    brief = await until_state(third, "awaiting_approval")
    assert "kill switch armed and the critical window is full" in brief.recommendation
    assert "2 critical or destructive actions already within 5 min" in brief.recommendation
    state = await subsystems.state(subsystem)
    # Under the hourly restart limit (3): only the kill switch's window held it back.
    assert (state.mode, state.critical_in_window, state.restarts_in_last_hour) == (KillSwitchMode.armed, 2, 2)
    assert restarts(sandbox, gateways[handles.index(third)]) == 0

    await third.signal("approve", ApprovalAnswer(approver="alice", action="safe-restart", comment="go"))
    results = [await handle.result() for handle in handles]
    assert [result.final_state for result in results] == ["restarted"] * 3
    assert [restarts(sandbox, gateway) for gateway in gateways] == [1, 1, 1]
    # The first two restarted on their own; the third on alice's word.
    actors = [row(stanch, handle.id, "safe-restart")["actor"] for handle in handles]
    assert actors == ["alice" if handle is third else "stanch" for handle in handles]


async def guardrail_answers(stanch: Running, workflow_ids: list[str]) -> list[str]:
    """Each incident's `guardrail` audit row outcome once all have one (bounded; activities run in real
    time, so no clock needs to move for them)."""
    for _ in range(400):
        found = [
            next(
                (r["outcome"] for r in audit_rows(stanch.settings, wid) if r["step_key"] == "guardrail"), None
            )
            for wid in workflow_ids
        ]
        if all(found):
            return [str(outcome) for outcome in found]
        await asyncio.sleep(0.05)
    raise AssertionError(f"not every incident asked its guardrail: {found}")


# ---- engaged: every destructive or critical action asks ----------------------------------------------------


async def test_engaged_switch_turns_a_gateway_restart_into_an_approval_and_approval_restarts(
    stanch: Running, incidents: Incidents, subsystems: Subsystems
) -> None:
    sandbox = stanch.settings.platform_url
    subsystem = subsystems.new()
    gateway = new_gateway(sandbox)
    await subsystems.set_mode(subsystem, KillSwitchMode.engaged, by="carol", reason="gateway under review")

    handle = await open_restart(incidents, gateway, subsystem)
    brief = await until_state(handle, "awaiting_approval")
    assert f"kill switch engaged on {subsystem} by carol: gateway under review" in brief.recommendation
    assert restarts(sandbox, gateway) == 0  # an empty window would have let it through when armed
    assert row(stanch, handle.id, "guardrail")["outcome"] == "needs_approval"

    await handle.signal("approve", ApprovalAnswer(approver="alice", action="safe-restart"))
    result = await handle.result()
    assert result.final_state == "restarted"
    assert restarts(sandbox, gateway) == 1
    assert applied(sandbox, f"/runtimes/{gateway}/safe-restart") == 1
    assert row(stanch, handle.id, "safe-restart")["actor"] == "alice"
    # Still engaged: a human's approval does not disarm it.
    assert (await subsystems.state(subsystem)).mode is KillSwitchMode.engaged


async def test_engaged_switch_and_a_rejected_restart_leave_the_gateway_running(
    stanch: Running, incidents: Incidents, subsystems: Subsystems
) -> None:
    sandbox = stanch.settings.platform_url
    subsystem = subsystems.new()
    gateway = new_gateway(sandbox)
    await subsystems.set_mode(subsystem, KillSwitchMode.engaged, by="carol", reason="gateway under review")

    handle = await open_restart(incidents, gateway, subsystem)
    await until_state(handle, "awaiting_approval")
    await handle.signal("reject", ApprovalAnswer(approver="alice", action="safe-restart", comment="not now"))
    result = await handle.result()

    assert result.final_state == "left_running"
    assert restarts(sandbox, gateway) == 0
    assert get(sandbox, "/calls", path_prefix=f"/runtimes/{gateway}/safe-restart") == []
    assert steps(stanch, handle.id) == [
        "diagnose",
        "guardrail",
        "gate1-requested",
        "gate1-decision",
        "closed",
    ]


async def test_policy_default_mode_engaged_holds_the_first_restart_of_a_fresh_guardrail(
    stanch: Running, incidents: Incidents, subsystems: Subsystems, policy: Policy
) -> None:
    sandbox = stanch.settings.platform_url
    subsystem = subsystems.new()
    gateway = new_gateway(sandbox)
    engaged = policy.model_copy(deep=True)
    engaged.guardrails.subsystems[subsystem] = GuardrailRules.model_validate(
        {"kill_switch_default": "engaged"}
    )

    handle = await open_restart(incidents, gateway, subsystem, incident_policy=engaged.incident_policy())
    brief = await until_state(handle, "awaiting_approval")

    # The runbook's ask started the guardrail in the policy's mode; nobody set it.
    assert f"kill switch engaged on {subsystem} (the policy's default)" in brief.recommendation
    state = await subsystems.state(subsystem)
    assert (state.mode, state.mode_by, state.limits.kill_switch_default) == (
        KillSwitchMode.engaged,
        None,
        KillSwitchMode.engaged,
    )
    await handle.signal("reject", ApprovalAnswer(approver="alice", action="safe-restart"))
    assert (await handle.result()).final_state == "left_running"
    assert restarts(sandbox, gateway) == 0
    # The shipped policy's default is armed; old booleans still read as modes.
    assert policy.guardrail_limits("gateway").kill_switch_default is KillSwitchMode.armed


# ---- the security P0 engages it ------------------------------------------------------------------------------


async def test_security_incident_engages_the_switch_and_a_later_restart_on_that_subsystem_asks(
    stanch: Running, incidents: Incidents, subsystems: Subsystems
) -> None:
    sandbox = stanch.settings.platform_url
    agent_id = f"sec-ks-{uuid.uuid4().hex[:8]}"
    put(sandbox, f"/agents/{agent_id}", {"versions": ["v1", "v2"]})
    subsystem = subsystems.new()
    security = await incidents.open(
        "security_incident",
        alertname="AgentToolAbuse",
        labels={"agent": agent_id, "kind": "tool_abuse"},
        annotations={"summary": f"{agent_id} exported the CRM"},
        severity=Severity.P0,
        service="agents",
        target={"agent_id": agent_id, "kind": "tool_abuse", "subsystem": subsystem},
    )
    await until_state(security, "awaiting_approval")

    # Engaged, no longer "unchanged": the switch was armed by default and the incident engaged it.
    [flip] = await subsystems.rows(subsystem, 1)
    assert (flip["step_key"], flip["actor"], flip["outcome"]) == ("kill-switch-1", security.id, "done")
    assert flip["action"] == f"set the kill switch of {subsystem} to engaged"
    state = await subsystems.state(subsystem)
    assert (state.mode, state.mode_by) == (KillSwitchMode.engaged, security.id)
    # Its own isolation went through the engaged guardrail: protective, so allowed and counted.
    assert row(stanch, security.id, "guardrail-isolate")["outcome"] == "allow"
    assert get(sandbox, f"/agents/{agent_id}")["state"] == "paused"
    assert [a.kind for a in state.recent_actions] == ["isolate"]

    gateway = new_gateway(sandbox)
    restart = await open_restart(incidents, gateway, subsystem)
    brief = await until_state(restart, "awaiting_approval")
    assert f"kill switch engaged on {subsystem} by {security.id}" in brief.recommendation
    assert "tool_abuse" in brief.recommendation
    assert restarts(sandbox, gateway) == 0

    await restart.signal("reject", ApprovalAnswer(approver="alice", action="safe-restart"))
    await security.signal("reject", ApprovalAnswer(approver="alice", action="remediate", comment="forensics"))
    assert (await restart.result()).final_state == "left_running"
    assert (await security.result()).final_state == "contained"
    assert restarts(sandbox, gateway) == 0


# ---- actions a human already approved: the switch asks again, saying why ----------------------------------------


async def test_engaged_switch_holds_an_approved_reverse_migration_until_a_second_approval(
    stanch: Running, incidents: Incidents, subsystems: Subsystems
) -> None:
    sandbox = stanch.settings.platform_url
    service = new_service(sandbox)
    put(sandbox, f"/databases/{service}", {"migrations": ["0001_init", "0002_add_totals"]})
    subsystems.new(service)  # the service is its own guardrail subsystem
    await subsystems.set_mode(service, KillSwitchMode.engaged, by="carol", reason="data incident on totals")
    handle = await incidents.open(
        "rollback",
        alertname="RollbackRequested",
        annotations={"summary": f"roll back {service} (database)"},
        severity=Severity.P1,
        service=service,
        target={"service": service, "kind": "database"},
    )
    await until_awaiting(handle, "migrate-down")
    await handle.signal(
        "approve", await demo_signed(handle, ApprovalAnswer(approver="alice", action="migrate-down"))
    )

    brief = await until_awaiting(handle, "migrate-down-past-guardrail")
    assert f"kill switch engaged on {service} by carol: data incident on totals" in brief.recommendation
    assert get(sandbox, f"/databases/{service}")["migrations"] == ["0001_init", "0002_add_totals"]
    assert row(stanch, handle.id, "guardrail-migrate-down")["outcome"] == "needs_approval"

    await handle.signal(
        "reject", ApprovalAnswer(approver="bob", action="migrate-down-past-guardrail", comment="wait")
    )
    result = await handle.result()
    assert result.final_state == "declined"
    database = get(sandbox, f"/databases/{service}")
    assert database["migrations"] == ["0001_init", "0002_add_totals"]
    assert database["verified_backups"] == [f"backup-{service}-1"]
    assert steps(stanch, handle.id)[-5:] == [
        "gate1-decision",
        "guardrail-migrate-down",
        "gate2-requested",
        "gate2-decision",
        "closed",
    ]


async def test_engaged_switch_holds_an_agent_termination_after_its_archive_until_approved_again(
    stanch: Running, incidents: Incidents, subsystems: Subsystems
) -> None:
    sandbox = stanch.settings.platform_url
    agent_id = f"agent-ks-{uuid.uuid4().hex[:8]}"
    put(sandbox, f"/agents/{agent_id}", {"versions": ["v1", "v2"]})
    put(
        sandbox,
        f"/agents/{agent_id}/lifecycle",
        {"workspace": {"JOB.md": "x"}, "memory": ["m"], "tokens": ["tok-api"], "secrets": ["KEY"]},
    )
    subsystems.new(agent_id)  # the agent is its own guardrail subsystem, as in a security incident
    await subsystems.set_mode(
        agent_id, KillSwitchMode.engaged, by="carol", reason="agent under investigation"
    )
    handle = await incidents.open(
        "agent_termination",
        labels={"agent": agent_id},
        annotations={"summary": f"retire {agent_id}"},
        severity=Severity.P2,
        service="agents",
        target={"agent_id": agent_id},
    )
    await until_awaiting(handle, "terminate")
    await handle.signal(
        "approve", await demo_signed(handle, ApprovalAnswer(approver="erin", action="terminate"))
    )

    brief = await until_awaiting(handle, "terminate-past-guardrail")
    assert f"kill switch engaged on {agent_id} by carol: agent under investigation" in brief.recommendation
    # Paused and archived; nothing irreversible yet.
    lifecycle = get(sandbox, f"/agents/{agent_id}/lifecycle")
    assert get(sandbox, f"/agents/{agent_id}")["state"] == "paused"
    assert list(lifecycle["archives"]) == [f"{agent_id}-archive-1"]
    assert (lifecycle["tokens"], lifecycle["secrets"]) == (["tok-api"], ["KEY"])

    await handle.signal(
        "approve",
        await demo_signed(handle, ApprovalAnswer(approver="dave", action="terminate-past-guardrail")),
    )
    result = await handle.result()
    assert result.final_state == "terminated"
    assert get(sandbox, f"/agents/{agent_id}")["state"] == "terminated"
    lifecycle = get(sandbox, f"/agents/{agent_id}/lifecycle")
    assert (lifecycle["tokens"], lifecycle["secrets"]) == ([], [])
    assert row(stanch, handle.id, "guardrail-terminate")["outcome"] == "needs_approval"
    assert (
        row(stanch, handle.id, "gate2-decision")["actor"],
        row(stanch, handle.id, "gate2-decision")["outcome"],
    ) == (
        "dave",
        "approved",
    )


async def test_engaged_switch_holds_an_approved_zombie_restart_until_approved_past_it(
    stanch: Running, incidents: Incidents, subsystems: Subsystems
) -> None:
    sandbox = stanch.settings.platform_url
    subsystem = subsystems.new()
    gateway = f"gw-{uuid.uuid4().hex[:8]}"
    put(
        sandbox, f"/runtimes/{gateway}", {"healthy": False, "zombie": True, "log_lines": ["heartbeat missed"]}
    )
    await subsystems.set_mode(subsystem, KillSwitchMode.engaged, by="carol", reason="gateway under review")
    handle = await incidents.open(
        "zombie_gateway",
        alertname="GatewayZombie",
        labels={"gateway": gateway},
        annotations={"summary": f"GatewayZombie on {gateway}"},
        severity=Severity.P1,
        service="gateway",
        target={"gateway": gateway, "subsystem": subsystem},
    )
    await until_awaiting(handle, "safe-restart")
    await handle.signal("approve", ApprovalAnswer(approver="alice", action="safe-restart"))

    brief = await until_awaiting(handle, "safe-restart-past-guardrail")
    assert f"kill switch engaged on {subsystem} by carol: gateway under review" in brief.recommendation
    assert restarts(sandbox, gateway) == 0
    await handle.signal("approve", ApprovalAnswer(approver="bob", action="safe-restart-past-guardrail"))
    assert (await handle.result()).final_state == "restarted"
    assert restarts(sandbox, gateway) == 1
    restart = row(stanch, handle.id, "safe-restart")
    assert restart["actor"] == "bob" and restart["outcome"] == "done"
    assert row(stanch, handle.id, "guardrail-safe-restart")["outcome"] == "needs_approval"


# ---- the CLI ---------------------------------------------------------------------------------------------------


async def test_stanch_kill_switch_engages_shows_and_arms_with_an_audited_reason(
    stanch: Running, subsystems: Subsystems, cli_env: dict[str, str], tmp_path: Path
) -> None:
    subsystem = subsystems.new()
    # Signatures optional here: the CLI signs for minutes of wall-clock time, and this server's workflow
    # time runs ahead of it. The signed disengage is tested on a real server (tests/e2e/test_signed_cli.py).
    unsigned = policy_with_keys(tmp_path, {}, signatures="optional")
    env = {**cli_env, "STANCH_TASK_QUEUE": stanch.task_queue, "STANCH_CONFIG": str(unsigned)}
    get_settings.cache_clear()

    shown = await cli(["kill-switch", subsystem], env)
    assert shown.exit_code == 0, shown.output
    assert f"guardrail-{subsystem}: not running; it starts armed (policy)" in shown.output

    refused = await cli(["kill-switch", subsystem, "engage", "--as", "alice"], env)
    assert refused.exit_code == 2 and "--reason" in refused.output
    unknown = await cli(["kill-switch", subsystem, "on", "--as", "alice", "--reason", "x"], env)
    assert unknown.exit_code == 2 and "engage, arm or off" in unknown.output

    engaged = await cli(
        ["kill-switch", subsystem, "engage", "--as", "alice", "--reason", "suspicious deploys"], env
    )
    assert engaged.exit_code == 0, engaged.output
    assert f"guardrail-{subsystem}: kill switch engaged (set by alice: suspicious deploys)" in engaged.output
    assert (await subsystems.state(subsystem)).mode is KillSwitchMode.engaged

    shown = await cli(["kill-switch", subsystem], env)
    assert "kill switch engaged (set by alice: suspicious deploys)" in shown.output
    assert "0/2" in shown.output

    armed = await cli(["kill-switch", subsystem, "arm", "--as", "bob", "--reason", "all clear"], env)
    assert armed.exit_code == 0, armed.output
    assert "kill switch armed (set by bob: all clear)" in armed.output
    rows = await subsystems.rows(subsystem, 2)
    assert [(r["step_key"], r["actor"], r["outcome"], r["reason"]) for r in rows] == [
        ("kill-switch-1", "alice", "done", "suspicious deploys"),
        ("kill-switch-2", "bob", "done", "all clear"),
    ]
