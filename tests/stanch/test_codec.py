"""Payload encryption: with STANCH_PAYLOAD_KEY set, Temporal's history holds ciphertext; a client with the key
reads it, one without cannot; the codec server the Temporal UI calls round-trips payloads."""

from __future__ import annotations

import asyncio
import base64
import os
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError
from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from schemas.briefs import Brief
from schemas.incidents import IncidentInput
from stanch.codec import ENCODING, EncryptionCodec, codec_from_settings, data_converter, decoded_history
from stanch.history_timeline import build_timeline, render
from stanch.ops.codec_server import create_app
from stanch.policy import Policy
from stanch.settings import Settings
from stanch.temporal_client import connect
from tests.helpers import SERVER_STARTUP, Incidents, new_agent, register_search_attributes
from workers.worker import activity_implementations, build_worker

KEY = base64.b64encode(os.urandom(32)).decode()
OTHER_KEY = base64.b64encode(os.urandom(32)).decode()


def plain(text: str) -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=f'"{text}"'.encode())


async def test_codec_round_trips_and_hides_the_plaintext() -> None:
    codec = EncryptionCodec(base64.b64decode(KEY))
    original = plain("support-bot promised a 90% discount")
    [encoded] = await codec.encode([original])
    assert encoded.metadata["encoding"] == ENCODING
    assert b"discount" not in encoded.SerializeToString()
    assert await codec.decode([encoded]) == [original]
    # A fresh nonce each time: the same payload never encrypts to the same bytes.
    [again] = await codec.encode([original])
    assert again.data != encoded.data
    # Payloads written before encryption was turned on still read.
    assert await codec.decode([original]) == [original]


async def test_another_key_cannot_decode() -> None:
    [encoded] = await EncryptionCodec(base64.b64decode(KEY)).encode([plain("secret")])
    with pytest.raises(ValueError, match="encrypted with key"):
        await EncryptionCodec(base64.b64decode(OTHER_KEY)).decode([encoded])


def test_the_key_is_validated_at_start_up() -> None:
    assert Settings(payload_key="").payload_key is None  # blank in .env: no encryption
    for bad in ("not base64!", base64.b64encode(b"short").decode()):
        with pytest.raises(ValidationError, match="payload_key"):
            Settings(payload_key=bad)
    # No key, no codec: the converter is pydantic's, as before.
    assert data_converter(Settings()).payload_codec is None


@pytest.fixture(scope="module")
async def server() -> AsyncIterator[WorkflowEnvironment]:
    """A Temporal test server of this module's own: the workflows these tests leave behind on task queues
    whose worker has gone must not share a clock with the session's time-skipping tests."""
    binary = Path(sys.executable).parent / "temporal-test-server"
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_startup_timeout=SERVER_STARTUP,
        data_converter=pydantic_data_converter,
        test_server_existing_path=str(binary),
    )
    await register_search_attributes(env.client)
    yield env
    await env.shutdown()


@pytest.fixture
async def keyed(server: WorkflowEnvironment, settings: Settings) -> AsyncIterator[tuple[Settings, Client]]:
    """A worker and a client that share the key, both made by connect(), on a fresh task queue."""
    keyed_settings = settings.model_copy(
        update={
            "payload_key": Settings(payload_key=KEY).payload_key,
            "task_queue": f"test-{uuid.uuid4().hex[:8]}",
            "temporal_address": server.client.service_client.config.target_host,
        }
    )
    client = await connect(keyed_settings)
    async with activity_implementations(keyed_settings, client) as activities:
        async with build_worker(client, keyed_settings.task_queue, activities):
            yield keyed_settings, client


async def test_history_holds_no_plaintext_but_the_key_reads_it(
    keyed: tuple[Settings, Client], server: WorkflowEnvironment, policy: Policy, sandbox_url: str
) -> None:
    settings, client = keyed
    agent_id = new_agent(sandbox_url)
    marker = f"discount-{uuid.uuid4().hex}"
    handle = await Incidents(client, settings.task_queue, policy).open(
        "agent_emergency_stop",
        alertname="AgentHallucination",
        labels={"agent": agent_id, "customer": "acme"},
        annotations={"summary": f"{agent_id} promised a 90% {marker}"},
        service="support",
        workflow_id="incident-codec-{fingerprint}",
        target={"agent_id": agent_id, "customer": "acme"},
    )
    try:
        # The worker decodes what it is given and encodes what it answers: the runbook runs as usual.
        brief = None
        for _ in range(200):
            brief = await handle.query("brief", result_type=Brief)
            if brief.state == "awaiting_approval":
                break
            await asyncio.sleep(0.05)
        assert brief is not None and brief.state == "awaiting_approval"
        assert marker in brief.summary

        # A client without the key (the time-skipping env's, pydantic converter only) sees raw history.
        history = await server.client.get_workflow_handle(handle.id).fetch_history()
        raw = b"".join(event.SerializeToString() for event in history.events)
        assert marker.encode() not in raw
        assert ENCODING in raw
        # The key decodes the same bytes: the start input is the incident, summary and all.
        [started] = [
            e for e in history.events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED
        ]
        payloads = started.workflow_execution_started_event_attributes.input.payloads
        [decoded] = await client.data_converter.decode(payloads, [IncidentInput])
        assert isinstance(decoded, IncidentInput) and marker in decoded.summary
        # The auditor's timeline reads payloads itself: with the key it tells the story, without it cannot.
        codec = codec_from_settings(settings)
        assert codec is not None
        assert marker not in render(build_timeline(history), "text")
        assert marker in render(build_timeline(await decoded_history(history, codec)), "text")
    finally:
        await handle.terminate("test over")


async def test_codec_server_round_trips_and_allows_the_ui_origin() -> None:
    settings = Settings(payload_key=KEY)
    app = create_app(settings)
    original = {
        "metadata": {"encoding": base64.b64encode(b"json/plain").decode()},
        "data": base64.b64encode(b'"hi"').decode(),
    }
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://codec") as http:
        encoded = await http.post(
            "/encode", json={"payloads": [original]}, headers={"X-Namespace": "default"}
        )
        assert encoded.status_code == 200, encoded.text
        [ciphertext] = encoded.json()["payloads"]
        assert base64.b64decode(ciphertext["metadata"]["encoding"]) == ENCODING
        assert b"hi" not in base64.b64decode(ciphertext["data"])
        decoded = await http.post("/decode", json={"payloads": [ciphertext]})
        assert decoded.json() == {"payloads": [original]}
        # Garbage is a 400 that does not echo what it was given.
        bad = await http.post(
            "/decode", json={"payloads": [{**ciphertext, "data": base64.b64encode(b"x" * 40).decode()}]}
        )
        assert bad.status_code == 400

        # The Temporal UI calls from the browser: its origin passes the CORS preflight, others do not.
        ui_origin = f"http://localhost:{settings.temporal_ui_port}"
        preflight = {
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,x-namespace",
        }
        allowed = await http.options("/decode", headers={"Origin": ui_origin, **preflight})
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == ui_origin
        refused = await http.options("/decode", headers={"Origin": "http://evil.example", **preflight})
        assert "access-control-allow-origin" not in refused.headers
