"""The sandbox's own state of the deploy system, and the scenario models that set it up: deploys per service,
infrastructure, outside services, QA gate runs and hotfix builds.

What the contract's routes take and answer are `schemas/deploys.py`'s models; a record kept here extends the
answer it is given out as with what only the sandbox keeps (when it happened, what it was asked)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from schemas.deploys import DeployRecord, ExternalStatus, HotfixBuild, InfraStatus, QaRun, Verdict

DeployStatus = Literal["live", "rolled_back"]


class Deploy(DeployRecord):
    status: DeployStatus = "live"


def seed_deploys() -> list[Deploy]:
    return [
        Deploy(id="deploy-3", service="support-bot-api", version="1.42.0", at="2026-11-21T09:12:00+00:00"),
        Deploy(id="deploy-2", service="gateway", version="2.7.1", at="2026-11-20T16:40:00+00:00"),
        Deploy(id="deploy-1", service="support-bot-api", version="1.41.3", at="2026-11-19T11:05:00+00:00"),
    ]


InfraHealth = Literal["healthy", "degraded", "down"]


class ServiceDeploysSpec(BaseModel):
    versions: list[str] = Field(min_length=1, description="oldest first; the last one is live now")


class InfraState(BaseModel):
    service: str
    status: InfraHealth = "healthy"
    detail: str = ""
    config_versions: list[str] = Field(default_factory=lambda: ["config-1"], description="oldest first")

    def as_status(self) -> InfraStatus:
        versions = self.config_versions
        return InfraStatus(
            service=self.service,
            status=self.status,
            detail=self.detail,
            config_version=versions[-1],
            previous_config_version=versions[-2] if len(versions) > 1 else None,
        )


class InfraUpdate(BaseModel):
    status: InfraHealth | None = None
    detail: str | None = None
    config_versions: list[str] | None = Field(None, min_length=1)


DependencyHealth = Literal["up", "degraded", "down"]


def _healthy_dependencies() -> dict[str, str]:
    return {"payments-api": "up", "identity-provider": "up"}


class ExternalState(ExternalStatus):
    dependencies: dict[str, str] = Field(default_factory=_healthy_dependencies)


class ExternalUpdate(BaseModel):
    dependencies: dict[str, DependencyHealth]


class QaScript(BaseModel):
    service: str
    verdicts: list[Verdict] = Field(description="answers of the next runs, in order; then PASS again")


class QaRunRecord(QaRun):
    at: str


class HotfixScript(BaseModel):
    service: str
    failures: int = Field(ge=0, description="how many of the next builds fail")


class HotfixBuildRecord(HotfixBuild):
    issue: str
    iteration: int
    attempt: int
    status: Literal["succeeded", "failed", "deployed"]
    at: str
