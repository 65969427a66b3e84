"""One way to connect to Temporal, used by the worker, the intake, the CLI and the tests."""

from __future__ import annotations

from temporalio.client import Client

from stanch import telemetry
from stanch.codec import data_converter
from stanch.settings import Settings


async def connect(settings: Settings) -> Client:
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.namespace,
        # pydantic's converter; with STANCH_PAYLOAD_KEY set, payloads are also encrypted (stanch.codec).
        data_converter=data_converter(settings),
        # Tracing when OTEL_TRACES_EXPORTER turned it on, nothing otherwise (stanch.telemetry).
        interceptors=telemetry.client_interceptors(),
        # Prometheus metrics when STANCH_METRICS_PORT is set; None is the SDK's default runtime.
        runtime=telemetry.runtime(settings),
        # None keeps the SDK's `<pid>@<host>`; a replica can name itself instead (STANCH_WORKER_IDENTITY).
        identity=settings.worker_identity,
    )
