"""The shared time-skipping server survives a workflow terminated in the middle of an activity."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import timedelta

import pytest
from temporalio import activity, workflow
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from tests.clock import busy, free_clock, settled

running, released = asyncio.Event(), asyncio.Event()


@activity.defn
async def wait_for_release() -> None:
    running.set()
    await released.wait()


@workflow.defn(sandboxed=False)
class OneActivityThenAnHour:
    @workflow.run
    async def run(self) -> None:
        await workflow.execute_activity(wait_for_release, start_to_close_timeout=timedelta(minutes=1))
        await workflow.sleep(timedelta(hours=1))


async def one_hour_of_sleep_takes(env: WorkflowEnvironment) -> float:
    started = time.monotonic()
    await asyncio.wait_for(env.sleep(timedelta(hours=1)), timeout=30)
    return time.monotonic() - started


async def test_a_hold_leaked_by_termination_mid_activity_is_found_and_released(
    time_env: WorkflowEnvironment,
) -> None:
    running.clear()
    released.clear()
    queue = f"clock-{uuid.uuid4().hex[:8]}"
    async with Worker(
        time_env.client, task_queue=queue, workflows=[OneActivityThenAnHour], activities=[wait_for_release]
    ):
        handle = await time_env.client.start_workflow(
            OneActivityThenAnHour.run, id=f"clock-{queue}", task_queue=queue
        )
        await asyncio.wait_for(running.wait(), timeout=30)
        assert await busy(handle) == ["activity wait_for_release"]
        await handle.terminate("mid-activity, on purpose")
        released.set()  # the completion now finds no workflow: the server keeps the activity's hold

    with pytest.warns(UserWarning, match="leaked 1 hold"):
        assert await free_clock(time_env) == 1
    assert await one_hour_of_sleep_takes(time_env) < 5  # skipped, not slept


async def test_settled_waits_for_the_activity_then_sees_only_the_timer(time_env: WorkflowEnvironment) -> None:
    running.clear()
    released.clear()
    queue = f"clock-{uuid.uuid4().hex[:8]}"
    async with Worker(
        time_env.client, task_queue=queue, workflows=[OneActivityThenAnHour], activities=[wait_for_release]
    ):
        handle = await time_env.client.start_workflow(
            OneActivityThenAnHour.run, id=f"clock-{queue}", task_queue=queue
        )
        await asyncio.wait_for(running.wait(), timeout=30)
        assert await settled(handle, within=0.5) == ["activity wait_for_release"]
        released.set()
        assert await settled(handle) == []
        await handle.terminate("parked on its timer")
    assert await free_clock(time_env) == 0
