"""The dead man's switch runbook on the time-skipping server: silence pages once, the return is told,
and the history stays bounded (continue-as-new carries a silence over)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle

from schemas.alerts import Alert, AlertStatus
from schemas.approvals import Resolution
from schemas.incidents import IncidentResult
from schemas.severity import Severity
from schemas.watchdog import DeadMansSwitchInput
from stanch.policy import Policy
from tests.helpers import Incidents, Running, audit_rows, chat_messages, until_state
from workers.intake.routing import route_alert


def watchdog(fingerprint: str, status: AlertStatus = AlertStatus.firing) -> Alert:
    return Alert(
        source="alertmanager",
        name="Watchdog",
        fingerprint=fingerprint,
        status=status,
        labels={"alertname": "Watchdog", "severity": "none"},
        annotations={"summary": "Prometheus and Alertmanager are working"},
    )


async def open_switch(
    incidents: Incidents, policy: Policy, **changes: Any
) -> WorkflowHandle[Any, IncidentResult]:
    alert = watchdog(uuid.uuid4().hex[:16])
    # Routed by the shipped policy, as the intake routes it; the factory opens that very incident.
    routed = route_alert(policy, alert, "alerts.0")
    assert routed.route is not None and routed.route.runbook == "dead_mans_switch"
    assert routed.incident is not None
    handle = await incidents.open(
        routed.incident.runbook,
        target=routed.incident.target,
        alertname=alert.name,
        labels={k: v for k, v in alert.labels.items() if k != "alertname"},
        annotations=alert.annotations,
        severity=routed.incident.severity,
        service=routed.incident.service,
        workflow_id=routed.incident.incident_id,
        fingerprint=alert.fingerprint,
        input_type=DeadMansSwitchInput,
        **changes,
    )
    assert incidents.opened[handle.id] == DeadMansSwitchInput(**routed.incident.model_dump(), **changes)
    return handle


def pages(stanch: Running, handle: WorkflowHandle[Any, Any], word: str) -> list[dict[str, Any]]:
    return [m for m in chat_messages(stanch.settings.platform_url, handle.id) if word in m["title"]]


async def test_a_silent_watchdog_pages_on_call_once_and_its_return_is_told(
    stanch: Running, incidents: Incidents, policy: Policy
) -> None:
    handle = await open_switch(incidents, policy)
    await until_state(handle, "watching")

    # Watchdogs every 5 minutes: the 10-minute window never runs out.
    alert = watchdog("same")
    for _ in range(4):
        await stanch.env.sleep(timedelta(minutes=5))
        await handle.signal("alert", alert)
    await until_state(handle, "watching")
    assert pages(stanch, handle, "down") == []

    # A resolved Watchdog is no sign of life: 10 minutes after the last firing one, on-call is paged.
    await handle.signal("alert", watchdog("same", AlertStatus.resolved))
    await stanch.env.sleep(timedelta(minutes=10, seconds=5))
    await until_state(handle, "silent")
    [page] = pages(stanch, handle, "down")
    assert "No Watchdog from Alertmanager for 10 min: the monitoring pipeline is down" in page["text"]
    assert page["severity"] == "P1" and page["channel"] == "on-call"

    # Once per silence, however long it lasts.
    await stanch.env.sleep(timedelta(hours=2))
    assert len(pages(stanch, handle, "down")) == 1

    await handle.signal("alert", alert)
    await until_state(handle, "watching")
    [back] = pages(stanch, handle, "back")
    assert "arrives again after 130 min of silence" in back["text"]

    # A second silence pages again.
    await stanch.env.sleep(timedelta(minutes=11))
    await until_state(handle, "silent")
    assert len(pages(stanch, handle, "down")) == 2

    await handle.signal("resolve", Resolution(by="alice", note="Alertmanager retired"))
    result = await handle.result()
    assert result.final_state == "resolved" and result.resolved_by == "alice"
    steps = [row["step_key"] for row in audit_rows(stanch.settings, handle.id)]
    assert steps == ["silence-1", "back-1", "silence-2", "closed"]


async def test_the_watch_continues_as_new_after_its_alert_bound_and_keeps_watching(
    stanch: Running, incidents: Incidents, policy: Policy
) -> None:
    handle = await open_switch(incidents, policy, alerts_per_run=3, silence_minutes=5)
    first_run = (await handle.describe()).run_id
    await stanch.env.sleep(timedelta(minutes=6))
    await until_state(handle, "silent")
    assert len(pages(stanch, handle, "down")) == 1

    # The second firing Watchdog of the run ends the silence, the third reaches the run's bound.
    alert = watchdog("same")
    await handle.signal("alert", alert)
    await until_state(handle, "watching")
    await handle.signal("alert", alert)
    latest = stanch.client.get_workflow_handle(handle.id)
    for _ in range(100):
        if (await latest.describe()).run_id != first_run:
            break
        await stanch.env.sleep(timedelta(seconds=1))
    description = await latest.describe()
    assert description.run_id != first_run
    history = await stanch.client.get_workflow_handle(handle.id, run_id=first_run).fetch_history()
    assert history.events[-1].event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW
    new_run = stanch.client.get_workflow_handle(
        handle.id, run_id=description.run_id, result_type=IncidentResult
    )
    await until_state(new_run, "watching")
    assert len(pages(stanch, handle, "back")) == 1  # told in the first run, not again in the new one

    # The new run watches with the same window and pages again, numbering the silence on.
    await stanch.env.sleep(timedelta(minutes=6))
    await until_state(new_run, "silent")
    assert len(pages(stanch, handle, "down")) == 2
    await new_run.signal("resolve", Resolution(by="bob", note="done"))
    assert (await new_run.result()).final_state == "resolved"


def test_the_shipped_route_gives_the_switch_a_p1_incident(policy: Policy) -> None:
    routed = route_alert(policy, watchdog("abc"), "alerts.0")
    assert routed.incident is not None and routed.incident.severity is Severity.P1
    assert routed.incident.runbook == "dead_mans_switch"
