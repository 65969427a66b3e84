"""Helpers for end-to-end tests against the `stack` fixture (the real dev stack, one process per part)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import httpx
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import ActivityTaskStartedEventAttributes, HistoryEvent
from temporalio.api.workflow.v1 import PendingActivityInfo
from temporalio.api.workflowservice.v1 import DescribeWorkflowExecutionResponse
from temporalio.client import WorkflowExecutionStatus, WorkflowHistory

from schemas.briefs import Brief
from schemas.incidents import IncidentResult
from stanch.audit_store import read_rows
from stanch.history_timeline import AUDIT_ACTIVITIES
from stanch.ops.devstack import child_environment
from stanch.ops.history_audit import cross_check
from stanch.ops.samples import sample
from stanch.policy import Policy
from stanch.settings import REPO_ROOT, Settings
from stanch.temporal_client import connect
from tests.helpers import Incidents, http_client
from tests.helpers import applied as sandbox_applied


def eventually(check: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    """Poll an observable until it holds (bounded): processes work at their own pace."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def post_alert(settings: Settings, body: dict[str, Any]) -> httpx.Response:
    return http_client.post(
        f"http://127.0.0.1:{settings.intake_port}/alerts/alertmanager", json=body, timeout=10
    )


def agent(settings: Settings, agent_id: str) -> dict[str, Any]:
    return http_client.get(f"{settings.platform_url}/agents/{agent_id}").json()


def applied(settings: Settings, path: str, method: str = "POST") -> int:
    return sandbox_applied(settings.platform_url, path, method)


def brief_state(settings: Settings, workflow_id: str) -> str:
    async def query() -> str:
        client = await connect(settings)
        return (await client.get_workflow_handle(workflow_id).query("brief", result_type=Brief)).state

    return asyncio.run(query())


def result_of(settings: Settings, workflow_id: str) -> IncidentResult:
    async def wait() -> IncidentResult:
        client = await connect(settings)
        return await client.get_workflow_handle(workflow_id, result_type=IncidentResult).result()

    return asyncio.run(asyncio.wait_for(wait(), timeout=60))


def temporal_signal(
    settings: Settings, workflow_id: str, name: str, payload: dict[str, Any], *, identity: str | None = None
) -> None:
    """Send a signal the way an operator does without Stanch's CLI: `temporal workflow signal` with JSON
    input; the recorded identity defaults to the person the payload names."""
    identity = identity or f"{payload.get('approver') or payload.get('by')}@laptop"
    subprocess.run(
        [
            str(Path(sys.executable).parent / "temporal"),
            "workflow",
            "signal",
            "--address",
            settings.temporal_address,
            "--namespace",
            settings.namespace,
            "--workflow-id",
            workflow_id,
            "--name",
            name,
            "--identity",
            identity,
            "--input",
            json.dumps(payload),
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )


def open_emergency_stop(settings: Settings, policy: Policy, agent_id: str, incidents: list[str]) -> str:
    """The agent's emergency-stop incident, started on the test's task queue."""
    workflow_id = f"incident-{settings.task_queue}-{agent_id}"

    async def start() -> None:
        client = await connect(settings)
        await Incidents(client, settings.task_queue, policy).open(
            "agent_emergency_stop",
            alertname="AgentHallucination",
            fingerprint=agent_id,
            labels={"agent": agent_id},
            annotations={"summary": f"{agent_id} is making things up"},
            service="support",
            workflow_id=f"incident-{settings.task_queue}-{{fingerprint}}",
            target={"agent_id": agent_id},
        )

    asyncio.run(start())
    incidents.append(workflow_id)
    return workflow_id


def history(settings: Settings, workflow_id: str, run_id: str | None = None) -> list[HistoryEvent]:
    """The workflow's history events, as the server holds them now."""

    async def fetch() -> list[HistoryEvent]:
        client = await connect(settings)
        return list((await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()).events)

    return asyncio.run(asyncio.wait_for(fetch(), timeout=30))


def attempts_that_ended(
    settings: Settings, workflow_id: str, *activities: str
) -> list[ActivityTaskStartedEventAttributes]:
    """The ActivityTaskStarted of each activity of these names the workflow ran: the history keeps one per
    activity, for the attempt that ended it, with its attempt number, the identity of its worker and the
    failure before."""
    events = history(settings, workflow_id)
    scheduled = {
        event.event_id
        for event in events
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        and event.activity_task_scheduled_event_attributes.activity_type.name in activities
    }
    return [
        event.activity_task_started_event_attributes
        for event in events
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
        and event.activity_task_started_event_attributes.scheduled_event_id in scheduled
    ]


def history_audit_problems(settings: Settings, workflow_id: str) -> list[str]:
    """What `stanch audit verify --history` would report for the workflow: an effect without its audit row,
    a write without its row, a row without its write; empty when history and audit log agree."""

    async def fetch() -> WorkflowHistory:
        client = await connect(settings)
        return await client.get_workflow_handle(workflow_id).fetch_history()

    recorded = asyncio.run(asyncio.wait_for(fetch(), timeout=30))
    return cross_check(recorded, read_rows(settings.database_url, workflow_id)).problems


def description(settings: Settings, workflow_id: str) -> DescribeWorkflowExecutionResponse:
    """What the server says about the execution now: status, run id, pending activities with attempts."""

    async def describe() -> DescribeWorkflowExecutionResponse:
        client = await connect(settings)
        return (await client.get_workflow_handle(workflow_id).describe()).raw_description

    return asyncio.run(asyncio.wait_for(describe(), timeout=30))


def retried_audit_writes(settings: Settings, workflow_id: str) -> list[PendingActivityInfo]:
    """The audit writes of the workflow that are pending and past their first attempt (Postgres away)."""
    return [
        pending
        for pending in description(settings, workflow_id).pending_activities
        if pending.activity_type.name in AUDIT_ACTIVITIES and pending.attempt > 1
    ]


def audit_settled(settings: Settings, workflow_id: str, timeout: float = 30.0) -> None:
    """Wait (bounded) until no audit row of the running incident is still queued or being written.

    Audit writes no longer hold up the steps after them, so the brief can show a state before the rows of
    the steps that led there have landed. Queued rows wait only behind a write in flight, and a write that
    completes is followed by a workflow task that starts the next: none pending of either means none left.
    """

    def quiet() -> bool:
        described = description(settings, workflow_id)
        writing = [p for p in described.pending_activities if p.activity_type.name in AUDIT_ACTIVITIES]
        return not writing and not described.HasField("pending_workflow_task")

    eventually(quiet, f"the audit rows of {workflow_id} to land", timeout=timeout)


def stanch_cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    """The `stanch` CLI as an operator runs it, with the stack's settings in its environment and no signing
    key of its own: the stack's home for HOME (no ~/.ssh/id_ed25519, whatever the machine's), no
    STANCH_SIGNING_KEY, no terminal. Its decisions go out unsigned unless a test passes --key."""
    env = child_environment(settings) | {"HOME": str(settings.home)}
    for name in ("STANCH_SIGNING_KEY", "STANCH_SIGNING_PASSPHRASE"):
        env.pop(name, None)
    return subprocess.run(
        [str(Path(sys.executable).parent / "stanch"), *args],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )


def hand_over(settings: Settings, triage_id: str, agent_id: str, by: str) -> subprocess.CompletedProcess[str]:
    """`stanch triage` as on-call runs it: hand a triage incident to agent_emergency_stop for `agent_id`."""
    return stanch_cli(
        settings,
        "triage",
        triage_id,
        "--runbook",
        "agent_emergency_stop",
        "--target",
        f"agent_id={agent_id}",
        "--by",
        by,
    )


def terminate_running(settings: Settings, workflow_ids: Iterable[str]) -> None:
    """Cleanup after a test that may have failed half-way: end whatever of its incidents still runs."""

    async def terminate() -> None:
        client = await connect(settings)
        for workflow_id in workflow_ids:
            handle = client.get_workflow_handle(workflow_id)
            if (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
                await handle.terminate(reason="test cleanup")

    asyncio.run(asyncio.wait_for(terminate(), timeout=30))


def applied_keys(settings: Settings, workflow_id: str) -> list[str]:
    """The idempotency keys of the workflow's effects the platform applied (replays and failures not
    counted), in the order it applied them: a key listed twice is an effect that happened twice."""
    calls = http_client.get(f"{settings.platform_url}/calls", timeout=10).json()
    return [
        call["idempotency_key"]
        for call in calls
        if (call["idempotency_key"] or "").startswith(f"{workflow_id}/")
        and not call["replayed"]
        and 200 <= call["status_code"] < 300
    ]


def awaiting(settings: Settings, workflow_id: str) -> str:
    async def query() -> str:
        client = await connect(settings)
        brief = await client.get_workflow_handle(workflow_id).query("brief", result_type=Brief)
        return brief.awaiting or ""

    return asyncio.run(query())


def fire(settings: Settings, scenario: str, agent_id: str) -> str:
    response = post_alert(settings, sample(scenario, agent=agent_id))
    assert response.status_code == 202, response.text
    [incident] = response.json()["incidents"]
    assert incident["action"] == "started"
    return str(incident["workflow_id"])


def calls(settings: Settings, path: str, method: str = "POST") -> list[dict[str, Any]]:
    """Every request the sandbox received on exactly `path`, in arrival order, refused and faulted ones too."""
    logged = http_client.get(f"{settings.platform_url}/calls", params={"path_prefix": path}).json()
    return [call for call in logged if call["path"] == path and call["method"] == method]


def activity_run(events: list[HistoryEvent], scheduled: HistoryEvent) -> tuple[HistoryEvent, HistoryEvent]:
    """The started and the closing event of one scheduled activity (the started event carries the attempt
    count and the previous attempt's failure: retries leave no event of their own)."""
    mine = [
        event
        for event in events
        if event.event_id > scheduled.event_id
        and any(
            event.HasField(attrs) and getattr(event, attrs).scheduled_event_id == scheduled.event_id
            for attrs in (
                "activity_task_started_event_attributes",
                "activity_task_completed_event_attributes",
                "activity_task_failed_event_attributes",
            )
        )
    ]
    started = next(e for e in mine if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED)
    closed = next(e for e in mine if e.event_type != EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED)
    return started, closed


def scheduled(events: list[HistoryEvent], activity_type: str, **input_fields: str) -> HistoryEvent:
    """The one scheduled activity of this type whose (JSON) input has these field values."""
    found = []
    for event in events:
        attrs = event.activity_task_scheduled_event_attributes
        if event.event_type != EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            continue
        if attrs.activity_type.name != activity_type:
            continue
        given = json.loads(attrs.input.payloads[0].data)
        if all(given.get(key) == value for key, value in input_fields.items()):
            found.append(event)
    [event] = found
    return event


def policy_with_notify(path: Path, notify: str) -> Path:
    """The example policy (routes, roles, escalation, guardrails) with a `[notify]` section of the test's.

    The example's people keep their names (the roles need them) but lose their channels, which the test's
    section replaces: every page then falls back to the test's `[notify]` groups, which it is about.
    """
    example = (REPO_ROOT / "config" / "stanch.toml").read_text()
    people = "".join(f"\n[people.{name}]\n" for name in tomllib.loads(example).get("people", {}))
    path.write_text(example[: example.index("\n[notify]")] + "\n" + notify + people)
    return path
