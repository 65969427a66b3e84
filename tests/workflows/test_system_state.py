"""The brief's "Current system state" on the time-skipping server: each runbook shows what it read of the
systems it acts on (memory against the watermark, webhook flow and balance, the agent's state and version,
a zombie gateway's sessions, the deploy in place, a lost session's tasks), and a newer reading replaces
an older one. Every expected value comes from the sandbox state the test set up or read back, not from a
constant in the runbook."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.client import WorkflowHandle

from activities.guardrail import GuardrailActivities
from schemas.approvals import ApprovalAnswer
from schemas.briefs import Brief, Reading
from schemas.channel import AppealVerdict
from schemas.guardrail import ActionCheck, GuardrailLimits, GuardrailRequest, Risk
from schemas.report import CockpitReport, ReportRequest
from schemas.severity import Severity
from tests.helpers import (
    Incidents,
    Running,
    agent,
    deploys_of,
    http_client,
    new_agent,
    new_service,
    until_state,
)


def readings(brief: Brief) -> dict[str, Reading]:
    return {reading.name: reading for reading in brief.system_state}


def new_gateway(sandbox: str, **spec: Any) -> str:
    name = f"gw-{uuid.uuid4().hex[:8]}"
    http_client.put(f"{sandbox}/runtimes/{name}", json=spec).raise_for_status()
    return name


def runtime(sandbox: str, name: str) -> dict[str, Any]:
    return dict(http_client.get(f"{sandbox}/runtimes/{name}").json())


def new_channel(sandbox: str, **spec: Any) -> str:
    name = f"wa-{uuid.uuid4().hex[:8]}"
    http_client.put(f"{sandbox}/chat/channels/{name}", json=spec).raise_for_status()
    return name


def channel_state(sandbox: str, name: str) -> dict[str, Any]:
    return dict(http_client.get(f"{sandbox}/chat/channels/{name}").json())


def metered_agent(sandbox: str, **usage: int) -> str:
    agent_id = new_agent(sandbox)
    http_client.put(f"{sandbox}/agents/{agent_id}/usage", json=usage).raise_for_status()
    return agent_id


async def open_gateway(
    incidents: Incidents, runbook: str, gateway: str, alertname: str, **target: str
) -> WorkflowHandle[Any, Any]:
    return await incidents.open(
        runbook,
        alertname=alertname,
        labels={"gateway": gateway},
        annotations={"summary": f"{alertname} on {gateway}"},
        service="gateway",
        # The gateway is its own guardrail subsystem: limits never leak between tests.
        target={"gateway": gateway, "subsystem": gateway, **target},
    )


async def spend_restarts(stanch: Running, subsystem: str, count: int) -> None:
    """Restarts earlier incidents took on this subsystem this hour, so the next one needs a human."""
    asker = GuardrailActivities(stanch.client, stanch.task_queue)
    for n in range(count):
        check = ActionCheck(
            requested_by="earlier-incident",
            idempotency_key=f"earlier-{subsystem}-{n}",
            action="safe restart",
            kind="restart",
            risk=Risk.high,
            reason="memory high earlier",
        )
        assert (
            await asker.ask(GuardrailRequest(subsystem=subsystem, check=check, limits=GuardrailLimits()))
        ).allowed


async def test_gateway_restart_brief_shows_memory_against_the_watermark_then_after_the_restart(
    stanch: Running, incidents: Incidents
) -> None:
    sandbox = stanch.settings.platform_url
    gateway = new_gateway(sandbox, memory_mb=1400.0, high_watermark_mb=1536.0)
    await spend_restarts(stanch, gateway, 3)
    handle = await open_gateway(incidents, "gateway_safe_restart", gateway, "GatewayMemoryHigh")

    # Held by the guardrail: the human deciding sees the memory reading the runbook took.
    brief = await until_state(handle, "awaiting_approval")
    memory = readings(brief)["memory"]
    assert memory.value == f"1400 MB ({1400 / 1536:.0%} of the watermark)"
    assert memory.limit == "high watermark 1536 MB; acts above 80%"
    assert memory.read_at is not None and memory.read_at >= brief.started_at
    assert readings(brief)["health"].value == "healthy"
    # The Temporal UI shows the same section (the current details the workflow set).
    metadata = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
    assert "**Current system state:**" in metadata.current_details
    assert "- memory: 1400 MB" in metadata.current_details

    await handle.signal("approve", ApprovalAnswer(approver="alice", action="safe-restart"))
    result = await handle.result()
    assert result.final_state in ("restarted", "restarted_low_gain")

    # The reading after the restart replaced the one before, in place, with what the sandbox now holds.
    after = runtime(sandbox, gateway)
    brief = await handle.query("brief", result_type=Brief)
    names = [reading.name for reading in brief.system_state]
    assert names.count("memory") == 1 and names[0] == "memory"
    assert readings(brief)["memory"].value.startswith(f"{after['memory_mb']:g} MB")
    assert readings(brief)["restarts"].value.startswith(f"{after['restarts']} ")
    assert readings(brief)["health"].value == "healthy"


async def test_channel_downtime_brief_shows_webhooks_balance_and_token_then_the_new_token(
    stanch: Running, incidents: Incidents
) -> None:
    sandbox = stanch.settings.platform_url
    channel = new_channel(
        sandbox, webhook_events_last_5m=37, runtime_5xx_last_5m=2, balance=12.5, token_expires_in_s=0
    )
    handle = await incidents.open(
        "channel_downtime",
        alertname="WhatsAppChannelDown",
        target={"channel": channel, "subsystem": f"runtime-{uuid.uuid4().hex[:8]}"},
        annotations={"summary": f"WhatsAppChannelDown on {channel}"},
        service="whatsapp",
    )

    brief = await until_state(handle, "awaiting_approval")
    state = readings(brief)
    assert state["webhook events"].value == "37 in 5 min"
    assert (state["runtime server errors"].value, state["runtime server errors"].limit) == (
        "2 in 5 min",
        "restart at 5",
    )
    assert state["balance"].value == "12.50 USD"
    assert state["access token"].value == "v1 expired"
    assert "provider" not in state  # webhooks arrive, so the provider's page was not asked

    await handle.signal("approve", ApprovalAnswer(approver="bob", action="rotate-token"))
    assert (await handle.result()).final_state == "restored"
    channel_now = channel_state(sandbox, channel)
    token = readings(await handle.query("brief", result_type=Brief))["access token"]
    assert (
        token.value
        == f"v{channel_now['token_version']}, expires in {channel_now['token_expires_in_s'] // 3600} h"
    )


async def test_emergency_stop_brief_shows_the_paused_agent_then_the_rolled_back_version(
    stanch: Running, incidents: Incidents
) -> None:
    sandbox = stanch.settings.platform_url
    agent_id = new_agent(sandbox, versions=["v4", "v5", "v6"])
    handle = await incidents.agent_emergency_stop(agent_id)

    brief = await until_state(handle, "awaiting_approval")
    paused = agent(sandbox, agent_id)
    assert readings(brief)[f"agent {agent_id}"].value == (
        f"{paused['state']} on {paused['version']} (previous {paused['previous_version']})"
    )
    assert paused["state"] == "paused" and paused["version"] == "v6"

    await handle.signal("approve", ApprovalAnswer(approver="alice", action="rollback"))
    assert (await handle.result()).final_state == "rolled_back"
    rolled = agent(sandbox, agent_id)
    value = readings(await handle.query("brief", result_type=Brief))[f"agent {agent_id}"].value
    assert value.startswith(f"{rolled['state']} on {rolled['version']}") and rolled["version"] == "v5"


async def test_zombie_gateway_brief_shows_sessions_memory_and_the_log_it_collected(
    stanch: Running, incidents: Incidents
) -> None:
    sandbox = stanch.settings.platform_url
    sessions = [{"session_id": f"s-{n}", "alive": n == 0} for n in range(3)]
    logs = ["heartbeat missed", "watchdog: no progress for 300 s", "gc pause 12 s"]
    gateway = new_gateway(
        sandbox, healthy=False, zombie=True, memory_mb=900.0, sessions=sessions, log_lines=logs
    )
    handle = await open_gateway(incidents, "zombie_gateway", gateway, "GatewayZombie")

    state = readings(await until_state(handle, "awaiting_approval"))
    assert state["sessions"].value == "1 of 3 alive"
    assert state["health"].value == "healthy=False, zombie=True"
    assert state["memory"].value == f"900 MB ({900 / 1536:.0%} of the watermark)"
    # The sandbox logs its own events too: what was collected is every line before it logged the collection.
    log = runtime(sandbox, gateway)["log_lines"]
    collected = next(n for n, line in enumerate(log) if "[logs_collected]" in line)
    assert log[:3] == logs and collected >= len(logs)
    assert state["service log"].value == f"{collected} lines collected"
    await handle.terminate("test over")


async def test_rollback_brief_shows_the_deploy_in_place_and_the_alerts_error_rate(
    stanch: Running, incidents: Incidents
) -> None:
    sandbox = stanch.settings.platform_url
    service = new_service(sandbox, versions=["1.0.0", "1.1.0", "1.2.0"])
    handle = await incidents.open(
        "rollback",
        alertname="RollbackRequested",
        annotations={"summary": f"roll back {service}", "error_rate": "23.5%"},
        severity=Severity.P1,
        service=service,
        target={"service": service, "kind": "code"},
    )

    state = readings(await until_state(handle, "awaiting_approval"))
    live = next(deploy for deploy in deploys_of(sandbox, service) if deploy["status"] == "live")
    assert live["version"] == "1.2.0"
    assert state[f"deploy of {service}"].value == f"1.2.0 live since {live['at']}"
    assert state[f"deploy of {service}"].limit == "an earlier live deploy to roll back to"
    assert state["error rate"].value == "23.5% (from the alert)"

    await handle.signal("approve", ApprovalAnswer(approver="alice", action="rollback-deploy"))
    assert (await handle.result()).final_state == "rolled_back"
    live_now = next(deploy for deploy in deploys_of(sandbox, service) if deploy["status"] == "live")
    deploy = readings(await handle.query("brief", result_type=Brief))[f"deploy of {service}"]
    assert (
        deploy.value == f"{live_now['version']} (rolled back from 1.2.0)" and live_now["version"] == "1.1.0"
    )


async def test_lost_session_brief_shows_the_tasks_in_review_and_the_failure_history(
    stanch: Running, incidents: Incidents
) -> None:
    sandbox = stanch.settings.platform_url
    tasks = [{"task_id": "t-1", "state": "running"}, {"task_id": "t-2", "state": "queued"}]
    gateway = new_gateway(
        sandbox, sessions=[{"session_id": "s-4", "alive": False, "past_failures": 1, "tasks": tasks}]
    )
    handle = await open_gateway(incidents, "lost_session", gateway, "GatewaySessionLost", session="s-4")
    assert (await handle.result()).final_state == "in_review"

    state = readings(await handle.query("brief", result_type=Brief))
    in_review = [
        t["task_id"] for t in runtime(sandbox, gateway)["sessions"]["s-4"]["tasks"] if t["state"] == "review"
    ]
    assert state["tasks of session s-4 in review"].value == f"{len(in_review)}: {', '.join(in_review)}"
    assert state["past failures of session s-4"].value == "1"
    setting = runtime(sandbox, gateway)["retry_settings"]["t-1"]
    assert state["retry policy"].value == (
        f"{setting['mode']}, {setting['max_attempts']} attempt(s), backoff {setting['backoff_s']} s"
    )


async def test_number_banned_brief_shows_the_numbers_quality_while_the_appeal_waits(
    stanch: Running, incidents: Incidents
) -> None:
    sandbox = stanch.settings.platform_url
    sends = {"template_sends_24h": 8000, "spam_reports_24h": 64, "blocks_24h": 210}
    channel = new_channel(
        sandbox, number="+5511944440000", number_status="banned", quality_rating="low", sends=sends
    )
    handle = await incidents.open(
        "number_banned",
        alertname="WhatsAppNumberBanned",
        target={"channel": channel},
        annotations={"summary": f"WhatsAppNumberBanned on {channel}"},
        service="whatsapp",
    )

    # Days before the analysis runs, the brief already shows the number's standing and the sends stopped.
    state = readings(await until_state(handle, "awaiting_verdict"))
    channel_now = channel_state(sandbox, channel)
    assert state["number quality"].value == f"{channel_now['quality_rating']} ({channel_now['number']})"
    assert state["spam reports (24 h)"].value == "64 for 8000 template sends, 210 blocks"
    assert state["spam reports (24 h)"].limit == "5 per thousand sends"
    assert channel_now["template_sends_enabled"] is False and state["template sends"].value == "stopped"
    [appeal] = channel_now["appeals"]
    assert state["appeal"].value == f"{appeal['appeal_id']} {appeal['status']}"

    # The analysis reads the sends again; its reading replaces the first, stamped later.
    await stanch.env.sleep(timedelta(hours=2))
    await handle.signal("verdict", AppealVerdict(by="alice", outcome="reinstated"))
    assert (await handle.result()).final_state == "reinstated"
    quality = readings(await handle.query("brief", result_type=Brief))["number quality"]
    assert quality.value == state["number quality"].value
    assert quality.read_at is not None and state["number quality"].read_at is not None
    assert quality.read_at > state["number quality"].read_at


async def test_daily_report_brief_shows_each_agents_tokens_and_failures_it_read(stanch: Running) -> None:
    sandbox = stanch.settings.platform_url
    agent_id = metered_agent(sandbox, tokens=42_000, tokens_daily_avg=20_000, tasks_done=18, tasks_failed=2)
    prefix = f"incident-rpt-{uuid.uuid4().hex[:8]}-"  # no audit rows under it: a quiet fleet
    workflow_id = f"daily-cockpit-report-test-{uuid.uuid4().hex[:8]}"
    report = await stanch.client.execute_workflow(
        "daily_cockpit_report",
        ReportRequest(incident_prefix=prefix, agent_ids=[agent_id]),
        id=workflow_id,
        task_queue=stanch.task_queue,
        result_type=CockpitReport,
    )

    brief = await stanch.client.get_workflow_handle(workflow_id).query("brief", result_type=Brief)
    state = readings(brief)
    [read] = report.agents
    assert state[f"agent {agent_id}"].value == (
        f"{read.tokens:,} tokens (2.1x its daily average); {read.tasks_failed} of "
        f"{read.tasks_done + read.tasks_failed} tasks failed (10%)"
    )
    assert state[f"agent {agent_id}"].limit == "2x the daily average; 20% failed"
    assert state["incidents"].value == "0 (0 closed, 0 open)"
    assert state["escalations and handoffs"].limit == "more than 3"
    assert brief.state == ("published" if report.published else "not_published")
