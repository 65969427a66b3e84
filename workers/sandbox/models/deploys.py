"""Wire models of the deploy system: deploys per service, infrastructure, outside services, QA gate runs and hotfix builds."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

DeployStatus = Literal["live", "rolled_back"]


class Deploy(BaseModel):
    id: str
    service: str
    version: str
    at: str
    status: DeployStatus = "live"


class DeployRollback(Deploy):
    replayed: bool = False


def seed_deploys() -> list[Deploy]:
    return [
        Deploy(id="deploy-3", service="support-bot-api", version="1.42.0", at="2026-11-21T09:12:00+00:00"),
        Deploy(id="deploy-2", service="gateway", version="2.7.1", at="2026-11-20T16:40:00+00:00"),
        Deploy(id="deploy-1", service="support-bot-api", version="1.41.3", at="2026-11-19T11:05:00+00:00"),
    ]


InfraHealth = Literal["healthy", "degraded", "down"]


QaVerdict = Literal["PASS", "CONCERNS", "FAIL", "BLOCKED"]


class ServiceDeploysSpec(BaseModel):
    versions: list[str] = Field(min_length=1, description="oldest first; the last one is live now")


class ServiceRollbackEffect(Deploy):
    restored_version: str
    replayed: bool = False


class InfraState(BaseModel):
    service: str
    status: InfraHealth = "healthy"
    detail: str = ""
    config_versions: list[str] = Field(default_factory=lambda: ["config-1"], description="oldest first")

    @property
    def config_version(self) -> str:
        return self.config_versions[-1]


class InfraView(BaseModel):
    service: str
    status: InfraHealth
    detail: str
    config_version: str
    previous_config_version: str | None
    config_versions: list[str]
    replayed: bool = False

    @classmethod
    def of(cls, infra: InfraState) -> InfraView:
        versions = infra.config_versions
        return cls(
            service=infra.service,
            status=infra.status,
            detail=infra.detail,
            config_version=versions[-1],
            previous_config_version=versions[-2] if len(versions) > 1 else None,
            config_versions=list(versions),
        )


class InfraUpdate(BaseModel):
    status: InfraHealth | None = None
    detail: str | None = None
    config_versions: list[str] | None = Field(None, min_length=1)


DependencyHealth = Literal["up", "degraded", "down"]


def _healthy_dependencies() -> dict[str, DependencyHealth]:
    return {"payments-api": "up", "identity-provider": "up"}


class ExternalState(BaseModel):
    service: str
    dependencies: dict[str, DependencyHealth] = Field(default_factory=_healthy_dependencies)


class ExternalUpdate(BaseModel):
    dependencies: dict[str, DependencyHealth]


class QaScript(BaseModel):
    service: str
    verdicts: list[QaVerdict] = Field(description="answers of the next runs, in order; then PASS again")


class QaRunBody(BaseModel):
    service: str
    subject: str


class QaRunRecord(BaseModel):
    id: str
    service: str
    subject: str
    verdict: QaVerdict
    at: str
    replayed: bool = False


class HotfixScript(BaseModel):
    service: str
    failures: int = Field(ge=0, description="how many of the next builds fail")


class HotfixBuildBody(BaseModel):
    service: str
    issue: str = ""
    iteration: int = 1
    attempt: int = 1


class HotfixBuildRecord(BaseModel):
    id: str
    service: str
    issue: str
    iteration: int
    attempt: int
    version: str
    status: Literal["succeeded", "failed", "deployed"]
    at: str
    replayed: bool = False
