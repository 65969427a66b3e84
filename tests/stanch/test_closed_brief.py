"""`stanch brief` on a closed incident answers from its history once no worker is left (issue 16).

A query on a closed run is answered only by a worker of the version it was pinned to
(tests/workers/test_worker_versions.py); these incidents close, their worker stops, and `stanch brief`
still answers, on the HTTP path and on the SDK path alike, saying on stderr that it read the history."""

from __future__ import annotations

import base64
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, timedelta
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from schemas.approvals import ApprovalAnswer
from schemas.briefs import Brief
from stanch.closed_brief import brief_from_history, closed_brief
from stanch.codec import data_converter
from stanch.ops.replay import load_history
from stanch.policy import load_policy
from stanch.settings import Settings
from tests.conftest import TEST_POLICY
from tests.helpers import Incidents, cli, cli_environment, csrf_of, new_agent, until_state
from tests.helpers_intake import start_dev_server_with_http
from workers.console.app import create_app
from workers.console.auth import DEMO_PASSWORD
from workers.worker import activity_implementations, build_worker

# A dev server with its HTTP API of this module's own, and the CLI in fresh interpreters (3-6 s a test).
pytestmark = pytest.mark.slow

HISTORIES = Path(__file__).parents[1] / "histories"

PAYLOAD_KEY = base64.b64encode(b"c" * 32).decode()


@pytest.fixture(scope="module")
async def http_env() -> AsyncIterator[tuple[WorkflowEnvironment, str]]:
    env, url = await start_dev_server_with_http()
    yield env, url
    await env.shutdown()


@pytest.mark.parametrize("payload_key", [None, PAYLOAD_KEY], ids=["plain", "encrypted"])
async def test_a_closed_incident_s_brief_comes_from_its_history_with_no_worker_left(
    http_env: tuple[WorkflowEnvironment, str], settings: Settings, tmp_path: Path, payload_key: str | None
) -> None:
    env, http_url = http_env
    # With a key, every payload in the history is ciphertext: the CLI's codec must decode the history.
    client = await Client.connect(
        env.client.service_client.config.target_host,
        namespace=env.client.namespace,
        data_converter=data_converter(Settings(payload_key=payload_key)),
    )
    task_queue = f"closed-{uuid.uuid4().hex[:8]}"
    incidents = Incidents(client, task_queue, load_policy(TEST_POLICY))
    worker_settings = settings.model_copy(update={"task_queue": task_queue})
    async with activity_implementations(worker_settings, client) as activities:
        async with build_worker(client, task_queue, activities):
            approved = await incidents.agent_emergency_stop(new_agent(settings.platform_url))
            await until_state(approved, "awaiting_approval")
            await approved.signal(
                "approve", ApprovalAnswer(approver="alice", action="rollback", comment="ok")
            )
            assert (await approved.result()).final_state == "rolled_back"

            abandoned = await incidents.agent_emergency_stop(new_agent(settings.platform_url))
            live: Brief = await until_state(abandoned, "awaiting_approval")
            live = await abandoned.query("brief", result_type=Brief)  # after the audit row settled
            await abandoned.terminate("test: the run is cut short while it waits")
    # No worker polls this task queue any more: a query would wait for one in vain.

    for http in (http_url, None):
        done = await cli(
            ["brief", approved.id, "--timeline"], cli_environment(client, tmp_path, http, payload_key)
        )
        assert done.exit_code == 0, done.output
        assert f"stanch: {approved.id} is completed: brief read from its history" in done.stderr
        assert "State: rolled_back" in done.stdout
        assert "Recommendation: none" in done.stdout and "Waiting for:" not in done.stdout
        assert "Timeline:" in done.stdout and "rollback" in done.stdout

    over = [
        await cli(["brief", abandoned.id], cli_environment(client, tmp_path, h, payload_key))
        for h in (http_url, None)
    ]
    assert [o.exit_code for o in over] == [0, 0], [o.output for o in over]
    assert over[0].stdout == over[1].stdout
    assert "State: awaiting_approval (terminated)" in over[0].stdout
    assert f"stanch: {abandoned.id} is terminated: brief read from its history" in over[0].stderr

    # What the console would call: the same brief as the running incident showed, but how it ended.
    rebuilt = (await closed_brief(client, abandoned.id)).brief
    same = ("incident_id", "runbook", "severity", "service", "summary", "automatic_actions")
    assert {f: getattr(rebuilt, f) for f in same} == {f: getattr(live, f) for f in same}
    assert live.automatic_actions, "the emergency stop pauses the agent before it asks"
    assert rebuilt.to_sign == [] and rebuilt.awaiting is None
    if payload_key is not None:  # the history the brief was rebuilt from holds ciphertext only
        raw = await env.client.get_workflow_handle(abandoned.id).fetch_history()
        [start] = raw.events[0].workflow_execution_started_event_attributes.input.payloads
        assert start.metadata["encoding"] == b"binary/encrypted"


def test_an_automatic_action_is_timed_when_the_runbook_saw_it_as_the_live_brief_is() -> None:
    # The live brief stamps an action with `workflow.now()` of the workflow task that took its result; the
    # result's own event can be a second earlier. Here it is moved to just before a second boundary.
    history = load_history(
        HISTORIES / "agent_emergency_stop" / "test_pauses_at_once_then_rolls_back_on_approval.json"
    )
    events = list(history.events)
    completed = next(e for e in events if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED)
    task = next(
        e
        for e in events
        if e.event_id > completed.event_id and e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED
    )
    seen = task.event_time.ToDatetime(tzinfo=UTC)
    completed.event_time.FromDatetime(seen.replace(microsecond=0) - timedelta(milliseconds=100))

    [pause, *_] = brief_from_history(history).brief.automatic_actions
    assert pause.startswith(f"{seen:%H:%M:%S} Pause agent")


async def test_the_consoles_page_of_a_closed_incident_with_no_worker_left_reads_its_history(
    http_env: tuple[WorkflowEnvironment, str], settings: Settings
) -> None:
    env, _ = http_env
    client = await Client.connect(
        env.client.service_client.config.target_host,
        namespace=env.client.namespace,
        data_converter=data_converter(Settings()),
    )
    task_queue = f"closed-console-{uuid.uuid4().hex[:8]}"
    policy = load_policy(TEST_POLICY)
    worker_settings = settings.model_copy(update={"task_queue": task_queue})
    async with activity_implementations(worker_settings, client) as activities:
        async with build_worker(client, task_queue, activities):
            abandoned = await Incidents(client, task_queue, policy).agent_emergency_stop(
                new_agent(settings.platform_url)
            )
            await until_state(abandoned, "awaiting_approval")
            await abandoned.terminate("test: the run is cut short while it waits")
    # No worker polls the queue now: the page's queries go unanswered, and the history tells the brief.

    console_settings = settings.model_copy(
        update={"console_secret": SecretStr("s" * 32), "config": TEST_POLICY}
    )
    app = create_app(console_settings, policy, client=client)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://console"
    ) as browser:
        token = csrf_of((await browser.get("/login")).text)
        await browser.post("/login", data={"name": "alice", "password": DEMO_PASSWORD, "csrf_token": token})
        page = await browser.get(f"/incidents/{abandoned.id}")

    assert page.status_code == 200, page.text[:300]
    assert 'id="from-history"' in page.text
    assert "awaiting_approval (terminated)" in page.text
    assert "Pause agent" in page.text  # its automatic actions, from the history
    assert "hx-trigger" not in page.text.split('id="live"')[1].split(">")[0]  # and it does not poll
