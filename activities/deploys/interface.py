"""The deploys and code system: the interface its runbooks act through; adapters implement it."""

from __future__ import annotations

from abc import abstractmethod
from typing import ClassVar

from activities.adapters import Adapter
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
from schemas.systems import SystemName


class Deploys(Adapter):
    system: ClassVar[SystemName] = "deploys"

    @abstractmethod
    async def recent_deploys(self, request: ServiceRequest) -> RecentDeploys:
        """The service's deploys, newest first, each `live` or `rolled_back` (the war room's "what changed")."""

    @abstractmethod
    async def infra_status(self, request: ServiceRequest) -> InfraStatus:
        """The service's infrastructure and the config version it runs."""

    @abstractmethod
    async def external_status(self, request: ServiceRequest) -> ExternalStatus:
        """The external services the service depends on, each up, degraded or down."""

    @abstractmethod
    async def rollback_service(self, request: ServiceRequest) -> ServiceRollback:
        """Roll the service back to its previous live deploy, once per key."""

    @abstractmethod
    async def revert_infra_config(self, request: ServiceRequest) -> InfraStatus:
        """Revert the service's infrastructure config to its previous version, once per key."""

    @abstractmethod
    async def qa_run(self, request: QaRunRequest) -> QaRun:
        """Run the QA gate on a subject (a rollback, a flag, a hotfix build) and return its verdict."""

    @abstractmethod
    async def build_hotfix(self, request: HotfixBuildRequest) -> HotfixBuild:
        """Build a hotfix for the issue; one build per key."""

    @abstractmethod
    async def ship_hotfix(self, request: ShipRequest) -> DeployRecord:
        """Deploy a built hotfix on the expedited path."""
