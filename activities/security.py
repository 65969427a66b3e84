"""Effects of a security incident: the guardrail kill switch, token revocation, evidence, gold set, post-mortem.

The kill switch is the guardrail's `set_kill_switch` update, sent the way `activities/guardrail.py` asks a
guardrail: one update-with-start that starts the subsystem's guardrail if it is not running. The update id
is the step's idempotency key, so a retried activity is answered by Temporal instead of flipping twice.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx
from temporalio import activity
from temporalio.client import Client, WithStartWorkflowOperation, WorkflowUpdateFailedError
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.exceptions import ApplicationError

from activities.errors import raise_for_status
from schemas.actions import AgentAction, AgentState
from schemas.guardrail import (
    GUARDRAIL_WORKFLOW,
    KILL_SWITCH_UPDATE,
    GuardrailInput,
    GuardrailLimits,
    GuardrailState,
    KillSwitchChange,
    guardrail_workflow_id,
)
from schemas.security import (
    EvidenceBundle,
    EvidenceRequest,
    GoldSetRun,
    KillSwitchRequest,
    KillSwitchResult,
    PostMortemReceipt,
    PostMortemRequest,
)


class SecurityActivities:
    """Built once in the worker: the platform client, and the Temporal client + queue the guardrails run on."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        client: Client,
        task_queue: str,
        limits_for: Callable[[str], GuardrailLimits] = lambda subsystem: GuardrailLimits(),
    ) -> None:
        self._http = http
        self._client = client
        self._task_queue = task_queue
        self._limits_for = limits_for

    @activity.defn(name="security_kill_switch")
    async def kill_switch(self, request: KillSwitchRequest) -> KillSwitchResult:
        workflow_id = guardrail_workflow_id(request.subsystem)
        start: WithStartWorkflowOperation[Any, Any] = WithStartWorkflowOperation(
            GUARDRAIL_WORKFLOW,
            GuardrailInput(subsystem=request.subsystem, limits=self._limits_for(request.subsystem)),
            id=workflow_id,
            task_queue=self._task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            static_summary=f"Guardrail for {request.subsystem}",
        )
        try:
            state: GuardrailState = await self._client.execute_update_with_start_workflow(
                KILL_SWITCH_UPDATE,
                KillSwitchChange(by=request.by, enabled=request.enabled, reason=request.reason),
                start_workflow_operation=start,
                id=request.idempotency_key,
                result_type=GuardrailState,
            )
        except WorkflowUpdateFailedError as error:
            raise ApplicationError(
                f"guardrail {workflow_id} refused the kill switch: {error.cause}",
                type="GuardrailRefused",
                non_retryable=True,
            ) from error
        return KillSwitchResult(
            subsystem=request.subsystem,
            kill_switch=state.kill_switch,
            changes=state.counters.kill_switch_changes,
        )

    @activity.defn(name="security_revoke_tokens")
    async def revoke_tokens(self, request: AgentAction) -> AgentState:
        response = await self._http.post(
            f"/agents/{request.agent_id}/revoke-tokens",
            json={"reason": request.reason},
            headers={"Idempotency-Key": request.idempotency_key},
        )
        raise_for_status(response, f"token revocation of agent {request.agent_id}")
        return AgentState.model_validate(response.json())

    @activity.defn(name="security_collect_evidence")
    async def collect_evidence(self, request: EvidenceRequest) -> EvidenceBundle:
        """Gather the agent's history, its security events and every call made about it; store the bundle."""
        agent_id = request.agent_id
        agent = await self._get(f"/agents/{agent_id}", f"reading agent {agent_id}")
        events: list[dict[str, Any]] = await self._get(
            f"/agents/{agent_id}/security-events", f"reading security events of {agent_id}"
        )
        calls: list[dict[str, Any]] = await self._get(
            "/calls", f"reading calls about {agent_id}", params={"path_prefix": f"/agents/{agent_id}/"}
        )
        kinds = Counter(str(event.get("kind", "")) for event in events)
        cause = kinds.most_common(1)[0][0] if kinds else (request.kind or "unknown")
        tools = sorted({str(event["tool"]) for event in events if event.get("tool")})
        impact = f"{len(events)} suspicious event(s) on agent {agent_id} ({agent.get('version', '?')})" + (
            f"; tools touched: {', '.join(tools)}" if tools else "; no tool use recorded"
        )
        response = await self._http.post(
            "/evidence",
            json={
                "incident_id": request.incident_id,
                "agent_id": agent_id,
                "cause": cause,
                "impact": impact,
                "events": events,
                "agent_history": agent.get("history", []),
                "calls": calls,
            },
            headers={"Idempotency-Key": request.idempotency_key},
        )
        raise_for_status(response, f"storing evidence for {request.incident_id}")
        receipt = response.json()
        return EvidenceBundle(
            evidence_id=receipt["evidence_id"],
            events=len(events),
            cause=cause,
            impact=impact,
            tools=tools,
            replayed=bool(receipt.get("replayed", False)),
        )

    @activity.defn(name="security_run_gold_set")
    async def run_gold_set(self, request: AgentAction) -> GoldSetRun:
        response = await self._http.post(
            f"/agents/{request.agent_id}/gold-set",
            json={"reason": request.reason},
            headers={"Idempotency-Key": request.idempotency_key},
        )
        raise_for_status(response, f"gold set of agent {request.agent_id}")
        return GoldSetRun.model_validate(response.json())

    @activity.defn(name="security_publish_postmortem")
    async def publish_postmortem(self, request: PostMortemRequest) -> PostMortemReceipt:
        response = await self._http.post(
            "/postmortems",
            json=request.model_dump(mode="json", exclude={"idempotency_key"}),
            headers={"Idempotency-Key": request.idempotency_key},
        )
        raise_for_status(response, f"publishing the post-mortem of {request.incident_id}")
        return PostMortemReceipt.model_validate(response.json())

    async def _get(self, path: str, what: str, params: dict[str, str] | None = None) -> Any:
        response = await self._http.get(path, params=params)
        raise_for_status(response, what)
        return response.json()
