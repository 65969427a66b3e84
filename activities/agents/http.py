"""The agent platform over the documented HTTP contract: `/agents/{agent_id}/...`, `/evidence`, `/usage`
(docs/platform-openapi.json), as the sandbox implements it.

Effects carry the request's idempotency key; reads carry none.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from pydantic import BaseModel, TypeAdapter

from activities.agents.interface import Agents
from activities.http import HttpConnection, M
from schemas.agents import (
    AgentAction,
    AgentArchive,
    AgentReason,
    AgentRecord,
    AgentRollback,
    AgentState,
    AgentUsage,
    ArchiveCheck,
    ArchiveResult,
    ConfigBody,
    ConfigRequest,
    ConfigResult,
    CredentialsResult,
    DebugResult,
    Dependents,
    DiffRequest,
    EvidenceBody,
    EvidenceBundle,
    EvidenceReceipt,
    EvidenceRequest,
    FleetUsage,
    GoldSetResult,
    HealthResult,
    NoticeBody,
    NoticeRequest,
    NoticeResult,
    RestoreRequest,
    RestoreResult,
    RetentionBody,
    RetentionRequest,
    RetentionResult,
    RollbackBody,
    SecurityEvent,
    SnapshotResult,
    UsageQuery,
    VersionDiff,
    WorkspaceBody,
    WorkspaceRequest,
    WorkspaceResult,
)

SECURITY_EVENTS = TypeAdapter(list[SecurityEvent])
USAGE = TypeAdapter(list[AgentUsage])


class HttpAgents(HttpConnection, Agents):
    """The agent platform at the platform's base URL."""

    async def _send(
        self,
        method: str,
        verb: str,
        request: AgentAction,
        result: type[M],
        what: str,
        body: BaseModel | None = None,
    ) -> M:
        """An effect on `/agents/{agent_id}/{verb}`, named `{what} of agent {agent_id}`."""
        return await self._http.effect(
            method,
            f"/agents/{request.agent_id}/{verb}",
            key=request.idempotency_key,
            # An unset optional field is left out, so the platform applies its own default.
            body=None if body is None else body.model_dump(mode="json", exclude_none=True),
            result=result,
            what=f"{what} of agent {request.agent_id}",
        )

    async def _post(self, verb: str, request: AgentAction, result: type[M], what: str) -> M:
        """A POST of `{"reason": ...}` to `/agents/{agent_id}/{verb}`."""
        return await self._send("POST", verb, request, result, what, AgentReason(reason=request.reason))

    async def _get(self, path: str, what: str, params: dict[str, str] | None = None) -> Any:
        return await self._http.call("GET", path, what=what, params=params)

    # ---- reads ------------------------------------------------------------------------------------------

    async def health(self, request: AgentAction) -> HealthResult:
        path = f"/agents/{request.agent_id}/health"
        return await self._http.read(path, HealthResult, f"health of agent {request.agent_id}")

    async def version_diff(self, request: DiffRequest) -> VersionDiff:
        return await self._http.read(
            f"/agents/{request.agent_id}/versions/diff",
            VersionDiff,
            f"diff of agent {request.agent_id} to {request.to_version}",
            params={"to_version": request.to_version},
        )

    async def verify_archive(self, request: ArchiveCheck) -> ArchiveResult:
        archive = await self._http.read(
            f"/agents/{request.agent_id}/archives/{request.archive_id}",
            AgentArchive,
            f"archive {request.archive_id} of agent {request.agent_id}",
        )
        return ArchiveResult(
            agent_id=request.agent_id,
            archive_id=archive.archive_id,
            files=len(archive.workspace),
            memory_items=len(archive.memory),
            log_entries=len(archive.logs),
        )

    async def dependents(self, request: AgentAction) -> Dependents:
        listed = await self._get(
            f"/agents/{request.agent_id}/dependents", f"dependents of agent {request.agent_id}"
        )
        return Dependents(agent_id=request.agent_id, dependents=list(listed))

    async def fleet_usage(self, request: UsageQuery) -> FleetUsage:
        if not request.agent_ids:
            return FleetUsage(agents=USAGE.validate_python(await self._get("/usage", "reading fleet usage")))
        agents = []
        for agent_id in request.agent_ids:
            path = f"/agents/{agent_id}/usage"
            agents.append(await self._http.read(path, AgentUsage, f"reading usage of {agent_id}"))
        return FleetUsage(agents=agents)

    # ---- stop and roll back -----------------------------------------------------------------------------

    async def pause(self, request: AgentAction) -> AgentState:
        return await self._post("pause", request, AgentState, "pause")

    async def resume(self, request: AgentAction) -> AgentState:
        return await self._post("resume", request, AgentState, "activation")

    async def rollback(self, request: AgentRollback) -> AgentState:
        # Without `to_version` the platform picks the version before the current one.
        body = RollbackBody(reason=request.reason, to_version=request.to_version)
        return await self._send("POST", "rollback", request, AgentState, "rollback", body)

    async def revoke_tokens(self, request: AgentAction) -> CredentialsResult:
        return await self._send("DELETE", "tokens", request, CredentialsResult, "token revocation")

    async def run_gold_set(self, request: AgentAction) -> GoldSetResult:
        return await self._post("gold-set", request, GoldSetResult, "gold set")

    # ---- onboarding -------------------------------------------------------------------------------------

    async def create_workspace(self, request: WorkspaceRequest) -> WorkspaceResult:
        body = WorkspaceBody(files=request.files)
        return await self._send("PUT", "workspace", request, WorkspaceResult, "workspace", body)

    async def inject_config(self, request: ConfigRequest) -> ConfigResult:
        body = ConfigBody(version=request.version, config=request.config, reason=request.reason)
        return await self._send("PUT", "config", request, ConfigResult, "config", body)

    async def debug(self, request: AgentAction) -> DebugResult:
        return await self._post("debug", request, DebugResult, "debug")

    # ---- upgrade ----------------------------------------------------------------------------------------

    async def snapshot_state(self, request: AgentAction) -> SnapshotResult:
        return await self._post("snapshots", request, SnapshotResult, "snapshot")

    async def restore_snapshot(self, request: RestoreRequest) -> RestoreResult:
        verb = f"snapshots/{request.snapshot_id}/restore"
        return await self._post(verb, request, RestoreResult, "restore")

    # ---- termination ------------------------------------------------------------------------------------

    async def archive(self, request: AgentAction) -> ArchiveResult:
        return await self._post("archives", request, ArchiveResult, "archive")

    async def terminate(self, request: AgentAction) -> AgentState:
        return await self._post("terminate", request, AgentState, "termination")

    async def delete_secrets(self, request: AgentAction) -> CredentialsResult:
        return await self._send("DELETE", "secrets", request, CredentialsResult, "secret deletion")

    async def set_retention(self, request: RetentionRequest) -> RetentionResult:
        body = RetentionBody(archive_id=request.archive_id, until=request.until.isoformat())
        return await self._send("PUT", "retention", request, RetentionResult, "retention", body)

    async def notify_dependent(self, request: NoticeRequest) -> NoticeResult:
        body = NoticeBody(from_agent=request.from_agent, text=request.text)
        return await self._http.effect(
            "POST",
            f"/agents/{request.agent_id}/notices",
            key=request.idempotency_key,
            body=body.model_dump(mode="json"),
            result=NoticeResult,
            what=f"notice to agent {request.agent_id}",
        )

    # ---- security ---------------------------------------------------------------------------------------

    async def collect_evidence(self, request: EvidenceRequest) -> EvidenceBundle:
        agent_id = request.agent_id
        agent = await self._http.read(f"/agents/{agent_id}", AgentRecord, f"reading agent {agent_id}")
        events = SECURITY_EVENTS.validate_python(
            await self._get(f"/agents/{agent_id}/security-events", f"reading security events of {agent_id}")
        )
        calls: list[dict[str, Any]] = await self._get(
            f"/agents/{agent_id}/access-log", f"reading the access log of {agent_id}"
        )
        kinds = Counter(event.kind for event in events)
        cause = kinds.most_common(1)[0][0] if kinds else (request.kind or "unknown")
        tools = sorted({event.tool for event in events if event.tool})
        impact = f"{len(events)} suspicious event(s) on agent {agent_id} ({agent.version})" + (
            f"; tools touched: {', '.join(tools)}" if tools else "; no tool use recorded"
        )
        body = EvidenceBody(
            incident_id=request.incident_id,
            agent_id=agent_id,
            cause=cause,
            impact=impact,
            events=events,
            agent_history=[entry.model_dump(mode="json") for entry in agent.history],
            calls=calls,
        )
        receipt = await self._http.effect(
            "POST",
            "/evidence",
            key=request.idempotency_key,
            body=body.model_dump(mode="json"),
            result=EvidenceReceipt,
            what=f"storing evidence for {request.incident_id}",
        )
        return EvidenceBundle(
            evidence_id=receipt.evidence_id,
            events=len(events),
            cause=cause,
            impact=impact,
            tools=tools,
            replayed=receipt.replayed,
        )
