"""With tracing on, the httpx instrumentation records each request's URL on its span, and the exporter ships
spans to the console (the worker's log) or a collector. Slack, Discord and Telegram keep their key in that
URL: the worker's notification channels register their secrets, and every recorded URL is scrubbed of them.
"""

from __future__ import annotations

import secrets
from pathlib import Path

import httpx
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from psycopg_pool import AsyncConnectionPool
from temporalio.exceptions import ApplicationError

from activities.notify import NotifyActivities
from schemas.actions import Notification
from stanch import telemetry
from stanch.policy import load_policy
from stanch.settings import Settings
from stanch.tls import default_tls_context
from tests.helpers import free_port, write_policy


async def test_a_notification_secret_in_the_request_url_stays_out_of_the_span(
    tmp_path: Path, postgres_settings: Settings
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    slack_key = "slk" + secrets.token_hex(12)
    bot_token = f"{secrets.randbelow(10**9)}:AA{secrets.token_hex(16)}"
    nobody = f"http://127.0.0.1:{free_port()}"  # a refused connection is enough: the span is made first
    config = write_policy(
        tmp_path,
        f"""
        [notify]
        P0 = ["instant"]
        P1 = ["instant"]
        P2 = ["instant"]
        P3 = ["instant"]
        customer = ["instant"]
        escalation = ["instant"]

        [notify.groups]
        instant = ["slack-oncall", "telegram-oncall"]

        [channels.slack-oncall]
        type = "slack"
        url_env = "SLACK_URL"

        [channels.telegram-oncall]
        type = "telegram"
        token_env = "TELEGRAM_TOKEN"
        chat_id = "1"
        api_base = "{nobody}"
        """,
    )
    environ = {"SLACK_URL": f"{nobody}/services/T0/B0/{slack_key}", "TELEGRAM_TOKEN": bot_token}
    telemetry.enable(provider)
    try:
        async with (
            httpx.AsyncClient(verify=default_tls_context()) as http,
            AsyncConnectionPool(postgres_settings.database_url, min_size=1, max_size=1, open=False) as pool,
        ):
            notify = NotifyActivities.from_policy(
                load_policy(config), postgres_settings, http, pool, environ=environ
            )
            with pytest.raises(ApplicationError):
                await notify.send_notification(
                    Notification(
                        idempotency_key=f"traced-{secrets.token_hex(4)}/run/page",
                        channel="on-call",
                        severity="P0",
                        title="Agent paused",
                        text="…",
                    )
                )
    finally:
        telemetry.disable()

    calls = [span for span in exporter.get_finished_spans() if span.kind is SpanKind.CLIENT]
    urls = {key for span in calls for key in span.attributes or {} if key in telemetry.URL_ATTRIBUTES}
    # Both channels were tried and their URLs recorded (as `http.url`, or `url.full` with the stable HTTP
    # conventions: OTEL_SEMCONV_STABILITY_OPT_IN picks, once per process).
    assert len(calls) == 2 and urls
    assert all("***" in str(span.attributes) for span in calls)
    everything = str([(span.attributes, span.events, span.status) for span in exporter.get_finished_spans()])
    assert slack_key not in everything and bot_token not in everything
