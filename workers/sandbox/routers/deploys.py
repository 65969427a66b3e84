"""Deploys and code: the contract's war-room view of one service.

Its deploys and their rollback, infrastructure (status and config versions), the outside services it
depends on, QA gate runs whose verdicts a test scripts, and hotfix builds. Everything is keyed by service
name, so tests that pick their own service never see each other's state. Bodies and answers are
`schemas/deploys.py`'s models, the ones the http adapter (`activities/deploys/http.py`) sends and reads."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException

from schemas.deploys import (
    DeployRecord,
    ExternalStatus,
    HotfixBuild,
    HotfixBuildBody,
    InfraStatus,
    QaRun,
    QaRunBody,
    ServiceRollback,
    Verdict,
)
from schemas.systems import EffectReason
from workers.sandbox.common import found_or_404, now_iso
from workers.sandbox.dependencies import SandboxDep, require_idempotency_key
from workers.sandbox.models.deploys import (
    Deploy,
    ExternalState,
    HotfixBuildRecord,
    InfraState,
    QaRunRecord,
)
from workers.sandbox.state import Sandbox

# Reads: not effects a runbook performs, so no key is needed.
router = APIRouter()
# Everything on this router changes the stand-in's state, so it must be safe to retry.
effects = APIRouter(dependencies=[Depends(require_idempotency_key)])


@router.get("/deploys")
async def list_deploys(sandbox: SandboxDep) -> list[DeployRecord]:
    """Every service's deploys, newest first, each `live` or `rolled_back` (the war room's "what changed")."""
    return list(sandbox.deploys)


def deploys_of(sandbox: Sandbox, service: str) -> list[Deploy]:
    return [deploy for deploy in sandbox.deploys if deploy.service == service]


def infra_of(sandbox: Sandbox, service: str) -> InfraState:
    return sandbox.infra.setdefault(service, InfraState(service=service))


@effects.post("/deploys/services/{service}/rollback")
async def rollback_service_deploy(
    sandbox: SandboxDep, service: str, request: EffectReason = EffectReason()
) -> ServiceRollback:
    """Roll the service back to its previous live deploy; 409 when there is none."""
    live = [deploy for deploy in deploys_of(sandbox, service) if deploy.status == "live"]
    if len(live) < 2:
        raise HTTPException(409, f"{service} has no earlier live deploy to roll back to")
    live[0].status = "rolled_back"
    return ServiceRollback(**live[0].model_dump(), restored_version=live[1].version)


@router.get("/infra/{service}")
async def get_infra(sandbox: SandboxDep, service: str) -> InfraStatus:
    """The service's infrastructure status and the config version it runs."""
    return infra_of(sandbox, service).as_status()


@effects.post("/infra/{service}/config/revert")
async def revert_infra_config(
    sandbox: SandboxDep, service: str, request: EffectReason = EffectReason()
) -> InfraStatus:
    """Revert the service's infrastructure config to its previous version; 409 when there is none."""
    infra = infra_of(sandbox, service)
    if len(infra.config_versions) < 2:
        raise HTTPException(409, f"{service} has no earlier config to revert to")
    dropped = infra.config_versions.pop()
    # The stand-in's promise: the previous config is the one that worked.
    infra.status, infra.detail = "healthy", f"reverted from {dropped}: {request.reason}".strip(": ")
    return infra.as_status()


@router.get("/external/{service}")
async def get_external(sandbox: SandboxDep, service: str) -> ExternalStatus:
    """The outside services the service depends on, each up, degraded or down."""
    return sandbox.external.setdefault(service, ExternalState(service=service))


@effects.post("/qa/runs")
async def run_qa_gate(sandbox: SandboxDep, body: QaRunBody) -> QaRun:
    """Run the QA gate on a subject (a rollback, a flag, a hotfix build) and answer its verdict."""
    script = sandbox.qa_scripts.get(body.service) or []
    verdict = script.pop(0) if script else Verdict.passed
    run = QaRunRecord(
        id=f"qa-{len(sandbox.qa_runs) + 1}",
        service=body.service,
        subject=body.subject,
        verdict=verdict,
        at=now_iso(),
    )
    sandbox.qa_runs.append(run)
    return run


@effects.post("/hotfix/builds")
async def build_hotfix(sandbox: SandboxDep, body: HotfixBuildBody) -> HotfixBuild:
    """Build a hotfix for the issue; a build that fails is answered with `status` failed, not an error."""
    failures = sandbox.hotfix_failures.get(body.service, 0)
    if failures:
        sandbox.hotfix_failures[body.service] = failures - 1
    number = len(sandbox.hotfix_builds) + 1
    live = next((d for d in deploys_of(sandbox, body.service) if d.status == "live"), None)
    build = HotfixBuildRecord(
        id=f"hotfix-{number}",
        service=body.service,
        issue=body.issue,
        iteration=body.iteration,
        attempt=body.attempt,
        version=f"{live.version if live else '0.0.0'}-hotfix.{number}",
        status="failed" if failures else "succeeded",
        at=now_iso(),
    )
    sandbox.hotfix_builds[build.id] = build
    return build


@effects.post("/hotfix/builds/{build_id}/deploy")
async def deploy_hotfix(sandbox: SandboxDep, build_id: str) -> DeployRecord:
    """Deploy a built hotfix on the expedited path; 409 unless the build succeeded."""
    build = found_or_404(sandbox.hotfix_builds, build_id, f"unknown build {build_id}")
    if build.status != "succeeded":
        raise HTTPException(409, f"build {build_id} is {build.status}; only a succeeded build ships")
    build.status = "deployed"
    deploy = Deploy(id=f"deploy-{build_id}", service=build.service, version=build.version, at=now_iso())
    sandbox.deploys.insert(0, deploy)
    return deploy


router.include_router(effects)
