"""The daily cockpit report: the workflow on the time-skipping server (real sandbox, real audit log), and its
Temporal Schedule on a real dev server (Schedules need one)."""

from __future__ import annotations

import asyncio
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from psycopg_pool import AsyncConnectionPool
from temporalio.client import ScheduleActionStartWorkflow
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from activities.audit import AuditActivities
from schemas.agents import AgentUsage
from schemas.audit import AuditEvent
from schemas.report import AnomalyThresholds, AuditSummary, CockpitReport, Level, ReportRequest
from stanch.schedules import DAILY_REPORT_SCHEDULE, apply_schedules
from stanch.settings import Settings
from tests.helpers import SERVER_STARTUP, Running, audit_rows, chat_messages, fault, http_client, new_agent
from workers.worker import activity_implementations, build_worker
from workflows.daily_cockpit_report import find_anomalies

WINDOW_END = datetime(2026, 11, 20, 7, 0, tzinfo=UTC)


def meter(sandbox_url: str, **usage: int) -> str:
    agent_id = new_agent(sandbox_url)
    http_client.put(f"{sandbox_url}/agents/{agent_id}/usage", json=usage).raise_for_status()
    return agent_id


async def write_rows(settings: Settings, rows: list[tuple[str, str, str]], at: datetime) -> None:
    """(workflow id, step, outcome) rows in the audit log, written by the real writer."""
    async with AsyncConnectionPool(settings.database_url, min_size=1, max_size=2) as pool:
        writer = AuditActivities(pool)
        for workflow_id, step, outcome in rows:
            await writer.write_audit(
                AuditEvent(
                    workflow_id=workflow_id,
                    run_id="run-1",
                    step_key=step,
                    actor="stanch",
                    action=step,
                    outcome=outcome,
                    occurred_at=at,
                )
            )


async def run_report(stanch: Running, request: ReportRequest) -> tuple[str, CockpitReport]:
    workflow_id = f"daily-cockpit-report-test-{uuid.uuid4().hex[:8]}"
    report = await stanch.client.execute_workflow(
        "daily_cockpit_report",
        request,
        id=workflow_id,
        task_queue=stanch.task_queue,
        result_type=CockpitReport,
    )
    return workflow_id, report


def shelf(sandbox_url: str, report_id: str) -> dict[str, Any]:
    response = http_client.get(f"{sandbox_url}/reports/{report_id}")
    return dict(response.json()) if response.status_code == 200 else {"status": response.status_code}


async def test_busy_day_flags_anomalies_publishes_and_notifies(stanch: Running) -> None:
    sandbox = stanch.settings.platform_url
    spiking = meter(sandbox, tokens=350_000, tokens_daily_avg=100_000, tasks_done=50, tasks_failed=1)
    failing = meter(sandbox, tokens=20_000, tokens_daily_avg=19_000, tasks_done=14, tasks_failed=6)
    calm = meter(sandbox, tokens=5_000, tokens_daily_avg=4_000, tasks_done=30, tasks_failed=0)
    prefix = f"incident-rpt-{uuid.uuid4().hex[:8]}-"
    inside = WINDOW_END - timedelta(hours=3)
    await write_rows(
        stanch.settings,
        [
            (f"{prefix}a", "pause", "done"),
            (f"{prefix}a", "gate1-escalate-1", "done"),
            (f"{prefix}a", "closed", "contained"),
            (f"{prefix}b", "kill-switch", "done"),
            (f"{prefix}b", "remediate", "failed"),
            (f"{prefix}b-handoff-1", "handoff-document", "done"),
        ],
        inside,
    )
    # A day earlier: outside the window, must not count.
    await write_rows(
        stanch.settings, [(f"{prefix}old", "kill-switch", "done")], WINDOW_END - timedelta(days=2)
    )

    workflow_id, report = await run_report(
        stanch,
        ReportRequest(window_end=WINDOW_END, incident_prefix=prefix, agent_ids=[spiking, failing, calm]),
    )

    assert report.audit == AuditSummary(
        incidents=2, closed=1, escalations=1, handoffs=1, security_incidents=1, failed_actions=1
    )
    kinds = {(a.kind, a.subject, a.level) for a in report.anomalies}
    assert kinds == {
        ("cost", spiking, Level.urgent),
        ("errors", failing, Level.watch),
        ("security", "fleet", Level.urgent),
        ("failed_actions", "runbooks", Level.watch),
    }
    assert report.urgent and report.published and report.notified
    assert report.highlight.startswith(spiking)
    published = shelf(sandbox, workflow_id)
    assert published["urgent"] and published["title"] == "Cockpit report 2026-11-20"
    assert (
        f"| {spiking} | 350,000 |" in published["markdown"]
        and "3.5x its daily average" in published["markdown"]
    )
    [message] = chat_messages(sandbox, workflow_id)
    assert message["severity"] == "P1" and spiking in message["text"]
    rows = audit_rows(stanch.settings, workflow_id)
    assert [(r["step_key"], r["outcome"]) for r in rows] == [("publish", "done"), ("notify", "done")]


async def test_calm_day_is_published_without_a_notification(stanch: Running) -> None:
    sandbox = stanch.settings.platform_url
    calm = meter(sandbox, tokens=12_000, tokens_daily_avg=11_000, tasks_done=40, tasks_failed=1)
    prefix = f"incident-rpt-{uuid.uuid4().hex[:8]}-"

    workflow_id, report = await run_report(
        stanch, ReportRequest(window_end=WINDOW_END, incident_prefix=prefix, agent_ids=[calm])
    )

    assert report.anomalies == [] and not report.urgent and not report.notified
    assert report.highlight == f"nothing abnormal; {calm} uses the most tokens (12,000)"
    assert shelf(sandbox, workflow_id)["urgent"] is False
    assert chat_messages(sandbox, workflow_id) == []
    assert [r["step_key"] for r in audit_rows(stanch.settings, workflow_id)] == ["publish"]


async def test_unpublishable_report_is_audited_and_sent_to_the_owner(stanch: Running) -> None:
    sandbox = stanch.settings.platform_url
    calm = meter(sandbox, tokens=1_000, tokens_daily_avg=1_000, tasks_done=3, tasks_failed=0)
    fault(sandbox, "/reports", 422)

    workflow_id, report = await run_report(
        stanch, ReportRequest(window_end=WINDOW_END, incident_prefix="incident-none-", agent_ids=[calm])
    )

    assert not report.published and report.notified
    assert shelf(sandbox, workflow_id) == {"status": 404}
    [message] = chat_messages(sandbox, workflow_id)
    assert "could not be published" in message["text"]
    rows = audit_rows(stanch.settings, workflow_id)
    assert [(r["step_key"], r["outcome"]) for r in rows] == [("publish", "failed"), ("notify", "done")]


def test_thresholds_are_strict_and_ignore_small_numbers() -> None:
    limits = AnomalyThresholds()
    quiet = AuditSummary()
    at_limit = AgentUsage(agent_id="a", tokens=20_000, tokens_daily_avg=10_000, tasks_done=8, tasks_failed=2)
    assert find_anomalies([at_limit], quiet, limits) == []  # exactly 2x and exactly 20 %: not yet
    tiny = AgentUsage(agent_id="b", tokens=9_000, tokens_daily_avg=1_000, tasks_done=1, tasks_failed=3)
    assert find_anomalies([tiny], quiet, limits) == []  # under 10,000 tokens and 5 tasks: noise
    over = AgentUsage(agent_id="c", tokens=30_001, tokens_daily_avg=10_000, tasks_done=4, tasks_failed=6)
    found = {
        (a.kind, a.level) for a in find_anomalies([over], AuditSummary(escalations=2, handoffs=2), limits)
    }
    assert found == {("cost", Level.urgent), ("errors", Level.urgent), ("escalations", Level.watch)}


@pytest.fixture
async def dev_env() -> Any:
    env = await WorkflowEnvironment.start_local(
        dev_server_startup_timeout=SERVER_STARTUP,
        dev_server_existing_path=str(Path(sys.executable).parent / "temporal"),
        data_converter=pydantic_data_converter,
    )
    yield env
    await env.shutdown()


async def test_schedule_apply_is_idempotent_and_runs_the_report(
    dev_env: WorkflowEnvironment, settings: Settings
) -> None:
    client = dev_env.client
    task_queue = f"sched-{uuid.uuid4().hex[:8]}"

    assert await apply_schedules(client, task_queue, hour=6) == {DAILY_REPORT_SCHEDULE: "created"}
    handle = client.get_schedule_handle(DAILY_REPORT_SCHEDULE)
    await handle.pause(note="operator paused it")
    assert await apply_schedules(client, task_queue, hour=7, minute=30) == {DAILY_REPORT_SCHEDULE: "updated"}

    ids = [listed.id async for listed in await client.list_schedules()]
    assert ids == [DAILY_REPORT_SCHEDULE]
    description = await handle.describe()
    [calendar] = description.schedule.spec.calendars
    assert (calendar.hour[0].start, calendar.minute[0].start) == (7, 30)
    assert description.schedule.state.paused  # an apply does not undo an operator's pause
    action = description.schedule.action
    assert isinstance(action, ScheduleActionStartWorkflow) and action.workflow == "daily_cockpit_report"

    # Triggered now, the scheduled action runs the real report against the real sandbox and audit log.
    worker_settings = settings.model_copy(update={"task_queue": task_queue})
    async with activity_implementations(worker_settings, client) as activities:
        async with build_worker(client, task_queue, activities):
            await handle.trigger()
            report_id = await _completed_report(dev_env)
    assert shelf(settings.platform_url, report_id)["report_id"] == report_id
    assert report_id.startswith("daily-cockpit-report-")


async def _completed_report(env: WorkflowEnvironment) -> str:
    for _ in range(150):
        async for execution in env.client.list_workflows("WorkflowType = 'daily_cockpit_report'"):
            if execution.status is not None and execution.status.name == "COMPLETED":
                return execution.id
        await asyncio.sleep(0.1)
    raise AssertionError("the scheduled report never completed")
