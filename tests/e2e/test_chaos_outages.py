"""Chaos on the real stack: the servers go away under running incidents.

The Temporal dev server stops and starts again on the same SQLite file while an incident waits for approval
on its 30-minute timer: the worker rides the outage out, the timer survives, and an approval sent after the
restart is honoured. Postgres stops while runbooks write audit rows: the platform effects still happen (a
runbook stanches first), the audit writes retry, and once Postgres is back every row is there exactly once
and the hash chains hold.

These tests stop parts of the stack, so they run on a DevStack of their own, never on the shared one.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from datetime import timedelta

import psycopg
import pytest
from temporalio.api.enums.v1 import EventType, WorkflowExecutionStatus
from temporalio.api.history.v1 import HistoryEvent

from stanch.history_timeline import AUDIT_ACTIVITIES
from stanch.ops.devstack import DevStack, settings_on_free_ports
from stanch.ops.devstack.supervisor import Child
from stanch.ops.devstack.temporal import split_address
from stanch.ops.samples import sample
from stanch.settings import Settings
from tests.helpers import audit_rows, chat_messages, http_client
from tests.stack import (
    agent,
    applied,
    applied_keys,
    attempts_that_ended,
    brief_state,
    description,
    eventually,
    history,
    history_audit_problems,
    post_alert,
    result_of,
    retried_audit_writes,
    stanch_cli,
    temporal_signal,
    terminate_running,
)

pytestmark = pytest.mark.e2e

OPENING = ["pause", "tell-customer", "tell-oncall", "gate1-requested"]
APPROVED = [*OPENING, "gate1-decision", "rollback", "closed"]
# config/stanch.toml: how long the approval request waits before the first escalation.
APPROVAL_TIMEOUT = timedelta(minutes=30)


@pytest.fixture(scope="module")
def own_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStack]:
    with DevStack(
        settings_on_free_ports(tmp_path_factory.mktemp("outages")), log=lambda line: None
    ) as running:
        yield running


@pytest.fixture
def incidents(own_stack: DevStack) -> Iterator[list[str]]:
    """The incidents a test opens; whatever of them still runs at the end is terminated."""
    opened: list[str] = []
    yield opened
    terminate_running(own_stack.settings, opened)


def part(stack: DevStack, name: str) -> Child:
    [child] = [child for child in stack.children if child.name == name]
    return child


def fire(settings: Settings, incidents: list[str]) -> tuple[str, str]:
    """A hallucinating agent of its own, alerted through the intake as Alertmanager would."""
    agent_id = f"agent-{uuid.uuid4().hex[:8]}"
    http_client.put(
        f"{settings.platform_url}/agents/{agent_id}", json={"versions": ["v1", "v2"]}
    ).raise_for_status()
    response = post_alert(settings, sample("agent-hallucination", agent=agent_id))
    assert response.status_code == 202, response.text
    [incident] = response.json()["incidents"]
    incidents.append(incident["workflow_id"])
    return agent_id, incident["workflow_id"]


def wait_paused(settings: Settings, agent_id: str) -> None:
    eventually(lambda: agent(settings, agent_id)["state"] == "paused", f"agent {agent_id} to be paused")


def wait_awaiting_approval(settings: Settings, workflow_id: str) -> None:
    eventually(
        lambda: brief_state(settings, workflow_id) == "awaiting_approval",
        f"the approval request of {workflow_id}",
    )


def wait_retried_audit_write(settings: Settings, workflow_id: str) -> None:
    eventually(lambda: retried_audit_writes(settings, workflow_id), f"a retried audit write in {workflow_id}")


def events(settings: Settings, workflow_id: str, kind: EventType.ValueType) -> list[HistoryEvent]:
    return [event for event in history(settings, workflow_id) if event.event_type == kind]


def assert_every_effect_once(settings: Settings, agent_id: str, workflow_id: str) -> None:
    assert applied(settings, f"/agents/{agent_id}/pause") == 1
    assert applied(settings, f"/agents/{agent_id}/rollback") == 1
    keys = applied_keys(settings, workflow_id)
    assert len(keys) == len(set(keys)), keys
    assert [row["step_key"] for row in audit_rows(settings, workflow_id)] == APPROVED


@pytest.mark.parametrize("crash", [False, True], ids=["stopped", "killed"])
def test_temporal_restarts_on_its_file_and_the_waiting_incident_honours_a_later_approval(
    own_stack: DevStack, incidents: list[str], crash: bool
) -> None:
    settings = own_stack.settings
    worker = part(own_stack, "worker")
    agent_id, workflow_id = fire(settings, incidents)
    wait_awaiting_approval(settings, workflow_id)
    assert agent(settings, agent_id)["state"] == "paused"
    run_id = description(settings, workflow_id).workflow_execution_info.execution.run_id
    [timer] = [
        event
        for event in events(settings, workflow_id, EventType.EVENT_TYPE_TIMER_STARTED)
        if event.timer_started_event_attributes.start_to_fire_timeout.ToTimedelta() == APPROVAL_TIMEOUT
    ]

    # Killed, the server leaves its SQLite file mid-WAL, as a crash would: what was committed must be there.
    with own_stack.outage("temporal", crash=crash):
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", split_address(settings.temporal_address)[1]), timeout=1)

    # The same worker process rode the outage out: nobody restarted it.
    assert worker.alive() and part(own_stack, "worker") is worker
    running = description(settings, workflow_id).workflow_execution_info
    assert running.execution.run_id == run_id
    assert running.status == WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_RUNNING
    assert timer in events(settings, workflow_id, EventType.EVENT_TYPE_TIMER_STARTED)
    assert not events(settings, workflow_id, EventType.EVENT_TYPE_TIMER_FIRED)

    approved = stanch_cli(settings, "approve", workflow_id, "rollback", "--as", "alice")
    assert approved.returncode == 0, approved.stderr
    assert result_of(settings, workflow_id).final_state == "rolled_back"
    assert agent(settings, agent_id)["version"] == "v1"
    assert_every_effect_once(settings, agent_id, workflow_id)
    # The decision, not the clock, ended the wait: the 30-minute timer was cancelled, never fired (the
    # response target's timer, cancelled by the same decision, is the other one).
    cancelled = events(settings, workflow_id, EventType.EVENT_TYPE_TIMER_CANCELED)
    assert timer.timer_started_event_attributes.timer_id in [
        event.timer_canceled_event_attributes.timer_id for event in cancelled
    ]
    assert len(cancelled) == 2
    verified = stanch_cli(settings, "audit", "verify", "--history", workflow_id)
    assert verified.returncode == 0, verified.stdout + verified.stderr

    # The intake reconnected too: a new alert opens a new incident, which stanches at once.
    second_agent, _ = fire(settings, incidents)
    wait_paused(settings, second_agent)


def test_postgres_outage_delays_audit_rows_but_loses_none_and_writes_none_twice(
    own_stack: DevStack, incidents: list[str]
) -> None:
    settings = own_stack.settings
    worker = part(own_stack, "worker")
    waiting_agent, waiting = fire(settings, incidents)
    wait_awaiting_approval(settings, waiting)

    with own_stack.outage("postgres"):
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(settings.database_url, connect_timeout=2).close()
        # An approval lands while its audit row cannot be written; two new alerts arrive.
        temporal_signal(settings, waiting, "approve", {"approver": "alice", "action": "rollback"})
        fired = [fire(settings, incidents) for _ in range(2)]
        for agent_id, _ in fired:
            wait_paused(settings, agent_id)
        for workflow_id in (waiting, *(workflow_id for _, workflow_id in fired)):
            wait_retried_audit_write(settings, workflow_id)

    assert result_of(settings, waiting).final_state == "rolled_back"
    for _, workflow_id in fired:
        wait_awaiting_approval(settings, workflow_id)
        temporal_signal(settings, workflow_id, "approve", {"approver": "bob", "action": "rollback"})
    for agent_id, workflow_id in [(waiting_agent, waiting), *fired]:
        assert result_of(settings, workflow_id).final_state == "rolled_back"
        assert_every_effect_once(settings, agent_id, workflow_id)
        # The history keeps the proof that rows came from retried writes, and agrees with the audit log.
        assert any(
            write.attempt > 1 for write in attempts_that_ended(settings, workflow_id, *AUDIT_ACTIVITIES)
        )
        assert history_audit_problems(settings, workflow_id) == []
    assert worker.alive() and part(own_stack, "worker") is worker
    verified = stanch_cli(settings, "audit", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr


def chat_channels(settings: Settings, workflow_id: str) -> list[str]:
    """The audiences of the incident's notifications that reached the sandbox's chat, in the order they came
    (each on-call person's copy of one counted once)."""
    return [m["channel"] for m in chat_messages(settings.platform_url, workflow_id)]


def test_postgres_down_before_the_alert_holds_back_no_page_and_every_row_lands_once_after(
    own_stack: DevStack, incidents: list[str]
) -> None:
    settings = own_stack.settings
    with own_stack.outage("postgres"):
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(settings.database_url, connect_timeout=2).close()
        # The alert arrives with Postgres already gone: the agent is paused and both pages go out anyway,
        # while the incident's first audit row is still being retried.
        agent_id, workflow_id = fire(settings, incidents)
        wait_paused(settings, agent_id)
        eventually(
            lambda: chat_channels(settings, workflow_id) == ["customer", "on-call"],
            f"the customer and on-call pages of {workflow_id}",
        )
        wait_awaiting_approval(settings, workflow_id)
        wait_retried_audit_write(settings, workflow_id)

    temporal_signal(settings, workflow_id, "approve", {"approver": "alice", "action": "rollback"})
    assert result_of(settings, workflow_id).final_state == "rolled_back"
    assert_every_effect_once(settings, agent_id, workflow_id)  # every row once, in step order
    assert chat_channels(settings, workflow_id) == ["customer", "on-call"]
    assert any(write.attempt > 1 for write in attempts_that_ended(settings, workflow_id, *AUDIT_ACTIVITIES))
    assert history_audit_problems(settings, workflow_id) == []
    verified = stanch_cli(settings, "audit", "verify", "--history", workflow_id)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    verified = stanch_cli(settings, "audit", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_a_restarted_part_takes_its_old_place_and_only_a_stopped_part_starts_again(
    own_stack: DevStack,
) -> None:
    # Back in start order after the outages above, so the stack still stops in reverse dependency order.
    assert [child.name for child in own_stack.children] == list(own_stack.parts)
    with pytest.raises(RuntimeError, match="already running"):
        own_stack.start_part("postgres")
    with pytest.raises(ValueError, match="unknown dev stack part"):
        own_stack.start_part("kafka")
    with pytest.raises(ValueError, match="not a running part"):
        own_stack.stop_part("kafka")
