"""Test set-up and inspection: the `PUT` routes that put a fake system into the state a test or demo needs,
and the `GET` routes that show a test what no runbook reads (a runtime's whole state, the flags, the QA runs
and hotfix builds so far).

No runbook performs them, so they need no `Idempotency-Key` and are not part of the platform contract
(docs/platform-openapi.json leaves them out)."""

from __future__ import annotations

from fastapi import APIRouter

from schemas.flags import FlagState
from workers.sandbox.common import now_iso
from workers.sandbox.dependencies import SandboxDep
from workers.sandbox.models.agent_lifecycle import AgentLifecycle, AgentLifecycleSetup
from workers.sandbox.models.agents import Agent, AgentSpec, new_agent
from workers.sandbox.models.chat import ChatStatus, ChatStatusUpdate
from workers.sandbox.models.chat_channels import ChatChannel, ChatChannelSpec, new_chat_channel
from workers.sandbox.models.databases import DatabaseSpec, ServiceDatabase
from workers.sandbox.models.deploys import (
    Deploy,
    ExternalState,
    ExternalUpdate,
    HotfixBuildRecord,
    HotfixScript,
    InfraState,
    InfraUpdate,
    QaRunRecord,
    QaScript,
    ServiceDeploysSpec,
)
from workers.sandbox.models.gateway import GatewayRuntime, GatewayRuntimeSpec, new_runtime
from workers.sandbox.models.security import SecurityEvent
from workers.sandbox.models.usage import AgentUsage, AgentUsageUpdate
from workers.sandbox.routers.agent_lifecycle import lifecycle_of
from workers.sandbox.routers.deploys import deploys_of, infra_of
from workers.sandbox.routers.gateway import runtime_of

# Setting up a scenario: not an effect a runbook performs, so no key is needed.
router = APIRouter()


@router.put("/agents/{agent_id}")
async def put_agent(sandbox: SandboxDep, agent_id: str, spec: AgentSpec) -> Agent:
    sandbox.agents[agent_id] = new_agent(agent_id, spec)
    return sandbox.agents[agent_id]


@router.put("/agents/{agent_id}/lifecycle")
async def put_agent_lifecycle(
    sandbox: SandboxDep, agent_id: str, setup: AgentLifecycleSetup
) -> AgentLifecycle:
    lifecycle = lifecycle_of(sandbox, agent_id)
    for name, value in setup.model_dump(exclude_unset=True).items():
        setattr(lifecycle, name, value)
    return lifecycle


@router.put("/chat/status")
async def put_chat_status(sandbox: SandboxDep, update: ChatStatusUpdate) -> ChatStatus:
    sandbox.chat_status = sandbox.chat_status.model_copy(update=update.model_dump(exclude_unset=True))
    return sandbox.chat_status


@router.put("/chat/channels/{name}")
async def put_chat_channel(sandbox: SandboxDep, name: str, spec: ChatChannelSpec) -> ChatChannel:
    sandbox.chat_channels[name] = new_chat_channel(name, spec)
    return sandbox.chat_channels[name]


@router.put("/deploys/services/{service}")
async def put_service_deploys(sandbox: SandboxDep, service: str, spec: ServiceDeploysSpec) -> list[Deploy]:
    others = [deploy for deploy in sandbox.deploys if deploy.service != service]
    mine = [
        Deploy(id=f"deploy-{service}-{index + 1}", service=service, version=version, at=now_iso())
        for index, version in enumerate(spec.versions)
    ]
    sandbox.deploys = [*reversed(mine), *others]
    return deploys_of(sandbox, service)


@router.put("/infra/{service}")
async def put_infra(sandbox: SandboxDep, service: str, update: InfraUpdate) -> InfraState:
    infra = infra_of(sandbox, service)
    sandbox.infra[service] = infra.model_copy(update=update.model_dump(exclude_unset=True))
    return sandbox.infra[service]


@router.put("/external/{service}")
async def put_external(sandbox: SandboxDep, service: str, update: ExternalUpdate) -> ExternalState:
    sandbox.external[service] = ExternalState(service=service, dependencies=update.dependencies)
    return sandbox.external[service]


@router.put("/qa/script")
async def put_qa_script(sandbox: SandboxDep, script: QaScript) -> QaScript:
    sandbox.qa_scripts[script.service] = list(script.verdicts)
    return script


@router.get("/qa/runs")
async def list_qa_runs(sandbox: SandboxDep, service: str = "") -> list[QaRunRecord]:
    return [run for run in sandbox.qa_runs if not service or run.service == service]


@router.put("/hotfix/script")
async def put_hotfix_script(sandbox: SandboxDep, script: HotfixScript) -> HotfixScript:
    sandbox.hotfix_failures[script.service] = script.failures
    return script


@router.get("/hotfix/builds")
async def list_hotfix_builds(sandbox: SandboxDep, service: str = "") -> list[HotfixBuildRecord]:
    return [build for build in sandbox.hotfix_builds.values() if not service or build.service == service]


@router.get("/flags")
async def list_flags(sandbox: SandboxDep) -> list[FlagState]:
    return [FlagState(name=name, enabled=enabled) for name, enabled in sandbox.flags.items()]


@router.put("/databases/{service}")
async def put_database(sandbox: SandboxDep, service: str, spec: DatabaseSpec) -> ServiceDatabase:
    sandbox.databases[service] = ServiceDatabase(
        service=service,
        migrations=list(spec.migrations),
        rows=spec.rows,
        backup_verifies=spec.backup_verifies,
        integrity_ok=spec.integrity_ok,
    )
    return sandbox.databases[service]


@router.put("/runtimes/{name}")
async def put_runtime(sandbox: SandboxDep, name: str, spec: GatewayRuntimeSpec) -> GatewayRuntime:
    sandbox.gateway_runtimes[name] = new_runtime(name, spec)
    return sandbox.gateway_runtimes[name]


@router.get("/runtimes/{name}")
async def get_runtime(sandbox: SandboxDep, name: str) -> GatewayRuntime:
    # The whole state, the scenario's own fields included; the contract's read is `/runtimes/{name}/status`.
    return runtime_of(sandbox, name)


@router.put("/agents/{agent_id}/security-events")
async def put_security_events(
    sandbox: SandboxDep, agent_id: str, events: list[SecurityEvent]
) -> list[SecurityEvent]:
    sandbox.agent(agent_id)
    sandbox.security_events[agent_id] = events
    return events


@router.put("/agents/{agent_id}/usage")
async def put_usage(sandbox: SandboxDep, agent_id: str, update: AgentUsageUpdate) -> AgentUsage:
    sandbox.agent(agent_id)
    current = sandbox.usage.get(agent_id, AgentUsage(agent_id=agent_id))
    sandbox.usage[agent_id] = current.model_copy(update=update.model_dump(exclude_unset=True))
    return sandbox.usage[agent_id]
