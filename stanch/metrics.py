"""Stanch watches itself: the counters its own alert rules (deploy/prometheus/stanch-rules.yml) read.

Two processes, two endpoints, one rule file:

- the worker serves the Temporal SDK's metrics (`temporal_num_pollers`, `temporal_worker_task_slots_*`, …)
  on `STANCH_METRICS_PORT`, and Stanch's own worker counters come out of that same endpoint because they
  are made on the SDK runtime's meter (`WorkerMetrics`): no second port, no second client library.
  `activity.metric_meter()` would do too, but it exists only inside an activity, so a counter made there
  first appears at 1 — and Prometheus' `increase()` reads a series' first sample as its baseline, missing
  exactly the first failure. The runtime's meter lets the worker create every series at 0 when it starts.
- the intake counts responses by status code and alerts by action itself, with prometheus_client, and
  serves them at `GET /metrics` on its own HTTP port (`instrument_intake_metrics`). The intake runs no
  worker, and its Temporal client's runtime is down exactly when a 503 most needs counting.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from temporalio.common import MetricMeter

if TYPE_CHECKING:  # the intake's side needs FastAPI and prometheus_client; the worker's side neither
    from fastapi import FastAPI
    from prometheus_client import CollectorRegistry, Counter
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

# ---- the worker: counters on the SDK runtime's meter ------------------------------------------------

AUDIT_WRITE_FAILURES = "stanch_audit_write_failures"
NOTIFICATION_GROUP_FAILURES = "stanch_notification_group_failures"
NOTIFICATION_CHANNEL_FAILURES = "stanch_notification_channel_failures"


class WorkerMetrics:
    """Stanch's own worker counters. The SDK's Prometheus exporter writes counter names as given (no
    `_total` suffix), like its own `temporal_request`; the rules use them so."""

    def __init__(
        self,
        meter: MetricMeter,
        *,
        namespace: str = "",
        task_queue: str = "",
        groups: Iterable[str] = (),
        channels: Iterable[str] = (),
    ) -> None:
        meter = meter.with_additional_attributes({"namespace": namespace, "task_queue": task_queue})
        self._audit = meter.create_counter(
            AUDIT_WRITE_FAILURES, "Audit log writes that failed (each failed attempt; the activity retries)."
        )
        self._groups = meter.create_counter(
            NOTIFICATION_GROUP_FAILURES,
            "Notification attempts in which every channel of a group failed: that group heard nothing.",
        )
        self._channels = meter.create_counter(
            NOTIFICATION_CHANNEL_FAILURES, "Deliveries a notification channel did not take."
        )
        # Every series at 0 from the start, so the first failure is an increase Prometheus can see.
        self._audit.add(0)
        for group in groups:
            self._groups.add(0, {"group": group})
        for channel in channels:
            self._channels.add(0, {"channel": channel})

    @classmethod
    def noop(cls) -> WorkerMetrics:
        return cls(MetricMeter.noop)

    def audit_write_failed(self) -> None:
        self._audit.add(1)

    def notification_group_failed(self, group: str) -> None:
        self._groups.add(1, {"group": group})

    def notification_channel_failed(self, channel: str) -> None:
        self._channels.add(1, {"channel": channel})


# ---- the intake: prometheus_client, served at GET /metrics ------------------------------------------

INTAKE_RESPONSES = "stanch_intake_responses"  # prometheus_client adds `_total`
INTAKE_ALERTS = "stanch_intake_alerts"
# Read from the 202 body to count alerts by action; larger bodies are counted by status only.
MAX_COUNTED_BODY = 1_000_000
ACTIONS = ("started", "signalled", "ignored", "unrouted", "duplicate", "triage")
STATUSES = ("202", "400", "401", "404", "413", "422", "500", "503")


class IntakeMetrics:
    """The intake's counters, in a registry of their own (one per app, so tests and a second app in one
    process never share or double-register them)."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter

        self.registry: CollectorRegistry = CollectorRegistry()
        self.responses: Counter = Counter(
            INTAKE_RESPONSES,
            "Intake HTTP responses by route template and status code.",
            ["route", "status"],
            registry=self.registry,
        )
        self.alerts: Counter = Counter(
            INTAKE_ALERTS,
            "Alerts the intake answered for, by the action in its 202.",
            ["action"],
            registry=self.registry,
        )
        # At 0 from the start, for the same reason as the worker's: `increase()` sees the first one.
        for status in STATUSES:
            self.responses.labels(route="/alerts/{source}", status=status)
        for action in ACTIONS:
            self.alerts.labels(action=action)

    def count_response(self, route: str, status: int) -> None:
        self.responses.labels(route=route, status=str(status)).inc()

    def count_alert_action(self, action: str) -> None:
        self.alerts.labels(action=action).inc()

    def count_alerts_in(self, body: bytes) -> None:
        """The actions of a 202 answer (`{"incidents": [{"action": ...}, ...]}`), each counted once."""
        try:
            answer: Any = json.loads(body)
        except ValueError:
            return
        incidents = answer.get("incidents") if isinstance(answer, dict) else None
        for item in incidents if isinstance(incidents, list) else []:
            action = item.get("action") if isinstance(item, dict) else None
            if isinstance(action, str) and action in ACTIONS:
                self.count_alert_action(action)

    def exposition(self) -> bytes:
        from prometheus_client import generate_latest

        return generate_latest(self.registry)


class _CountResponses:
    """Pure ASGI middleware: it watches what the app sends (status, and the body of an alert POST's 202)
    without buffering or re-wrapping the response, so streaming, errors and tracing are untouched. A
    request the app fails on without answering is counted as the 500 the server sends for it."""

    def __init__(self, app: ASGIApp, metrics: IntakeMetrics) -> None:
        self.app = app
        self.metrics = metrics

    def _route(self, scope: Scope) -> str:
        # The route *template* (`/alerts/{source}`), never the raw path: a scanner must not mint series.
        from starlette.routing import Match

        app = scope.get("app")
        for route in getattr(getattr(app, "router", None), "routes", []):
            match, _ = route.matches(scope)
            if match is Match.FULL:
                return str(getattr(route, "path", "other"))
        return "other"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        body = bytearray()
        counting_body = scope.get("method") == "POST" and str(scope.get("path", "")).startswith("/alerts/")

        async def watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            elif message["type"] == "http.response.body" and counting_body and status == 202:
                if len(body) <= MAX_COUNTED_BODY:
                    body.extend(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            self.metrics.count_response(self._route(scope), status)
            if counting_body and status == 202 and len(body) <= MAX_COUNTED_BODY:
                self.metrics.count_alerts_in(bytes(body))


def instrument_intake_metrics(app: FastAPI) -> IntakeMetrics:
    """Count every response by route and status, every answered alert by action, and serve them at
    `GET /metrics` (Prometheus text format). Call once in `create_app`, before the app starts."""
    from fastapi import Response
    from prometheus_client import CONTENT_TYPE_LATEST

    metrics = IntakeMetrics()
    app.state.metrics = metrics

    @app.get("/metrics", include_in_schema=False)
    async def prometheus_metrics() -> Response:
        return Response(content=metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    app.add_middleware(_CountResponses, metrics=metrics)
    return metrics


def count_alert_action(app: FastAPI, action: str) -> None:
    """For code that answers for an alert outside a 202 body (the middleware counts those by itself)."""
    metrics: IntakeMetrics | None = getattr(app.state, "metrics", None)
    if metrics is not None:
        metrics.count_alert_action(action)


__all__ = [
    "AUDIT_WRITE_FAILURES",
    "INTAKE_ALERTS",
    "INTAKE_RESPONSES",
    "NOTIFICATION_CHANNEL_FAILURES",
    "NOTIFICATION_GROUP_FAILURES",
    "IntakeMetrics",
    "WorkerMetrics",
    "count_alert_action",
    "instrument_intake_metrics",
]
