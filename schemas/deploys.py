"""The deploy-and-code system's requests and results: recent deploys, service rollback, infra config,
QA runs and hotfix builds, shared by the war room, the rollback and hotfix runbooks, the adapters of
`activities/deploys/` and the sandbox.

The `*Body` models are the HTTP contract's request bodies (docs/platform-openapi.json); a rollback or a
config revert sends `schemas.systems.EffectReason`, and the results travel as they are."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, Field

from schemas.actions import SET_BY_ACT


class Verdict(StrEnum):
    """What a QA gate run says about a build or a mitigation."""

    passed = "PASS"
    concerns = "CONCERNS"
    failed = "FAIL"
    blocked = "BLOCKED"

    @property
    def releasable(self) -> bool:
        # Concerns are written down but do not hold back a fix for a production outage.
        return self in (Verdict.passed, Verdict.concerns)


class ServiceRequest(BaseModel):
    service: str
    idempotency_key: str = Field("", description=SET_BY_ACT)
    reason: str = ""


class DeployRecord(BaseModel):
    id: str
    service: str
    version: str
    at: str
    status: str
    replayed: bool = False


class RecentDeploys(BaseModel):
    service: str
    deploys: list[DeployRecord] = Field(default_factory=list, description="newest first")

    @property
    def live(self) -> DeployRecord | None:
        return next((deploy for deploy in self.deploys if deploy.status == "live"), None)

    @property
    def rollback_possible(self) -> bool:
        """A rollback needs a live deploy and an earlier one to go back to."""
        live = [deploy for deploy in self.deploys if deploy.status == "live"]
        return len(live) >= 2


class ServiceRollback(DeployRecord):
    restored_version: str


class InfraStatus(BaseModel):
    service: str
    status: str = Field(description="healthy, degraded or down")
    detail: str = ""
    config_version: str
    previous_config_version: str | None = None
    replayed: bool = False


class ExternalStatus(BaseModel):
    service: str
    dependencies: dict[str, str] = Field(default_factory=dict, description="name → up, degraded or down")

    @property
    def unhealthy(self) -> list[str]:
        return sorted(name for name, status in self.dependencies.items() if status != "up")


class QaRunRequest(BaseModel):
    service: str
    subject: str = Field(description="what is checked: a rollback, a flag, a hotfix build id")
    idempotency_key: str = Field("", description=SET_BY_ACT)


class QaRunBody(BaseModel):
    """`POST /qa/runs`."""

    service: str
    subject: str = Field(description="what is checked: a rollback, a flag, a hotfix build id")


class QaRun(BaseModel):
    id: str
    service: str
    subject: str
    verdict: Verdict
    replayed: bool = False


class HotfixBuildRequest(BaseModel):
    service: str
    issue: str
    iteration: int
    attempt: int
    idempotency_key: str = Field("", description=SET_BY_ACT)


class HotfixBuildBody(BaseModel):
    """`POST /hotfix/builds`: which attempt of which iteration of the fix for the issue this build is."""

    service: str
    issue: str = ""
    iteration: int = 1
    attempt: int = 1


class HotfixBuild(BaseModel):
    id: str
    service: str
    version: str
    status: str = Field(description="succeeded or failed")
    replayed: bool = False


class ShipRequest(BaseModel):
    build_id: str
    idempotency_key: str = Field("", description=SET_BY_ACT)
