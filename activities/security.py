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
from temporalio.client import Client

from activities.guardrail import update_guardrail
from activities.heartbeat import heartbeating
from activities.http import M, PlatformHttp
from schemas.actions import AgentAction, AgentState
from schemas.guardrail import KILL_SWITCH_UPDATE, GuardrailLimits, GuardrailState, KillSwitchChange
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
        self._http = PlatformHttp(http)
        self._client = client
        self._task_queue = task_queue
        self._limits_for = limits_for

    @activity.defn(name="security_kill_switch")
    @heartbeating
    async def kill_switch(self, request: KillSwitchRequest) -> KillSwitchResult:
        # The update id is the step's key: a retried activity is answered by Temporal, not flipped twice.
        state = await update_guardrail(
            self._client,
            self._task_queue,
            request.subsystem,
            self._limits_for(request.subsystem),
            KILL_SWITCH_UPDATE,
            KillSwitchChange(
                by=request.by,
                reason=request.reason,
                mode=request.mode,
                enabled=None if request.mode is not None else request.enabled,
            ),
            result_type=GuardrailState,
            refused="the kill switch",
            update_id=request.idempotency_key,
        )
        return KillSwitchResult(
            subsystem=request.subsystem,
            kill_switch=state.kill_switch,
            mode=state.mode,
            changes=state.counters.kill_switch_changes,
        )

    @activity.defn(name="security_revoke_tokens")
    @heartbeating
    async def revoke_tokens(self, request: AgentAction) -> AgentState:
        return await self._agent_effect("revoke-tokens", request, AgentState, "token revocation")

    @activity.defn(name="security_collect_evidence")
    @heartbeating
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
        receipt = await self._http.call(
            "POST",
            "/evidence",
            what=f"storing evidence for {request.incident_id}",
            key=request.idempotency_key,
            body={
                "incident_id": request.incident_id,
                "agent_id": agent_id,
                "cause": cause,
                "impact": impact,
                "events": events,
                "agent_history": agent.get("history", []),
                "calls": calls,
            },
        )
        return EvidenceBundle(
            evidence_id=receipt["evidence_id"],
            events=len(events),
            cause=cause,
            impact=impact,
            tools=tools,
            replayed=bool(receipt.get("replayed", False)),
        )

    @activity.defn(name="security_run_gold_set")
    @heartbeating
    async def run_gold_set(self, request: AgentAction) -> GoldSetRun:
        return await self._agent_effect("gold-set", request, GoldSetRun, "gold set")

    @activity.defn(name="security_publish_postmortem")
    @heartbeating
    async def publish_postmortem(self, request: PostMortemRequest) -> PostMortemReceipt:
        return await self._http.effect(
            "POST",
            "/postmortems",
            key=request.idempotency_key,
            body=request.model_dump(mode="json", exclude={"idempotency_key"}),
            result=PostMortemReceipt,
            what=f"publishing the post-mortem of {request.incident_id}",
        )

    async def _agent_effect(self, verb: str, request: AgentAction, result: type[M], what: str) -> M:
        """A POST of `{"reason": ...}` to `/agents/{agent_id}/{verb}`, named `{what} of agent {agent_id}`."""
        return await self._http.effect(
            "POST",
            f"/agents/{request.agent_id}/{verb}",
            key=request.idempotency_key,
            body={"reason": request.reason},
            result=result,
            what=f"{what} of agent {request.agent_id}",
        )

    async def _get(self, path: str, what: str, params: dict[str, str] | None = None) -> Any:
        return await self._http.call("GET", path, what=what, params=params)
