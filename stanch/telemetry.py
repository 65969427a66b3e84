"""Traces and metrics for operators: OpenTelemetry spans and the Temporal SDK's Prometheus metrics.

Both are off by default, so a process nobody configured behaves exactly as before:
- tracing is on when `OTEL_TRACES_EXPORTER` names an exporter (`console`, `otlp`, or both, comma-separated;
  `none` is the default). The OTLP exporter reads the standard `OTEL_EXPORTER_OTLP_*` variables and the
  resource reads `OTEL_SERVICE_NAME` / `OTEL_RESOURCE_ATTRIBUTES`, as every OpenTelemetry SDK does.
- metrics are on when `STANCH_METRICS_PORT` is set.

One trace covers an incident's path: the intake's request span → the SDK's client span for
signal-with-start → the workflow → each activity → the activity's outgoing HTTP call, whose `traceparent`
header carries the trace on to the platform. Temporal carries the context between processes in workflow
and activity headers (`temporalio.contrib.opentelemetry.TracingInterceptor`).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Awaitable, Callable
from functools import cache
from typing import TYPE_CHECKING

from stanch.redact import scrub_known

if TYPE_CHECKING:
    # Imported where they are used: the CLI connects through `connect()` too, and a person's `stanch brief`
    # should not wait for FastAPI, Starlette and the OpenTelemetry SDK when nothing asked for tracing.
    from fastapi import FastAPI
    from opentelemetry.instrumentation.httpx import RequestInfo
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Span
    from starlette.requests import Request
    from starlette.responses import Response
    from temporalio.client import Interceptor
    from temporalio.runtime import Runtime

    from stanch.settings import Settings

TRACES_EXPORTER_VARIABLE = "OTEL_TRACES_EXPORTER"
EXPORTERS = ("console", "otlp", "none")
TRACER_NAME = "stanch"
# Where the httpx instrumentation records each request's URL (the older and the stable HTTP conventions).
URL_ATTRIBUTES = ("http.url", "url.full")

# The provider this process traces into, or None when tracing is off. Module state on purpose: every
# client of a process (worker, intake, CLI) goes through `connect()`, which asks here.
_provider: TracerProvider | None = None


def exporters_from_env() -> list[SpanExporter]:
    """The exporters `OTEL_TRACES_EXPORTER` asks for; a name we do not know stops the process in one line."""
    names = [name.strip() for name in os.environ.get(TRACES_EXPORTER_VARIABLE, "none").split(",") if name]
    unknown = sorted(set(names) - set(EXPORTERS))
    if unknown:
        print(
            f"stanch: invalid setting {TRACES_EXPORTER_VARIABLE}: unknown exporter {unknown}; "
            f"choose from {list(EXPORTERS)}",
            file=sys.stderr,
        )
        raise SystemExit(2)
    exporters: list[SpanExporter] = []
    if "console" in names:
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        exporters.append(ConsoleSpanExporter())
    if "otlp" in names:
        # Imported only when asked for: the OTLP exporter pulls in protobuf and requests.
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporters.append(OTLPSpanExporter())
    return exporters


def setup_tracing_from_env(service_name: str) -> bool:
    """Turn tracing on if the environment asks for it; returns whether it is on. Call once, before connecting."""
    exporters = exporters_from_env()
    if not exporters:
        return False
    from opentelemetry import trace
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    # OTEL_SERVICE_NAME wins over our default, as the OpenTelemetry spec says it should.
    name = os.environ.get("OTEL_SERVICE_NAME") or service_name
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: name}))
    for exporter in exporters:
        # Batched, so a slow collector never holds up an activity; flushed at interpreter exit.
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    enable(provider)
    return True


def enable(provider: TracerProvider) -> None:
    """Trace into `provider` from now on: new clients get the interceptor, httpx calls get spans.

    The tests pass an in-memory provider here without making it the process-wide global, which
    OpenTelemetry allows to be set only once.
    """
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    global _provider
    if _provider is not None:
        disable()
    _provider = provider
    # Every httpx client, including those the worker built before this call, since the instrumentor
    # patches the transport classes; each request gets a client span and a `traceparent` header.
    HTTPXClientInstrumentor().instrument(
        tracer_provider=provider, request_hook=_scrub_url, async_request_hook=_scrub_url_async
    )


def _scrub_url(span: Span, request: RequestInfo) -> None:
    """Slack, Discord and Telegram keep their key in the request URL, which the span records and the
    exporter ships to the console or a collector: scrub it of every secret the process registered."""
    recorded = getattr(span, "attributes", None) or {}
    for key in URL_ATTRIBUTES:
        value = recorded.get(key)
        if isinstance(value, str) and scrub_known(value) != value:
            span.set_attribute(key, scrub_known(value))


async def _scrub_url_async(span: Span, request: RequestInfo) -> None:
    _scrub_url(span, request)


def disable() -> None:
    global _provider
    if _provider is None:
        return
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    HTTPXClientInstrumentor().uninstrument()
    _provider = None


def tracing_enabled() -> bool:
    return _provider is not None


def client_interceptors() -> list[Interceptor]:
    """For `Client.connect`: a client interceptor that is also a worker interceptor, so a worker built on
    the client traces its workflows and activities too. Nothing when tracing is off: the default path
    stays exactly as it was, without headers or spans."""
    if _provider is None:
        return []
    from temporalio.contrib.opentelemetry import TracingInterceptor

    return [TracingInterceptor(_provider.get_tracer(TRACER_NAME))]


def instrument_intake(app: FastAPI) -> None:
    """A server span per intake request, continuing the sender's trace when it sent a `traceparent`."""
    provider = _provider
    if provider is None:
        return
    from opentelemetry import propagate
    from opentelemetry.trace import SpanKind, Status, StatusCode

    tracer = provider.get_tracer(TRACER_NAME)

    @app.middleware("http")
    async def trace_request(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        parent = propagate.extract(dict(request.headers))
        with tracer.start_as_current_span(
            f"{request.method} {request.url.path}",
            context=parent,
            kind=SpanKind.SERVER,
            attributes={"http.request.method": request.method, "url.path": request.url.path},
        ) as span:
            # The endpoint runs in a task that copies this context, so Temporal calls made while handling
            # the request become children of this span.
            response = await call_next(request)
            span.set_attribute("http.response.status_code", response.status_code)
            if response.status_code >= 500:
                span.set_status(Status(StatusCode.ERROR))
            return response


@cache
def _prometheus_runtime(bind_address: str) -> Runtime:
    # One runtime per address and process: a second one would try to bind the same port again.
    from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

    return Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=bind_address)))


def runtime(settings: Settings) -> Runtime | None:
    """The SDK runtime for `Client.connect`: one serving Prometheus metrics when `STANCH_METRICS_PORT` is
    set, otherwise None (the SDK's default runtime, no listener)."""
    if settings.metrics_port is None:
        return None
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    return _prometheus_runtime(f"{host}:{settings.metrics_port}")
