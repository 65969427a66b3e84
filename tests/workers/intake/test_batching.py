"""The intake coalesces repeats of an open incident into `alerts` batches (issue 15) without losing a page.

On the dev server (the intake reads `started` from it, and visibility counts the runs), with the real
runbooks: every repeat of a storm is counted once in its incident, a POST is answered 202 only once the
signal that carries its alert is acknowledged (503 when it is not), a first alert for a key never waits
for a batch, and the incident's task priority follows its severity on the workflow and its activities.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from pydantic import BaseModel
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle

from schemas.alerts import AlertBatch
from schemas.briefs import Timeline
from stanch.ops.samples import alertmanager_body
from stanch.policy import Policy
from tests.helpers import Running, new_agent
from tests.helpers_intake import events, runs_of, serve
from workers.intake.app import Delivered, TemporalGateway, TemporalUnavailable
from workers.intake.routing import RoutedAlert


class HeldGateway(TemporalGateway):
    """The real gateway, whose `alerts` batches wait at a gate the test opens, noting what it sent when."""

    def __init__(self, *args: Any, fail_batches: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.release = asyncio.Event()
        self.holding = asyncio.Event()  # set once a batch waits at the gate
        self.fail_batches = fail_batches
        self.batch_sizes: list[int] = []

    async def _signal_with_start(self, routed: RoutedAlert, signal: str, payload: BaseModel) -> Delivered:
        if signal == "alerts":
            self.holding.set()
            await self.release.wait()
            if self.fail_batches:
                raise TemporalUnavailable("the test's Temporal is away")
            assert isinstance(payload, AlertBatch)
            self.batch_sizes.append(len(payload.alerts))
        return await super()._signal_with_start(routed, signal, payload)


@asynccontextmanager
async def held_intake(
    running: Running, policy: Policy, **gateway_options: Any
) -> AsyncIterator[tuple[httpx.AsyncClient, HeldGateway]]:
    settings = running.settings.model_copy(
        update={"task_queue": running.task_queue, "intake_token": None, "intake_hmac_secret": None}
    )
    gateway = HeldGateway(settings, client=running.client, **gateway_options)
    async with serve(settings, policy, gateway) as http:
        yield http, gateway


def body_for(agent_id: str, name: str = "AgentHallucination") -> dict[str, Any]:
    return alertmanager_body(name, {"agent": agent_id}, "misbehaves", fingerprint=f"batch-{agent_id}")


def workflow_of(agent_id: str) -> str:
    return f"incident-agent-hallucination-batch-{agent_id}"


async def counted_alerts(handle: WorkflowHandle[Any, Any], expected: int) -> list[str]:
    """The incident's alert entries once `expected` are in (bounded poll: a query may lag the server)."""
    texts: list[str] = []
    for _ in range(200):
        timeline = await handle.query("timeline", result_type=Timeline)
        texts = [entry.text for entry in timeline.entries if entry.kind == "alert"]
        if len(texts) >= expected:
            break
        await asyncio.sleep(0.05)
    return texts


async def signalled_alerts(handle: WorkflowHandle[Any, Any]) -> tuple[int, int]:
    """(alerts carried by `alert` signals, alerts carried by `alerts` batches) in the history."""
    single = batched = 0
    async for event in handle.fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
            attributes = event.workflow_execution_signaled_event_attributes
            if attributes.signal_name == "alert":
                single += 1
            elif attributes.signal_name == "alerts":
                [payload] = attributes.input.payloads
                batched += payload.data.count(b'"fingerprint"')
    return single, batched


async def signalled_alerts_once(
    handle: WorkflowHandle[Any, Any], expected: tuple[int, int]
) -> tuple[int, int]:
    """`signalled_alerts` once it reaches `expected`, or what it last was after 10 s."""
    seen = await signalled_alerts(handle)
    for _ in range(200):
        if seen == expected:
            break
        await asyncio.sleep(0.05)
        seen = await signalled_alerts(handle)
    return seen


async def test_a_storm_of_repeats_is_counted_exactly_once_in_one_incident_from_fewer_signals(
    dev_stanch: Running, policy: Policy
) -> None:
    agent_id = new_agent(dev_stanch.settings.platform_url)
    body = body_for(agent_id)
    handle = dev_stanch.client.get_workflow_handle(workflow_of(agent_id))

    async with held_intake(dev_stanch, policy) as (http, gateway):
        first = await http.post("/alerts/alertmanager", json=body)
        assert first.json()["incidents"][0]["action"] == "started"
        gateway.release.set()
        answers = await asyncio.gather(*(http.post("/alerts/alertmanager", json=body) for _ in range(60)))

    assert [answer.status_code for answer in answers] == [202] * 60
    assert {answer.json()["incidents"][0]["action"] for answer in answers} == {"signalled"}
    # Coalesced: fewer signals than repeats, and the batches hold every one of them.
    assert sum(gateway.batch_sizes) == 60
    assert gateway.batches_sent == len(gateway.batch_sizes) < 60
    assert max(gateway.batch_sizes) > 1
    texts = await counted_alerts(handle, 61)
    assert len(texts) == 61
    assert texts[0].startswith("AgentHallucination firing")
    assert texts[-1] == "repeat of AgentHallucination (#61)"
    assert await signalled_alerts(handle) == (1, 60)
    assert await events(handle, EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED) == 1
    assert await runs_of(dev_stanch.client, workflow_of(agent_id)) == 1


async def test_a_batched_repeat_is_answered_only_once_temporal_holds_its_signal(
    dev_stanch: Running, policy: Policy
) -> None:
    agent_id = new_agent(dev_stanch.settings.platform_url)
    body = body_for(agent_id)
    handle = dev_stanch.client.get_workflow_handle(workflow_of(agent_id))

    async with held_intake(dev_stanch, policy) as (http, gateway):
        await http.post("/alerts/alertmanager", json=body)
        repeats = [asyncio.create_task(http.post("/alerts/alertmanager", json=body)) for _ in range(10)]
        await asyncio.wait_for(gateway.holding.wait(), 10)
        await asyncio.sleep(0.2)  # real time for a wrong early answer to arrive; nothing waits on this
        assert not any(repeat.done() for repeat in repeats)
        assert await signalled_alerts(handle) == (1, 0)
        gateway.release.set()
        answers = await asyncio.gather(*repeats)
        # Each 202 came after its batch's signal returned (none was answered while the gateway held it,
        # above). The server holds a signal that arrives while a workflow task is in flight as a buffered
        # event and writes it to the history when that task completes; on a loaded machine the incident's
        # first task can still be running here, so the history is read until it shows them (bounded).
        assert await signalled_alerts_once(handle, (1, 10)) == (1, 10)

    assert [answer.status_code for answer in answers] == [202] * 10


async def test_a_batch_temporal_did_not_take_is_a_503_for_every_post_in_it(
    dev_stanch: Running, policy: Policy
) -> None:
    agent_id = new_agent(dev_stanch.settings.platform_url)
    body = body_for(agent_id)
    handle = dev_stanch.client.get_workflow_handle(workflow_of(agent_id))

    async with held_intake(dev_stanch, policy, fail_batches=True) as (http, gateway):
        await http.post("/alerts/alertmanager", json=body)
        repeats = [asyncio.create_task(http.post("/alerts/alertmanager", json=body)) for _ in range(5)]
        await asyncio.wait_for(gateway.holding.wait(), 10)
        gateway.release.set()
        answers = await asyncio.gather(*repeats)

    assert [answer.status_code for answer in answers] == [503] * 5
    assert all(answer.headers["retry-after"] == "5" for answer in answers)
    assert await signalled_alerts(handle) == (1, 0)
    assert len(await counted_alerts(handle, 1)) == 1


async def test_a_first_alert_is_never_delayed_by_a_batch(dev_stanch: Running, policy: Policy) -> None:
    busy, fresh = new_agent(dev_stanch.settings.platform_url), new_agent(dev_stanch.settings.platform_url)

    async with held_intake(dev_stanch, policy) as (http, gateway):
        await http.post("/alerts/alertmanager", json=body_for(busy))
        held = asyncio.create_task(http.post("/alerts/alertmanager", json=body_for(busy)))
        await asyncio.wait_for(gateway.holding.wait(), 10)
        # A batch is held at the gate, never released yet: a new key's first alert goes straight through.
        first = await asyncio.wait_for(http.post("/alerts/alertmanager", json=body_for(fresh)), 10)
        assert first.status_code == 202
        assert first.json()["incidents"][0]["action"] == "started"
        assert not held.done()
        gateway.release.set()
        assert (await held).status_code == 202

    assert gateway.batch_sizes == [1]
    assert await signalled_alerts(dev_stanch.client.get_workflow_handle(workflow_of(fresh))) == (1, 0)


async def test_the_incident_and_its_activities_carry_the_task_priority_of_its_severity(
    dev_stanch: Running, policy: Policy
) -> None:
    agent_id = new_agent(dev_stanch.settings.platform_url)
    p1 = dev_stanch.client.get_workflow_handle(workflow_of(agent_id))
    security = alertmanager_body(
        "AgentPromptInjection",
        {"agent": agent_id, "severity": "critical"},
        "prompt injection",
        fingerprint=f"batch-{agent_id}",
    )

    async with held_intake(dev_stanch, policy) as (http, _):
        await http.post("/alerts/alertmanager", json=body_for(agent_id))
        p0_answer = await http.post("/alerts/alertmanager", json=security)
    p0 = dev_stanch.client.get_workflow_handle(p0_answer.json()["incidents"][0]["workflow_id"])

    for handle, key in ((p1, 2), (p0, 1)):
        description = await handle.describe()
        assert description.raw_description.workflow_execution_info.priority.priority_key == key
        scheduled = []
        for _ in range(200):
            scheduled = [
                event.activity_task_scheduled_event_attributes
                async for event in handle.fetch_history_events()
                if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
            ]
            if scheduled:
                break
            await asyncio.sleep(0.05)
        assert scheduled, f"{handle.id} scheduled no activity"
        assert {attributes.priority.priority_key for attributes in scheduled} == {key}
    await p1.terminate("test done")
    await p0.terminate("test done")
