"""HTTP intake: POST /alerts/<source> → signal-with-start `incident-<dedupe key>`."""

from __future__ import annotations

import asyncio
import hmac
import json
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError
from temporalio.client import Client, WorkflowHandle
from temporalio.common import WorkflowIDReusePolicy
from temporalio.service import RPCError, RPCStatusCode

from schemas.alerts import AlertStatus
from stanch.policy import Policy
from stanch.settings import Settings
from stanch.temporal_client import connect
from workers.intake.parsers import PARSERS
from workers.intake.routing import RoutedAlert, RoutingError, route_alert

MAX_BODY_BYTES = 1_000_000


class IncidentAction(BaseModel):
    workflow_id: str | None
    runbook: str | None
    action: str
    alert: str
    fingerprint: str
    status: str


class IntakeResponse(BaseModel):
    incidents: list[IncidentAction]


def problem(status: int, field: str, message: str) -> JSONResponse:
    return JSONResponse(status_code=status, content={"detail": [{"field": field, "error": message}]})


class TemporalGateway:
    """Connects lazily, so the intake starts and answers 503 while Temporal is down."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._client: Client | None = None
        self._lock = asyncio.Lock()

    async def client(self) -> Client:
        async with self._lock:
            if self._client is None:
                self._client = await connect(self._settings)
            return self._client

    async def open_or_signal(self, routed: RoutedAlert) -> str:
        assert routed.incident is not None
        incident = routed.incident
        client = await self.client()
        if routed.alert.status is AlertStatus.resolved:
            # A resolved alert tells a running incident; it never opens one.
            try:
                await client.get_workflow_handle(incident.incident_id).signal("alert", routed.alert)
            except RPCError as error:
                if error.status is RPCStatusCode.NOT_FOUND:
                    return "ignored"
                raise
            return "signalled"
        handle: WorkflowHandle[Any, Any] = await client.start_workflow(
            incident.runbook,
            incident,
            id=incident.incident_id,
            task_queue=self._settings.task_queue,
            start_signal="alert",
            start_signal_args=[routed.alert],
            # A closed incident for the same key may be opened again by a new alert.
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
            static_summary=f"{incident.severity.value} {incident.runbook}: {incident.summary}",
            static_details=f"Opened by {routed.alert.source} alert {routed.alert.name} "
            f"(fingerprint {routed.alert.fingerprint}) on {incident.service}.",
        )
        # Signal-with-start reports a first execution run id only when it started a new run.
        return "started" if handle.first_execution_run_id else "signalled"


def create_app(settings: Settings, policy: Policy) -> FastAPI:
    app = FastAPI(title="Stanch intake", version="0.1.0")
    temporal = TemporalGateway(settings)
    token = settings.intake_token.get_secret_value() if settings.intake_token else None

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        try:
            client = await temporal.client()
            await client.service_client.check_health()
        except (RPCError, RuntimeError, OSError) as error:
            return JSONResponse(status_code=503, content={"ok": False, "temporal": f"unreachable: {error}"})
        return JSONResponse(content={"ok": True, "temporal": "reachable"})

    @app.post("/alerts/{source}", status_code=202, response_model=IntakeResponse)
    async def receive(source: str, request: Request) -> Any:
        parse = PARSERS.get(source)
        if parse is None:
            return problem(404, "source", f"unknown alert source {source!r}; use one of {sorted(PARSERS)}")
        if token is not None:
            supplied = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
            if not hmac.compare_digest(supplied.encode(), token.encode()):
                return problem(401, "authorization", "missing or wrong bearer token")
        body = await request.body()
        if len(body) > MAX_BODY_BYTES:
            return problem(413, "body", f"larger than {MAX_BODY_BYTES} bytes")
        try:
            payload = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            return problem(400, "body", f"not valid JSON: {error}")
        try:
            alerts = parse(payload)
        except ValidationError as error:
            first = error.errors()[0]
            field = ".".join(str(part) for part in first["loc"]) or "body"
            return problem(422, field, first["msg"])

        # Route everything before starting anything: a bad alert must not leave half the body started.
        try:
            routed = [route_alert(policy, alert, f"alerts.{index}") for index, alert in enumerate(alerts)]
        except RoutingError as error:
            return problem(422, error.field, error.message)

        actions = []
        for item in routed:
            if item.incident is None:
                action = "unrouted"
            else:
                try:
                    action = await temporal.open_or_signal(item)
                except (RPCError, RuntimeError) as error:
                    return problem(503, "temporal", f"cannot reach Temporal, retry later: {error}")
            actions.append(
                IncidentAction(
                    workflow_id=item.incident.incident_id if item.incident else None,
                    runbook=item.route.runbook if item.route else None,
                    action=action,
                    alert=item.alert.name,
                    fingerprint=item.alert.fingerprint,
                    status=item.alert.status.value,
                )
            )
        return IntakeResponse(incidents=actions)

    return app


def main() -> None:
    import uvicorn

    from stanch.policy import load_policy_or_exit
    from stanch.settings import load_settings_or_exit

    settings = load_settings_or_exit()
    policy = load_policy_or_exit(settings.config)
    uvicorn.run(
        create_app(settings, policy), host=settings.host, port=settings.intake_port, log_level="warning"
    )
