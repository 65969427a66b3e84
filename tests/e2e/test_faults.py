"""Faults on the real stack (Temporal dev server, Postgres, sandbox, worker and intake as processes).

The sandbox platform answers 5xx a few times and then recovers: the activity retries with growing backoff
under one idempotency key and the runbook carries on. It answers 4xx: the step fails once, is audited with
the platform's reason, on-call is told, and nothing is retried. A notification channel hangs: the notify
step gives up on it within the channel's timeout and the fallback channel takes the message.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType

from schemas.actions import NotificationReceipt
from stanch.ops.devstack import child_environment
from stanch.policy import load_policy
from stanch.settings import Settings
from tests.helpers import audit_rows, chat_messages, http_client, new_agent
from tests.stack import (
    activity_run,
    agent,
    audit_settled,
    brief_state,
    calls,
    eventually,
    fire,
    history,
    open_emergency_stop,
    policy_with_notify,
    result_of,
    scheduled,
    temporal_signal,
)

pytestmark = pytest.mark.e2e

OPENING = ["pause", "tell-customer", "tell-oncall", "gate1-requested"]
# workflows/steps/policies.py::EFFECT_RETRY: 1 s, then doubling.
FIRST_RETRY_SECONDS = 1.0
BACKOFF = 2.0

Inject = Callable[..., None]


# ---- observing the sandbox and the history --------------------------------------------------------------


def at(call: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(call["at"])


@pytest.fixture
def faults(stack: Settings) -> Iterator[Inject]:
    """Inject sandbox faults; whatever is left of them is cleared afterwards, so no later test trips on one."""

    def inject(path_prefix: str, status: int, times: int = 1, hang_seconds: float = 0) -> None:
        fault = {"path_prefix": path_prefix, "status": status, "times": times, "hang_seconds": hang_seconds}
        http_client.post(f"{stack.platform_url}/faults", json=fault).raise_for_status()

    yield inject
    http_client.delete(f"{stack.platform_url}/faults").raise_for_status()


# ---- the platform answers 5xx, then recovers -------------------------------------------------------------


def test_platform_5xx_is_retried_with_growing_backoff_then_the_runbook_proceeds(
    stack: Settings, faults: Inject
) -> None:
    agent_id = new_agent(stack.platform_url, ["v1", "v2"])
    pause = f"/agents/{agent_id}/pause"
    faults(pause, 503, times=3)

    workflow_id = fire(stack, "agent-hallucination", agent_id)
    eventually(lambda: agent(stack, agent_id)["state"] == "paused", "the pause to get through", timeout=40)

    attempts = calls(stack, pause)
    assert [call["status_code"] for call in attempts] == [503, 503, 503, 200]
    # Every retry carries the same key: had one of the 503s been applied, the platform would replay it.
    assert len({call["idempotency_key"] for call in attempts}) == 1
    gaps = [(at(later) - at(earlier)).total_seconds() for earlier, later in itertools.pairwise(attempts)]
    expected = [FIRST_RETRY_SECONDS * BACKOFF**n for n in range(3)]
    assert all(gap >= 0.9 * want for gap, want in zip(gaps, expected, strict=True)), gaps
    assert gaps[0] < gaps[1] < gaps[2], gaps

    eventually(lambda: brief_state(stack, workflow_id) == "awaiting_approval", "the approval request")
    audit_settled(stack, workflow_id)
    rows = audit_rows(stack, workflow_id)
    assert [row["step_key"] for row in rows] == OPENING
    assert rows[0]["outcome"] == "done"  # one row for the step, not one per attempt
    events = list(history(stack, workflow_id))
    started, closed = activity_run(events, scheduled(events, "pause_agent"))
    assert started.activity_task_started_event_attributes.attempt == 4
    assert "HTTP 503" in started.activity_task_started_event_attributes.last_failure.message
    assert closed.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED

    temporal_signal(stack, workflow_id, "reject", {"approver": "alice", "action": "rollback"})
    assert result_of(stack, workflow_id).final_state == "contained"


# ---- the platform answers 4xx ----------------------------------------------------------------------------


def test_platform_4xx_on_the_pause_fails_once_is_audited_and_tells_oncall(
    stack: Settings, faults: Inject
) -> None:
    agent_id = new_agent(stack.platform_url, ["v1", "v2"])
    pause = f"/agents/{agent_id}/pause"
    # More refusals than attempts allowed: a second attempt would be refused too, and show in the log.
    faults(pause, 422, times=5)

    workflow_id = fire(stack, "agent-hallucination", agent_id)
    assert result_of(stack, workflow_id).final_state == "action_failed"

    assert [call["status_code"] for call in calls(stack, pause)] == [422]
    assert agent(stack, agent_id)["state"] == "active"
    rows = {row["step_key"]: row for row in audit_rows(stack, workflow_id)}
    assert list(rows) == ["pause", "pause-failed", "closed"]
    assert rows["pause"]["outcome"] == "failed"
    assert f"pause of agent {agent_id} refused with HTTP 422" in rows["pause"]["reason"]
    assert rows["pause-failed"]["outcome"] == "done" and rows["closed"]["outcome"] == "action_failed"
    [told] = chat_messages(stack.platform_url, workflow_id)
    assert (told["channel"], told["title"]) == ("on-call", f"Could not pause agent {agent_id}")
    events = list(history(stack, workflow_id))
    started, closed = activity_run(events, scheduled(events, "pause_agent"))
    assert started.activity_task_started_event_attributes.attempt == 1
    failure = closed.activity_task_failed_event_attributes.failure.application_failure_info
    assert (failure.type, failure.non_retryable) == ("PlatformRejected", True)


def test_platform_4xx_on_an_approved_rollback_fails_once_is_audited_and_tells_oncall(
    stack: Settings,
) -> None:
    # A real refusal, no injection: the platform has no earlier version to roll this agent back to.
    agent_id = new_agent(stack.platform_url, ["v1"])
    rollback = f"/agents/{agent_id}/rollback"
    workflow_id = fire(stack, "agent-hallucination", agent_id)
    eventually(lambda: brief_state(stack, workflow_id) == "awaiting_approval", "the approval request")

    temporal_signal(stack, workflow_id, "approve", {"approver": "bob", "action": "rollback"})
    assert result_of(stack, workflow_id).final_state == "action_failed"

    assert [call["status_code"] for call in calls(stack, rollback)] == [409]
    assert (agent(stack, agent_id)["state"], agent(stack, agent_id)["version"]) == ("paused", "v1")
    rows = {row["step_key"]: row for row in audit_rows(stack, workflow_id)}
    assert list(rows)[-4:] == ["gate1-decision", "rollback", "rollback-failed", "closed"]
    assert (rows["rollback"]["actor"], rows["rollback"]["outcome"]) == ("bob", "failed")
    assert "refused with HTTP 409" in rows["rollback"]["reason"]
    assert "earliest version" in rows["rollback"]["reason"]
    told = chat_messages(stack.platform_url, workflow_id)
    assert [(m["channel"], m["title"]) for m in told][-1] == (
        "on-call",
        f"Rollback of agent {agent_id} failed",
    )


# ---- a notification channel hangs ------------------------------------------------------------------------

CHANNEL_TIMEOUT_SECONDS = 1
HANG_SECONDS = 6


HANG_NOTIFY = f"""
[notify]
P0 = ["instant"]
P1 = ["instant"]
P2 = ["instant"]
P3 = ["instant"]
customer = ["customer-chat"]
escalation = ["instant"]

[notify.groups]
instant = ["hanging-webhook", "oncall-webhook"]

[channels.hanging-webhook]
type = "webhook"
url_env = "STANCH_TEST_HANGING_WEBHOOK_URL"
timeout_seconds = {CHANNEL_TIMEOUT_SECONDS}

[channels.oncall-webhook]
type = "webhook"
url_setting = "notify_webhook_url"

[channels.customer-chat]
type = "webhook"
url_setting = "notify_webhook_url"
"""


@pytest.fixture
def own_worker(
    stack: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[Path, dict[str, str]], Settings]]:
    """A worker process of the test's own, on its own task queue, with its own policy and channel secrets."""
    started: list[subprocess.Popen[bytes]] = []

    def start(config: Path, secrets: dict[str, str]) -> Settings:
        for name, value in secrets.items():
            monkeypatch.setenv(name, value)  # the worker reads channel secrets from its environment
        settings = stack.model_copy(update={"task_queue": f"faults-{uuid.uuid4().hex[:8]}", "config": config})
        log = tmp_path / "worker.log"
        with log.open("wb") as output:
            started.append(
                subprocess.Popen(
                    [sys.executable, "-m", "stanch", "worker"],
                    env=child_environment(settings),
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
        eventually(lambda: b"worker started" in log.read_bytes() or started[-1].poll() is not None, "worker")
        assert started[-1].poll() is None, log.read_text()
        return settings

    yield start
    for worker in started:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()


def test_a_hanging_channel_is_given_up_within_its_timeout_and_the_fallback_takes_the_message(
    stack: Settings, faults: Inject, own_worker: Callable[[Path, dict[str, str]], Settings], tmp_path: Path
) -> None:
    hanging = f"/hooks/hanging-{uuid.uuid4().hex[:8]}"
    config = policy_with_notify(tmp_path / "stanch.toml", HANG_NOTIFY)
    settings = own_worker(config, {"STANCH_TEST_HANGING_WEBHOOK_URL": stack.platform_url + hanging})
    faults(hanging, 504, hang_seconds=HANG_SECONDS)

    agent_id = new_agent(stack.platform_url, ["v1", "v2"])
    workflow_id = open_emergency_stop(settings, load_policy(config), agent_id, [])
    eventually(lambda: brief_state(stack, workflow_id) == "awaiting_approval", "the approval request")
    # The runbook moved on while the endpoint still holds the request (the sandbox logs it once answered).
    assert calls(stack, hanging) == []

    audit_settled(stack, workflow_id)
    rows = audit_rows(stack, workflow_id)
    assert [row["step_key"] for row in rows] == [
        "pause",
        "tell-customer",
        "tell-oncall",
        "tell-oncall-failed-hanging-webhook",
        "gate1-requested",
    ]
    failed = rows[3]
    assert (failed["outcome"], failed["reason"]) == (
        "failed",
        f"no answer within {CHANNEL_TIMEOUT_SECONDS} s",
    )
    assert [m["channel"] for m in chat_messages(stack.platform_url, workflow_id)] == ["customer", "on-call"]

    events = list(history(stack, workflow_id))
    started, closed = activity_run(events, scheduled(events, "send_notification", channel="on-call"))
    took = (closed.event_time.ToDatetime() - started.event_time.ToDatetime()).total_seconds()
    assert CHANNEL_TIMEOUT_SECONDS <= took < HANG_SECONDS, took
    assert started.activity_task_started_event_attributes.attempt == 1
    receipt = NotificationReceipt.model_validate_json(
        closed.activity_task_completed_event_attributes.result.payloads[0].data
    )
    assert [(d.channel, d.delivered) for d in receipt.deliveries] == [
        ("hanging-webhook", False),
        ("oncall-webhook", True),
    ]

    temporal_signal(stack, workflow_id, "reject", {"approver": "alice", "action": "rollback"})
    assert result_of(stack, workflow_id).final_state == "contained"
    # The request did reach the hanging endpoint: the sandbox answers it once the hang is over.
    eventually(lambda: calls(stack, hanging), "the held request to be answered", timeout=HANG_SECONDS + 5)
    assert [call["status_code"] for call in calls(stack, hanging)] == [504]
