"""Effects on the deploy system (the sandbox platform in dev and tests): what a war room reads and changes.

Reads carry the idempotency key too: the platform ignores it for a GET, and the call log stays uniform.
"""

from __future__ import annotations

from typing import Any

import httpx
from temporalio import activity

from activities.heartbeat import heartbeating
from activities.http import M, PlatformHttp
from schemas.hotfix import (
    BackupRef,
    DatabaseBackup,
    DatabaseState,
    DeployRecord,
    ExternalStatus,
    FlagChange,
    FlagState,
    HotfixBuild,
    HotfixBuildRequest,
    InfraStatus,
    IntegrityReport,
    MigrateDown,
    PostmortemReceipt,
    PostmortemRequest,
    QaRun,
    QaRunRequest,
    RecentDeploys,
    ServiceRequest,
    ServiceRollback,
    ShipRequest,
    StoryReceipt,
    StoryRequest,
)


class DeployActivities:
    """Built once in the worker with the platform client; every call carries the workflow's key."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self._http = PlatformHttp(client)

    async def _call(
        self, method: str, path: str, key: str, result: type[M], what: str, body: Any = None
    ) -> M:
        return await self._http.effect(method, path, key=key, body=body, result=result, what=what)

    async def _read(self, path: str, request: ServiceRequest, result: type[M], what: str) -> M:
        return await self._call("GET", path, request.idempotency_key, result, what)

    async def _post(self, path: str, key: str, result: type[M], what: str, body: Any = None) -> M:
        """A POST; an effect without a body of its own sends `{}`."""
        return await self._call("POST", path, key, result, what, {} if body is None else body)

    # ---- triage: reads --------------------------------------------------------------------------------

    @activity.defn(name="deploys_recent")
    @heartbeating
    async def recent_deploys(self, request: ServiceRequest) -> RecentDeploys:
        listed = await self._http.call("GET", "/deploys", what="list of deploys", key=request.idempotency_key)
        mine = [DeployRecord.model_validate(d) for d in listed if d["service"] == request.service]
        return RecentDeploys(service=request.service, deploys=mine)

    @activity.defn(name="deploys_infra_status")
    @heartbeating
    async def infra_status(self, request: ServiceRequest) -> InfraStatus:
        what = f"infra status of {request.service}"
        return await self._read(f"/infra/{request.service}", request, InfraStatus, what)

    @activity.defn(name="deploys_external_status")
    @heartbeating
    async def external_status(self, request: ServiceRequest) -> ExternalStatus:
        what = f"external services of {request.service}"
        return await self._read(f"/external/{request.service}", request, ExternalStatus, what)

    @activity.defn(name="deploys_database_state")
    @heartbeating
    async def database_state(self, request: ServiceRequest) -> DatabaseState:
        what = f"database of {request.service}"
        return await self._read(f"/databases/{request.service}", request, DatabaseState, what)

    # ---- containment ----------------------------------------------------------------------------------

    @activity.defn(name="deploys_rollback_service")
    @heartbeating
    async def rollback_service(self, request: ServiceRequest) -> ServiceRollback:
        path = f"/deploys/services/{request.service}/rollback"
        what = f"rollback of {request.service}"
        body = {"reason": request.reason}
        return await self._post(path, request.idempotency_key, ServiceRollback, what, body)

    @activity.defn(name="deploys_set_flag")
    @heartbeating
    async def set_flag(self, request: FlagChange) -> FlagState:
        body = {"enabled": request.enabled}
        what = f"feature flag {request.name}"
        return await self._call(
            "PUT", f"/flags/{request.name}", request.idempotency_key, FlagState, what, body
        )

    @activity.defn(name="deploys_revert_infra_config")
    @heartbeating
    async def revert_infra_config(self, request: ServiceRequest) -> InfraStatus:
        path = f"/infra/{request.service}/config/revert"
        what = f"config revert of {request.service}"
        body = {"reason": request.reason}
        return await self._post(path, request.idempotency_key, InfraStatus, what, body)

    # ---- QA and hotfix builds -------------------------------------------------------------------------

    @activity.defn(name="deploys_qa_run")
    @heartbeating
    async def qa_run(self, request: QaRunRequest) -> QaRun:
        body = {"service": request.service, "subject": request.subject}
        return await self._post("/qa/runs", request.idempotency_key, QaRun, "QA gate run", body)

    @activity.defn(name="deploys_build_hotfix")
    @heartbeating
    async def build_hotfix(self, request: HotfixBuildRequest) -> HotfixBuild:
        body = request.model_dump(exclude={"idempotency_key"})
        return await self._post("/hotfix/builds", request.idempotency_key, HotfixBuild, "hotfix build", body)

    @activity.defn(name="deploys_ship_hotfix")
    @heartbeating
    async def ship_hotfix(self, request: ShipRequest) -> DeployRecord:
        path = f"/hotfix/builds/{request.build_id}/deploy"
        what = f"expedited deploy of {request.build_id}"
        return await self._post(path, request.idempotency_key, DeployRecord, what)

    # ---- database rollback ----------------------------------------------------------------------------

    @activity.defn(name="deploys_backup_database")
    @heartbeating
    async def backup_database(self, request: ServiceRequest) -> DatabaseBackup:
        path = f"/databases/{request.service}/backups"
        what = f"backup of {request.service}"
        return await self._post(path, request.idempotency_key, DatabaseBackup, what)

    @activity.defn(name="deploys_verify_backup")
    @heartbeating
    async def verify_backup(self, request: BackupRef) -> DatabaseBackup:
        path = f"/databases/{request.service}/backups/{request.backup_id}/verify"
        what = f"verification of backup {request.backup_id}"
        return await self._post(path, request.idempotency_key, DatabaseBackup, what)

    @activity.defn(name="deploys_migrate_down")
    @heartbeating
    async def migrate_down(self, request: MigrateDown) -> DatabaseState:
        path = f"/databases/{request.service}/migrate-down"
        body = {"backup_id": request.backup_id, "migration": request.migration}
        what = f"reverse migration {request.migration} of {request.service}"
        return await self._post(path, request.idempotency_key, DatabaseState, what, body)

    @activity.defn(name="deploys_check_integrity")
    @heartbeating
    async def check_integrity(self, request: ServiceRequest) -> IntegrityReport:
        path = f"/databases/{request.service}/integrity-check"
        what = f"integrity check of {request.service}"
        return await self._post(path, request.idempotency_key, IntegrityReport, what)

    # ---- after the incident ---------------------------------------------------------------------------

    @activity.defn(name="deploys_store_postmortem")
    @heartbeating
    async def store_postmortem(self, request: PostmortemRequest) -> PostmortemReceipt:
        # The platform's document store speaks its own field names; the timeline goes as readable lines.
        postmortem = request.postmortem
        body = {
            "incident_id": postmortem.incident_id,
            "subject": postmortem.title,
            "what_happened": f"{postmortem.severity} incident on {postmortem.service}",
            "root_cause": postmortem.root_cause,
            "impact": postmortem.impact,
            "remediation": postmortem.response,
            "prevention": postmortem.prevention,
            "timeline": [
                f"{entry.at:%Y-%m-%d %H:%M:%S} [{entry.kind}] {entry.actor}: {entry.text}"
                for entry in postmortem.timeline
            ],
        }
        stored = await self._http.call(
            "POST", "/postmortems", what="post-mortem", key=request.idempotency_key, body=body
        )
        return PostmortemReceipt(
            id=stored["id"], incident_id=postmortem.incident_id, replayed=stored.get("replayed", False)
        )

    @activity.defn(name="deploys_file_story")
    @heartbeating
    async def file_story(self, request: StoryRequest) -> StoryReceipt:
        body = {"incident_id": request.incident_id, "title": request.title}
        return await self._post(
            "/backlog/stories", request.idempotency_key, StoryReceipt, "backlog story", body
        )

    def all(self) -> list[Any]:
        """Every activity of this class, for the worker's list."""
        return [
            self.recent_deploys,
            self.infra_status,
            self.external_status,
            self.database_state,
            self.rollback_service,
            self.set_flag,
            self.revert_infra_config,
            self.qa_run,
            self.build_hotfix,
            self.ship_hotfix,
            self.backup_database,
            self.verify_backup,
            self.migrate_down,
            self.check_integrity,
            self.store_postmortem,
            self.file_story,
        ]
