"""Failures are loud (issue #10, part 4): no runbook stops on a failure without paging on-call.

Each test fails one effect (or read) on purpose with a sandbox fault — the platform answers 409, which is
not retried — and proves three things from the outside: the page reached the sandbox chat as an on-call
message whose text says WHAT failed and the STATE left, the final state of the incident, and the state of
the system at the sandbox (nothing done behind the page's back). Time-skipping server, real activities.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from temporalio.client import WorkflowFailureError, WorkflowHandle

from schemas.approvals import ApprovalAnswer, Resolution
from schemas.briefs import Brief
from schemas.channel import AppealVerdict
from schemas.handoff import Handoff, HandoffInput, HandoffOption, HandoffResult, Trigger
from schemas.learning import PostmortemResult
from schemas.report import ReportRequest
from schemas.severity import Severity
from tests.clock import settled
from tests.helpers import (
    Incidents,
    Running,
    audit_rows,
    chat_messages,
    fault,
    get,
    http_client,
    new_service,
    put,
    until_state,
)
from tests.helpers_keys import demo_signed

# ---- helpers ----------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def no_leftover_faults(stanch: Running) -> Iterator[None]:
    # A fault a failed test did not use up must not trip the next test's effects.
    yield
    http_client.delete(f"{stanch.settings.platform_url}/faults").raise_for_status()


def status_of(sandbox: str, path: str) -> int:
    return http_client.get(f"{sandbox}{path}").status_code


def page(sandbox: str, workflow_id: str, step: str) -> dict[str, Any]:
    """The one on-call message this incident sent under `step` (its idempotency key ends with the step;
    each on-call person's copy of it counts once)."""
    found = [m for m in chat_messages(sandbox, workflow_id) if m["idempotency_key"].endswith("/" + step)]
    assert len(found) == 1, f"expected one {step!r} page from {workflow_id}, got {found}"
    [body] = found
    assert body["channel"] == "on-call"
    return dict(body)


def assert_loud(message: dict[str, Any], *, what: list[str], state_left: list[str]) -> None:
    """The page names what failed (with the platform's answer) and the state a person must deal with."""
    assert message["title"].startswith("Failed: "), message["title"]
    text = message["text"]
    failed, _, left = text.partition(". State left: ")
    assert left, f"no 'State left:' in {text!r}"
    for needle in what:
        assert needle in failed, f"{needle!r} not in what failed: {failed!r}"
    assert "409" in failed, f"the platform's answer is missing: {failed!r}"
    for needle in state_left:
        assert needle in left, f"{needle!r} not in the state left: {left!r}"


def steps(stanch: Running, workflow_id: str) -> list[str]:
    return [row["step_key"] for row in audit_rows(stanch.settings, workflow_id)]


async def until_asked(handle: WorkflowHandle[Any, Any], action: str) -> None:
    """Wait for the gate that asks for `action`, parked on its escalation timer."""
    for _ in range(200):
        brief = await handle.query("brief", result_type=Brief)
        if brief.state == "awaiting_approval" and brief.awaiting and f"'{action}'" in brief.awaiting:
            await settled(handle)
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"never asked for {action}; last brief: {brief}")


async def approve(handle: WorkflowHandle[Any, Any], action: str, approver: str = "alice") -> None:
    await until_asked(handle, action)
    await handle.signal(
        "approve", await demo_signed(handle, ApprovalAnswer(approver=approver, action=action, comment="go"))
    )


# ---- rollback: a failed read stops it; an approved rollback or revert the platform refused -------------


def code_service(sandbox: str) -> str:
    return new_service(sandbox, ["7.0.0", "7.1.0"])


def database_service(sandbox: str) -> str:
    service = new_service(sandbox)
    put(sandbox, f"/databases/{service}", {"migrations": ["0001_init", "0002_add_totals"]})
    return service


def infra_service(sandbox: str) -> str:
    service = new_service(sandbox)
    put(sandbox, f"/infra/{service}", {"status": "degraded", "config_versions": ["cfg-1", "cfg-2"]})
    return service


SETUP = {"code": code_service, "database": database_service, "infrastructure": infra_service}


def rollback_state(sandbox: str, kind: str, service: str) -> Any:
    """What the service looks like at the platform: what a rollback would have changed."""
    if kind == "code":
        return [d["status"] for d in get(sandbox, "/deploys") if d["service"] == service]
    if kind == "database":
        return get(sandbox, f"/databases/{service}")["migrations"]
    return get(sandbox, f"/infra/{service}")["config_version"]


@pytest.mark.parametrize(
    ("kind", "read", "failed_step", "what", "state_left"),
    [
        ("code", "/deploys", "find-deploy", "reading the recent deploys", "nothing was rolled back"),
        ("database", "/databases/{service}", "find-migration", "reading the applied migrations", "untouched"),
        ("infrastructure", "/infra/{service}", "find-config", "reading the deploy configuration", "reverted"),
    ],
    ids=["code", "database", "infrastructure"],
)
async def test_rollback_whose_first_read_fails_pages_oncall_and_changes_nothing(
    stanch: Running, incidents: Incidents, kind: str, read: str, failed_step: str, what: str, state_left: str
) -> None:
    sandbox = stanch.settings.platform_url
    service = SETUP[kind](sandbox)
    before = rollback_state(sandbox, kind, service)
    fault(sandbox, read.format(service=service))
    handle = await incidents.open("rollback", target={"service": service, "kind": kind})

    result = await handle.result()

    assert result.final_state == "action_failed"
    assert rollback_state(sandbox, kind, service) == before
    assert steps(stanch, handle.id) == [failed_step, f"{failed_step}-failed", "closed"]
    message = page(sandbox, handle.id, f"{failed_step}-failed")
    assert_loud(message, what=[what, service], state_left=[state_left])


@pytest.mark.parametrize(
    ("kind", "action", "effect", "what", "state_left"),
    [
        (
            "code",
            "rollback-deploy",
            "/deploys/services/{service}/rollback",
            "rolling {service} back from 7.1.0 (approved by alice)",
            "{service} still runs 7.1.0",
        ),
        (
            "database",
            "migrate-down",
            "/databases/{service}/migrate-down",
            "reversing migration 0002_add_totals on {service} (approved by alice)",
            "verified backup backup-{service}-1 holds the data from before",
        ),
        (
            "infrastructure",
            "revert-config",
            "/infra/{service}/config/revert",
            "reverting {service} to configuration cfg-1 (approved by alice)",
            "{service} keeps configuration cfg-2 (degraded)",
        ),
    ],
    ids=["code", "database", "infrastructure"],
)
async def test_approved_rollback_the_platform_refused_pages_oncall_with_what_stays(
    stanch: Running, incidents: Incidents, kind: str, action: str, effect: str, what: str, state_left: str
) -> None:
    sandbox = stanch.settings.platform_url
    service = SETUP[kind](sandbox)
    before = rollback_state(sandbox, kind, service)
    fault(sandbox, effect.format(service=service))
    handle = await incidents.open("rollback", target={"service": service, "kind": kind})
    await approve(handle, action)

    result = await handle.result()

    assert result.final_state == "action_failed"
    assert rollback_state(sandbox, kind, service) == before
    assert steps(stanch, handle.id)[-3:] == [action, f"{action}-failed", "closed"]
    message = page(sandbox, handle.id, f"{action}-failed")
    assert_loud(message, what=[what.format(service=service)], state_left=[state_left.format(service=service)])


# ---- agent lifecycle ------------------------------------------------------------------------------------


async def test_onboarding_whose_activation_fails_pages_oncall_that_the_agent_serves_nobody(
    stanch: Running, incidents: Incidents
) -> None:
    sandbox = stanch.settings.platform_url
    agent_id = f"agent-loud-{uuid.uuid4().hex[:8]}"
    fault(sandbox, f"/agents/{agent_id}/resume")  # activation is the only resume of an onboarding
    handle = await incidents.open(
        "agent_onboarding",
        target={"agent_id": agent_id, "role": "billing-assistant", "tools": "kb:read"},
        severity=Severity.P3,
    )
    for action in ["approve-scope", "approve-job-description", "approve-capabilities"]:
        await approve(handle, action, approver="erin")

    result = await handle.result()

    assert result.final_state == "action_failed"
    assert get(sandbox, f"/agents/{agent_id}")["state"] == "paused"  # deployed, never put in service
    assert steps(stanch, handle.id)[-4:] == ["gold-set-1", "activate", "activate-failed", "closed"]
    message = page(sandbox, handle.id, "activate-failed")
    assert_loud(
        message,
        what=[f"putting agent {agent_id} v1 in service"],
        state_left=["passed its gold set", "serves nobody", "resume it by hand"],
    )


async def test_upgrade_whose_diff_fails_pages_oncall_and_keeps_the_version(
    stanch: Running, incidents: Incidents
) -> None:
    sandbox = stanch.settings.platform_url
    agent_id = f"agent-loud-{uuid.uuid4().hex[:8]}"
    put(sandbox, f"/agents/{agent_id}", {"versions": ["v1", "v2"]})
    fault(sandbox, f"/agents/{agent_id}/versions/diff")
    handle = await incidents.open("agent_upgrade", target={"agent_id": agent_id, "to_version": "v3"})

    result = await handle.result()

    assert result.final_state == "action_failed"
    assert get(sandbox, f"/agents/{agent_id}")["version"] == "v2"
    assert steps(stanch, handle.id) == ["identify-changes", "identify-changes-failed", "closed"]
    message = page(sandbox, handle.id, "identify-changes-failed")
    assert_loud(
        message,
        what=[f"diffing agent {agent_id} against v3"],
        state_left=["nothing was snapshotted or applied", "stays on its current version"],
    )


async def test_termination_whose_token_revocation_fails_pages_oncall_that_the_tokens_still_work(
    stanch: Running, incidents: Incidents
) -> None:
    sandbox = stanch.settings.platform_url
    agent_id = f"agent-loud-{uuid.uuid4().hex[:8]}"
    put(sandbox, f"/agents/{agent_id}", {"versions": ["v1", "v2"]})
    put(sandbox, f"/agents/{agent_id}/lifecycle", {"tokens": ["tok-api"], "secrets": ["CRM_PASSWORD"]})
    fault(sandbox, f"/agents/{agent_id}/tokens")
    handle = await incidents.open("agent_termination", target={"agent_id": agent_id})
    await approve(handle, "terminate", approver="erin")

    result = await handle.result()

    assert result.final_state == "cleanup_incomplete"
    held = get(sandbox, f"/agents/{agent_id}/lifecycle")
    assert (held["tokens"], held["secrets"]) == (["tok-api"], [])
    assert get(sandbox, f"/agents/{agent_id}")["state"] == "terminated"
    keys = steps(stanch, handle.id)
    assert keys[keys.index("final-report") + 1] == "cleanup-failed"
    assert_loud(
        page(sandbox, handle.id, "cleanup-failed"),
        what=[f"the clean-up of agent {agent_id}: Revoke the tokens of agent {agent_id}"],
        state_left=["holds everything", "its tokens still work", "Finish the clean-up by hand"],
    )


# ---- chat channel --------------------------------------------------------------------------------------


def new_channel(sandbox: str, **spec: Any) -> str:
    name = f"wa-loud-{uuid.uuid4().hex[:8]}"
    put(sandbox, f"/chat/channels/{name}", spec)
    return name


async def test_refused_runtime_restart_pages_oncall_that_the_runtime_still_fails(
    stanch: Running, incidents: Incidents
) -> None:
    sandbox = stanch.settings.platform_url
    channel = new_channel(sandbox, runtime_5xx_last_5m=40)
    fault(sandbox, f"/chat/channels/{channel}/runtime/restart")
    target = {"channel": channel, "runtime": "chat-runtime", "subsystem": f"runtime-{uuid.uuid4().hex[:8]}"}
    handle = await incidents.open("channel_downtime", target=target)

    result = await handle.result()

    assert result.final_state == "action_failed"
    assert get(sandbox, f"/chat/channels/{channel}")["runtime_restarts"] == 0
    assert steps(stanch, handle.id)[-3:] == ["restart-runtime", "restart-runtime-failed", "closed"]
    message = page(sandbox, handle.id, "restart-runtime-failed")
    assert_loud(
        message,
        what=[f"restarting chat-runtime of channel {channel} (by stanch)"],
        state_left=["was not restarted", "server errors"],
    )


async def test_approved_token_rotation_that_fails_pages_oncall_that_the_token_stays_expired(
    stanch: Running, incidents: Incidents
) -> None:
    sandbox = stanch.settings.platform_url
    channel = new_channel(sandbox, token_expires_in_s=0)
    fault(sandbox, f"/chat/channels/{channel}/token/rotate")
    target = {"channel": channel, "subsystem": f"runtime-{uuid.uuid4().hex[:8]}"}
    handle = await incidents.open("channel_downtime", target=target)
    await approve(handle, "rotate-token", approver="bob")

    result = await handle.result()

    assert result.final_state == "action_failed"
    state = get(sandbox, f"/chat/channels/{channel}")
    assert (state["token_version"], state["token_rotations"]) == (1, 0)
    assert steps(stanch, handle.id)[-3:] == ["rotate-token", "rotate-token-failed", "closed"]
    message = page(sandbox, handle.id, "rotate-token-failed")
    assert_loud(
        message,
        what=[f"rotating the access token of {channel} (approved by bob)"],
        state_left=["the expired token stays in place"],
    )


BANNED = {
    "number": "+5511955550000",
    "number_status": "banned",
    "quality_rating": "low",
}


async def test_approved_new_number_that_cannot_be_provisioned_pages_oncall(
    stanch: Running, incidents: Incidents
) -> None:
    sandbox = stanch.settings.platform_url
    channel = new_channel(sandbox, **BANNED)
    fault(sandbox, f"/chat/channels/{channel}/numbers")
    handle = await incidents.open("number_banned", target={"channel": channel, "customer": "acme"})
    await until_state(handle, "awaiting_verdict")
    await handle.signal("verdict", AppealVerdict(by="alice", outcome="final", note="ban upheld"))
    await approve(handle, "provision-number", approver="bob")

    result = await handle.result()

    assert result.final_state == "action_failed"
    state = get(sandbox, f"/chat/channels/{channel}")
    assert len(state["numbers"]) == 1 and state["template_sends_enabled"] is False
    keys = steps(stanch, handle.id)
    assert keys[keys.index("provision-number") + 1] == "provision-number-failed"
    message = page(sandbox, handle.id, "provision-number-failed")
    assert_loud(
        message,
        what=[f"provisioning a new number for {channel} (approved by bob)"],
        state_left=["keeps only its banned number", "template sends stay stopped"],
    )


TEMPLATES = {
    "templates": {
        "order_confirmation": {
            "body": "Seu pedido {{1}} foi confirmado! Aproveite 20% de desconto!",
            "category": "MARKETING",
            "status": "rejected",
            "rejection_reason": "promotional content in a utility message",
            "reviews": ["approved"],
        },
        "generic_update": {"body": "Oi, tenho uma atualização sobre seu pedido.", "status": "approved"},
    }
}


async def test_resubmission_that_fails_pages_oncall_that_the_backup_stays_in_use(
    stanch: Running, incidents: Incidents
) -> None:
    sandbox = stanch.settings.platform_url
    channel = new_channel(sandbox, **TEMPLATES)
    fault(sandbox, f"/chat/channels/{channel}/templates/order_confirmation/submissions")
    handle = await incidents.open(
        "template_rejected", target={"channel": channel, "template": "order_confirmation"}
    )

    result = await handle.result()

    assert result.final_state == "action_failed"
    state = get(sandbox, f"/chat/channels/{channel}")
    assert state["template_in_use"] == {"order_confirmation": "generic_update"}
    assert state["templates"]["order_confirmation"]["submissions"] == []
    assert steps(stanch, handle.id)[-3:] == ["resubmit-1", "resubmit-1-failed", "closed"]
    message = page(sandbox, handle.id, "resubmit-1-failed")
    assert_loud(
        message,
        what=["resubmitting the edited order_confirmation (1/3)"],
        state_left=["generic_update stays in use in place of order_confirmation"],
    )


# ---- gateway -------------------------------------------------------------------------------------------


def new_gateway(sandbox: str, **spec: Any) -> str:
    name = f"gw-loud-{uuid.uuid4().hex[:8]}"
    put(sandbox, f"/runtimes/{name}", spec)
    return name


async def test_allowed_spawn_block_that_fails_pages_oncall_that_spawns_stay_open(
    stanch: Running, incidents: Incidents
) -> None:
    sandbox = stanch.settings.platform_url
    gateway = new_gateway(sandbox)
    fault(sandbox, f"/runtimes/{gateway}/spawns/block")
    target = {"gateway": gateway, "subsystem": gateway}
    handle = await incidents.open("resource_pressure", target=target, severity=Severity.P2)

    result = await handle.result()

    assert result.final_state == "action_failed"
    runtime = get(sandbox, f"/runtimes/{gateway}")
    assert (runtime["resource_pressure"], runtime["spawns_blocked"]) == (True, False)
    assert steps(stanch, handle.id)[-2:] == ["block-spawns-failed", "closed"]
    message = page(sandbox, handle.id, "block-spawns-failed")
    assert_loud(
        message,
        what=[f"blocking risky spawns on gateway {gateway} (allowed by the guardrail)"],
        state_left=["stay open under pressure", "marked and in review"],
    )


async def test_approved_spawn_block_that_fails_pages_oncall_that_spawns_stay_open(
    stanch: Running, incidents: Incidents
) -> None:
    sandbox = stanch.settings.platform_url
    gateway = new_gateway(sandbox)
    target = {"gateway": gateway, "subsystem": gateway}
    first = await incidents.open("resource_pressure", target=target, severity=Severity.P2)
    # Not `result()`: waiting on a result lets the shared test server skip past the 10-minute window.
    await until_state(first, "spawns_blocked")
    put(sandbox, f"/runtimes/{gateway}", {})  # the block was lifted by hand
    second = await incidents.open("resource_pressure", target=target, severity=Severity.P2)
    await until_asked(second, "block-risky-spawns")
    fault(sandbox, f"/runtimes/{gateway}/spawns/block")
    await second.signal("approve", ApprovalAnswer(approver="carol", action="block-risky-spawns"))

    result = await second.result()

    assert result.final_state == "action_failed"
    assert get(sandbox, f"/runtimes/{gateway}")["spawns_blocked"] is False
    assert steps(stanch, second.id)[-3:] == ["block-spawns", "block-spawns-failed", "closed"]
    message = page(sandbox, second.id, "block-spawns-failed")
    assert_loud(
        message,
        what=[f"blocking risky spawns on gateway {gateway} (approved by carol)"],
        state_left=["stay open under pressure"],
    )


ZOMBIE = {"healthy": False, "zombie": True, "log_lines": ["heartbeat missed", "watchdog: no progress"]}


async def test_approved_zombie_restart_that_fails_pages_oncall_that_the_gateway_stays_stuck(
    stanch: Running, incidents: Incidents
) -> None:
    sandbox = stanch.settings.platform_url
    gateway = new_gateway(sandbox, **ZOMBIE)
    fault(sandbox, f"/runtimes/{gateway}/safe-restart")
    target = {"gateway": gateway, "subsystem": gateway}
    handle = await incidents.open("zombie_gateway", target=target, severity=Severity.P0)
    await approve(handle, "safe-restart")

    result = await handle.result()

    assert result.final_state == "action_failed"
    runtime = get(sandbox, f"/runtimes/{gateway}")
    assert (runtime["restarts"], runtime["zombie"]) == (0, True)
    assert steps(stanch, handle.id)[-3:] == ["safe-restart", "safe-restart-failed", "closed"]
    message = page(sandbox, handle.id, "safe-restart-failed")
    assert_loud(
        message,
        what=[f"the safe restart of zombie gateway {gateway} (approved by alice)"],
        state_left=["was not restarted and stays unresponsive", "zombie=True"],
    )


# ---- escalation to a human --------------------------------------------------------------------------------


async def test_chosen_option_the_desk_refused_pages_oncall_that_nothing_was_carried_out(
    stanch: Running, incidents: Incidents
) -> None:
    sandbox = stanch.settings.platform_url
    handoff = Handoff(
        trigger=Trigger.over_threshold,
        subject="billing-bot-loud",
        context="A refund above the agent's 20 EUR ceiling was requested.",
        tried=["agent checked the invoice"],
        options=[
            HandoffOption(name="refund-customer", description="refund the 40 EUR"),
            HandoffOption(name="human-takeover", description="a person answers the customer"),
        ],
        recommendation="refund-customer",
        priority=Severity.P1,
        requested_by="billing-bot-loud",
    )
    handle = await incidents.open(
        "escalation_to_human",
        alertname="AgentNeedsHuman",
        target={"agent_id": "billing-bot-loud"},
        labels={},
        annotations={"summary": "billing-bot-loud needs a human"},
        service="agents",
        signal_alert=False,
        input_type=HandoffInput,
        result_type=HandoffResult,
        handoff=handoff,
    )
    fault(sandbox, f"/handoffs/{handle.id}/execute")
    await approve(handle, "refund-customer", approver="erin")

    result = await handle.result()

    assert (result.final_state, result.carried_out) == ("action_failed", False)
    assert get(sandbox, f"/handoffs/{handle.id}")["status"] == "open"
    assert steps(stanch, handle.id)[-3:] == ["carry-out", "carry-out-failed", "closed"]
    message = page(sandbox, handle.id, "carry-out-failed")
    assert_loud(
        message,
        what=["carrying out refund-customer for billing-bot-loud (chosen by erin)"],
        state_left=["refund-customer was not carried out", f"handoff {handle.id}"],
    )


# ---- post-mortems that cannot be published ------------------------------------------------------------


async def test_security_post_mortem_that_cannot_be_published_pages_oncall(
    stanch: Running, incidents: Incidents
) -> None:
    sandbox = stanch.settings.platform_url
    agent_id = f"sec-loud-{uuid.uuid4().hex[:8]}"
    put(sandbox, f"/agents/{agent_id}", {"versions": ["v1", "v2", "v3"]})
    target = {"agent_id": agent_id, "kind": "prompt_injection", "subsystem": f"sub-{agent_id}"}
    handle = await incidents.open("security_incident", target=target, severity=Severity.P0)
    await until_asked(handle, "remediate")
    fault(sandbox, "/postmortems")
    await handle.signal("reject", ApprovalAnswer(approver="bob", action="remediate", comment="look first"))

    result = await handle.result()

    assert result.final_state == "contained"
    assert get(sandbox, "/postmortems", incident_id=handle.id) == []
    assert get(sandbox, f"/agents/{agent_id}")["state"] == "paused"
    assert steps(stanch, handle.id)[-3:] == ["post-mortem", "post-mortem-failed", "closed"]
    message = page(sandbox, handle.id, "post-mortem-failed")
    assert_loud(
        message,
        what=[f"publishing the post-mortem of the security incident on agent {agent_id}"],
        state_left=[f"agent {agent_id} stays paused with its tokens revoked", "Publish it by hand"],
    )


async def test_war_room_pages_each_refused_mitigation_and_the_unstored_post_mortem(
    stanch: Running, incidents: Incidents
) -> None:
    sandbox = stanch.settings.platform_url
    service = new_service(sandbox, ["2.0.0", "2.1.0"])
    flag = f"flag-{service}"
    put(sandbox, f"/flags/{flag}", {"enabled": True}, key=flag)
    fault(sandbox, f"/deploys/services/{service}/rollback")
    fault(sandbox, f"/flags/{flag}")
    target = {"service": service, "feature": flag}
    handle = await incidents.open("war_room", target=target, severity=Severity.P2, service=service)

    # The approved rollback is refused: paged, and the room moves on to the flag, refused too, then hotfix.
    await approve(handle, "rollback")
    await approve(handle, "disable-flag")
    await until_asked(handle, "hotfix")
    await handle.signal("reject", ApprovalAnswer(approver="bob", action="hotfix", comment="by hand"))
    await until_state(handle, "uncontained")
    await handle.signal("resolve", Resolution(by="carol", note="fixed by hand"))

    result = await handle.result()

    assert result.final_state == "resolved"
    assert [d["status"] for d in get(sandbox, "/deploys") if d["service"] == service] == ["live", "live"]
    assert {f["name"]: f["enabled"] for f in get(sandbox, "/flags")}[flag] is True
    keys = steps(stanch, handle.id)
    for failed in ["contain-rollback", "contain-flag"]:
        assert keys[keys.index(failed) + 1] == f"{failed}-failed"
    assert_loud(
        page(sandbox, handle.id, "contain-rollback-failed"),
        what=[f"rolling {service} back from 2.1.0 (approved by alice)"],
        state_left=[f"{service} still runs 2.1.0, uncontained", "next mitigation"],
    )
    assert_loud(
        page(sandbox, handle.id, "contain-flag-failed"),
        what=[f"switching feature flag '{flag}' off on {service} (approved by alice)"],
        state_left=[f"'{flag}' is still on"],
    )
    # The post-mortem is stored by the room's post-mortem workflow now: its failure pages from there.
    postmortem = stanch.client.get_workflow_handle(f"postmortem-{handle.id}", result_type=PostmortemResult)
    await until_state(postmortem, "awaiting_learning")
    fault(sandbox, "/postmortems")
    await stanch.env.sleep(timedelta(hours=49))  # no learning: the report is written at 48 h
    assert (await postmortem.result()).final_state == "closed_without_learning"
    pm_keys = steps(stanch, postmortem.id)
    assert pm_keys[pm_keys.index("report") + 1] == "report-failed"
    assert_loud(
        page(sandbox, postmortem.id, "report-failed"),
        what=[f"storing the post-incident report of {handle.id}"],
        state_left=["the report is not stored", "Preventive stories are still filed"],
    )
    assert get(sandbox, "/backlog/stories", incident_id=handle.id)


async def test_p3_whose_sprint_story_cannot_be_filed_pages_oncall_instead_of_claiming_it_is_queued(
    stanch: Running, incidents: Incidents
) -> None:
    sandbox = stanch.settings.platform_url
    service = new_service(sandbox)
    fault(sandbox, "/backlog/stories")
    handle = await incidents.open(
        "war_room", target={"service": service}, severity=Severity.P3, service=service
    )

    result = await handle.result()

    assert result.final_state == "action_failed"
    assert get(sandbox, "/backlog/stories", incident_id=handle.id) == []
    assert steps(stanch, handle.id) == ["sprint-story", "sprint-story-failed", "closed"]
    assert_loud(
        page(sandbox, handle.id, "sprint-story-failed"),
        what=[f"filing the next-sprint story for the P3 on {service}"],
        state_left=["nothing is in the backlog and dev was not told"],
    )


# ---- daily cockpit report ----------------------------------------------------------------------------------


async def test_daily_report_whose_usage_cannot_be_read_pages_oncall_and_fails(stanch: Running) -> None:
    sandbox = stanch.settings.platform_url
    agent_id = f"agent-loud-{uuid.uuid4().hex[:8]}"
    put(sandbox, f"/agents/{agent_id}", {"versions": ["v1"]})
    fault(sandbox, f"/agents/{agent_id}/usage")
    workflow_id = f"daily-cockpit-report-test-loud-{uuid.uuid4().hex[:8]}"

    with pytest.raises(WorkflowFailureError):
        await stanch.client.execute_workflow(
            "daily_cockpit_report",
            ReportRequest(incident_prefix="incident-none-", agent_ids=[agent_id]),
            id=workflow_id,
            task_queue=stanch.task_queue,
        )

    assert status_of(sandbox, f"/reports/{workflow_id}") == 404
    rows = audit_rows(stanch.settings, workflow_id)
    assert [(r["step_key"], r["outcome"]) for r in rows] == [("collect-failed", "done")]
    message = page(sandbox, workflow_id, "collect-failed")
    assert message["severity"] == "P1"
    assert_loud(
        message,
        what=["reading the fleet's usage"],
        state_left=["no cockpit report", "was written or published", "this run fails"],
    )
