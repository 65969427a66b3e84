"""Actions on the operator's agent platform (the sandbox platform in dev and tests)."""

from __future__ import annotations

import httpx
from temporalio import activity

from activities.heartbeat import heartbeating
from activities.http import PlatformHttp
from schemas.actions import AgentAction, AgentState


class PlatformActivities:
    """Built once in the worker; every call carries the idempotency key the workflow chose."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self._http = PlatformHttp(client)

    async def _agent_call(self, verb: str, request: AgentAction) -> AgentState:
        body: dict[str, str] = {"reason": request.reason}
        if request.to_version:
            body["to_version"] = request.to_version
        return await self._http.effect(
            "POST",
            f"/agents/{request.agent_id}/{verb}",
            key=request.idempotency_key,
            body=body,
            result=AgentState,
            what=f"{verb} of agent {request.agent_id}",
        )

    @activity.defn(name="pause_agent")
    @heartbeating
    async def pause_agent(self, request: AgentAction) -> AgentState:
        return await self._agent_call("pause", request)

    @activity.defn(name="rollback_agent")
    @heartbeating
    async def rollback_agent(self, request: AgentAction) -> AgentState:
        return await self._agent_call("rollback", request)
