"""Deploys and code over the documented HTTP contract (docs/platform-openapi.json), as the sandbox implements it.

Reads carry the idempotency key too: the platform ignores it for a GET, and the call log stays uniform.
Bodies are the contract's request models (`schemas/deploys.py`, `schemas/systems.py`), the ones the sandbox
reads.
"""

from __future__ import annotations

from activities.deploys.interface import Deploys
from activities.http import KeyedCalls
from schemas.deploys import (
    DeployRecord,
    ExternalStatus,
    HotfixBuild,
    HotfixBuildBody,
    HotfixBuildRequest,
    InfraStatus,
    QaRun,
    QaRunBody,
    QaRunRequest,
    RecentDeploys,
    ServiceRequest,
    ServiceRollback,
    ShipRequest,
)
from schemas.systems import EffectReason


class HttpDeploys(KeyedCalls, Deploys):
    """Deploys and code at the platform's base URL."""

    async def recent_deploys(self, request: ServiceRequest) -> RecentDeploys:
        listed = await self._http.call("GET", "/deploys", what="list of deploys", key=request.idempotency_key)
        mine = [DeployRecord.model_validate(d) for d in listed if d["service"] == request.service]
        return RecentDeploys(service=request.service, deploys=mine)

    async def infra_status(self, request: ServiceRequest) -> InfraStatus:
        what = f"infra status of {request.service}"
        return await self._read(f"/infra/{request.service}", request.idempotency_key, InfraStatus, what)

    async def external_status(self, request: ServiceRequest) -> ExternalStatus:
        what = f"external services of {request.service}"
        return await self._read(f"/external/{request.service}", request.idempotency_key, ExternalStatus, what)

    async def rollback_service(self, request: ServiceRequest) -> ServiceRollback:
        path = f"/deploys/services/{request.service}/rollback"
        what = f"rollback of {request.service}"
        body = EffectReason(reason=request.reason)
        return await self._post(path, request.idempotency_key, ServiceRollback, what, body)

    async def revert_infra_config(self, request: ServiceRequest) -> InfraStatus:
        path = f"/infra/{request.service}/config/revert"
        what = f"config revert of {request.service}"
        body = EffectReason(reason=request.reason)
        return await self._post(path, request.idempotency_key, InfraStatus, what, body)

    async def qa_run(self, request: QaRunRequest) -> QaRun:
        body = QaRunBody(service=request.service, subject=request.subject)
        return await self._post("/qa/runs", request.idempotency_key, QaRun, "QA gate run", body)

    async def build_hotfix(self, request: HotfixBuildRequest) -> HotfixBuild:
        body = HotfixBuildBody(
            service=request.service, issue=request.issue, iteration=request.iteration, attempt=request.attempt
        )
        return await self._post("/hotfix/builds", request.idempotency_key, HotfixBuild, "hotfix build", body)

    async def ship_hotfix(self, request: ShipRequest) -> DeployRecord:
        path = f"/hotfix/builds/{request.build_id}/deploy"
        what = f"expedited deploy of {request.build_id}"
        return await self._post(path, request.idempotency_key, DeployRecord, what)
