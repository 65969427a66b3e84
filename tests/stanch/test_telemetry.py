"""Tracing and metrics: one trace from the intake's request to an activity's outgoing HTTP call, Prometheus
metrics from the Temporal SDK, and nothing at all by default."""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from stanch import telemetry
from stanch.ops.samples import sample
from stanch.policy import Policy
from stanch.settings import Settings
from stanch.temporal_client import connect
from stanch.tls import default_tls_context
from tests.helpers import SERVER_STARTUP, free_port, new_agent, register_search_attributes
from workers.intake.app import TemporalGateway, create_app
from workers.worker import activity_implementations, build_worker


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
def spans() -> Iterator[InMemorySpanExporter]:
    """Tracing into memory for one test; the process-wide provider is left alone (it can be set only once)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    telemetry.enable(provider)
    try:
        yield exporter
    finally:
        telemetry.disable()


def test_tracing_is_off_unless_an_exporter_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_TRACES_EXPORTER", raising=False)
    assert telemetry.setup_tracing_from_env("stanch-test") is False
    assert not telemetry.tracing_enabled()
    # connect() adds no interceptor: the default path is the one that existed before tracing.
    assert telemetry.client_interceptors() == []
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    assert telemetry.setup_tracing_from_env("stanch-test") is False


def test_an_unknown_exporter_stops_the_process_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "jaeger")
    with pytest.raises(SystemExit) as exit_:
        telemetry.setup_tracing_from_env("stanch-test")
    assert exit_.value.code == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "stanch: invalid setting OTEL_TRACES_EXPORTER: unknown exporter ['jaeger']; choose from ['console', 'otlp', 'none']"
    ]


@pytest.fixture
async def traced(
    spans: InMemorySpanExporter, server: WorkflowEnvironment, settings: Settings
) -> AsyncIterator[tuple[Settings, Client]]:
    """A client made by connect() (so with the interceptor) and a worker on it, on a fresh task queue."""
    worker_settings = settings.model_copy(
        update={
            "task_queue": f"test-{uuid.uuid4().hex[:8]}",
            "temporal_address": server.client.service_client.config.target_host,
        }
    )
    client = await connect(worker_settings)
    async with activity_implementations(worker_settings, client) as activities:
        async with build_worker(client, worker_settings.task_queue, activities):
            yield worker_settings, client


def _url(span: ReadableSpan) -> str:
    # The instrumentation names it `http.url` (old semantic conventions, its default) or `url.full` (new).
    attributes = span.attributes or {}
    return str(attributes.get("url.full") or attributes.get("http.url") or "")


def _one(found: list[ReadableSpan], what: str) -> ReadableSpan:
    assert len(found) == 1, f"expected one {what}, got {[span.name for span in found]}"
    return found[0]


async def test_one_trace_from_intake_request_to_activity_http_call(
    traced: tuple[Settings, Client], spans: InMemorySpanExporter, policy: Policy, sandbox_url: str
) -> None:
    settings, client = traced
    agent_id = new_agent(sandbox_url)
    app = create_app(settings, policy, gateway=TemporalGateway(settings, client))
    # ASGITransport is not an instrumented transport: the intake's span is the root of the trace.
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://intake") as http:
        response = await http.post("/alerts/alertmanager", json=sample("agent-hallucination", agent=agent_id))
    assert response.status_code == 202, response.text
    workflow_id = response.json()["incidents"][0]["workflow_id"]
    try:
        for _ in range(200):
            if any(span.name == "RunActivity:pause_agent" for span in spans.get_finished_spans()):
                break
            await asyncio.sleep(0.05)
        finished = spans.get_finished_spans()
        request = _one(
            [s for s in finished if s.kind == SpanKind.SERVER and s.name == "POST /alerts/alertmanager"],
            "intake request span",
        )
        run_activity = _one([s for s in finished if s.name == "RunActivity:pause_agent"], "pause_agent span")
        http_call = _one(
            [
                s
                for s in finished
                if s.kind == SpanKind.CLIENT and _url(s).endswith(f"/agents/{agent_id}/pause")
            ],
            "HTTP span of the pause call",
        )
        assert request.context is not None and run_activity.context is not None
        assert http_call.context is not None and http_call.parent is not None
        # One trace: the intake's request, through Temporal (headers carry it), to the outgoing call.
        trace_id = request.context.trace_id
        assert request.parent is None
        assert run_activity.context.trace_id == trace_id
        assert http_call.context.trace_id == trace_id
        # The HTTP call is the activity's own child, not merely in the same trace.
        assert http_call.parent.span_id == run_activity.context.span_id
        names = {span.name for span in finished if span.context and span.context.trace_id == trace_id}
        assert {"SignalWithStartWorkflow:agent_emergency_stop", "StartActivity:pause_agent"} <= names
    finally:
        await client.get_workflow_handle(workflow_id).terminate("test over")


async def test_sdk_metrics_are_served_for_prometheus(server: WorkflowEnvironment, settings: Settings) -> None:
    port = free_port()
    metered = settings.model_copy(
        update={"metrics_port": port, "temporal_address": server.client.service_client.config.target_host}
    )
    client = await connect(metered)
    await client.service_client.check_health()  # at least one request, so the request counters exist
    body = ""
    async with httpx.AsyncClient(trust_env=False, verify=default_tls_context()) as http:
        for _ in range(100):
            response = await http.get(f"http://127.0.0.1:{port}/metrics")
            body = response.text
            if "temporal_request" in body:
                break
            await asyncio.sleep(0.05)
    assert response.status_code == 200
    assert "temporal_request" in body, body[:500]


async def test_metrics_are_off_by_default(settings: Settings) -> None:
    assert settings.metrics_port is None
    assert telemetry.runtime(settings) is None
