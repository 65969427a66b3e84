"""Helpers for end-to-end tests against the `stack` fixture (the real dev stack, one process per part)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from schemas.briefs import Brief
from schemas.incidents import IncidentResult
from stanch.settings import Settings
from stanch.temporal_client import connect
from tests.conftest import applied as sandbox_applied


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
    return httpx.post(f"http://127.0.0.1:{settings.intake_port}/alerts/alertmanager", json=body, timeout=10)


def agent(settings: Settings, agent_id: str) -> dict[str, Any]:
    return httpx.get(f"{settings.platform_url}/agents/{agent_id}").json()


def applied(settings: Settings, path: str) -> int:
    return sandbox_applied(settings.platform_url, path)


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
