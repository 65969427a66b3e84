"""Stanch's search attributes on a namespace that lacks them — a dev database kept from an older Stanch, or a
production namespace nobody ran `stanch migrate` on: every workflow upserts them, so without one each of its
workflow tasks would fail and retry forever. The dev stack and `stanch migrate` add the missing ones; the
worker refuses to start without them. On a real dev server started with none registered."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from stanch.settings import Settings
from stanch.temporal_client import (
    SEARCH_ATTRIBUTES,
    add_missing_search_attributes,
    missing_search_attributes,
)
from tests.helpers import SERVER_STARTUP
from workers.worker import search_attributes_exist_or_exit


@pytest.fixture
async def bare_server() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_local(
        dev_server_startup_timeout=SERVER_STARTUP,
        dev_server_existing_path=str(Path(sys.executable).parent / "temporal"),
    )
    yield env
    await env.shutdown()


async def test_worker_refuses_a_namespace_without_them_until_they_are_added(
    bare_server: WorkflowEnvironment, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    client = bare_server.client
    assert await missing_search_attributes(client, "default") == list(SEARCH_ATTRIBUTES)

    with pytest.raises(SystemExit) as refused:
        await search_attributes_exist_or_exit(client, settings.model_copy(update={"namespace": "default"}))
    assert refused.value.code == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert "StanchAwaiting" in line and "stanch migrate" in line

    assert await add_missing_search_attributes(client, "default") == list(SEARCH_ATTRIBUTES)
    assert await missing_search_attributes(client, "default") == []
    # Safe on every start: nothing is added twice.
    assert await add_missing_search_attributes(client, "default") == []
    await search_attributes_exist_or_exit(client, settings.model_copy(update={"namespace": "default"}))
