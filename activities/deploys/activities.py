"""The deploys and code system's activities: each calls the adapter the policy names (`[systems.deploys]`).

The activity type names are those recorded histories hold (`deploys_…`); new ones follow `<system>_<verb>`.
"""

from __future__ import annotations

from temporalio import activity

from activities.deploys.interface import Deploys
from activities.heartbeat import heartbeating
from schemas.deploys import (
    DeployRecord,
    ExternalStatus,
    HotfixBuild,
    HotfixBuildRequest,
    InfraStatus,
    QaRun,
    QaRunRequest,
    RecentDeploys,
    ServiceRequest,
    ServiceRollback,
    ShipRequest,
)


class DeployActivities:
    """Built once in the worker around the deploys and code adapter."""

    def __init__(self, system: Deploys) -> None:
        self._system = system

    @activity.defn(name="deploys_recent")
    @heartbeating
    async def recent_deploys(self, request: ServiceRequest) -> RecentDeploys:
        return await self._system.recent_deploys(request)

    @activity.defn(name="deploys_infra_status")
    @heartbeating
    async def infra_status(self, request: ServiceRequest) -> InfraStatus:
        return await self._system.infra_status(request)

    @activity.defn(name="deploys_external_status")
    @heartbeating
    async def external_status(self, request: ServiceRequest) -> ExternalStatus:
        return await self._system.external_status(request)

    @activity.defn(name="deploys_rollback_service")
    @heartbeating
    async def rollback_service(self, request: ServiceRequest) -> ServiceRollback:
        return await self._system.rollback_service(request)

    @activity.defn(name="deploys_revert_infra_config")
    @heartbeating
    async def revert_infra_config(self, request: ServiceRequest) -> InfraStatus:
        return await self._system.revert_infra_config(request)

    @activity.defn(name="deploys_qa_run")
    @heartbeating
    async def qa_run(self, request: QaRunRequest) -> QaRun:
        return await self._system.qa_run(request)

    @activity.defn(name="deploys_build_hotfix")
    @heartbeating
    async def build_hotfix(self, request: HotfixBuildRequest) -> HotfixBuild:
        return await self._system.build_hotfix(request)

    @activity.defn(name="deploys_ship_hotfix")
    @heartbeating
    async def ship_hotfix(self, request: ShipRequest) -> DeployRecord:
        return await self._system.ship_hotfix(request)

    def all(self) -> list[object]:
        """Every activity of this class, for the worker's list."""
        return [
            self.recent_deploys,
            self.infra_status,
            self.external_status,
            self.rollback_service,
            self.revert_infra_config,
            self.qa_run,
            self.build_hotfix,
            self.ship_hotfix,
        ]
