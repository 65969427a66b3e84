"""The intake tests' own fixtures, shared by every module here: a Temporal dev server per module (the kind of
server the intake talks to, with its visibility store) and a worker with the real runbooks and activities
on a fresh task queue of it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from temporalio.testing import WorkflowEnvironment

from stanch.settings import Settings
from tests.helpers import Running
from tests.helpers_intake import start_dev_server
from workers.worker import activity_implementations, build_worker


@pytest.fixture(scope="module")
async def dev_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await start_dev_server()
    yield env
    await env.shutdown()


@pytest.fixture
async def dev_stanch(dev_env: WorkflowEnvironment, settings: Settings) -> AsyncIterator[Running]:
    """A worker running the real runbooks and activities on a fresh task queue of the dev server."""
    task_queue = f"intake-{uuid.uuid4().hex[:8]}"
    worker_settings = settings.model_copy(update={"task_queue": task_queue})
    async with activity_implementations(worker_settings, dev_env.client) as activities:
        async with build_worker(dev_env.client, task_queue, activities):
            yield Running(dev_env, dev_env.client, task_queue, settings)
