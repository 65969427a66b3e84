"""The platform client refuses an effect without its idempotency key, before anything is sent.

`IncidentWorkflow.act` sets every request's key from its step; a request built and sent some other way
would carry the empty default, and a retry of it could not be told from a new call at the platform.
"""

from __future__ import annotations

import httpx
import pytest
from temporalio.exceptions import ApplicationError

from activities.http import PlatformHttp
from schemas.agents import AgentAction


def recording_client(sent: list[httpx.Request]) -> httpx.AsyncClient:
    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, json={})

    return httpx.AsyncClient(base_url="http://platform", transport=httpx.MockTransport(answer))


async def test_an_effect_with_an_empty_key_is_refused_naming_the_field_and_never_sent() -> None:
    sent: list[httpx.Request] = []
    request = AgentAction(agent_id="support-bot")  # built outside `act`: the key is the empty default
    async with recording_client(sent) as client:
        with pytest.raises(ApplicationError, match="idempotency_key is empty") as refused:
            await PlatformHttp(client).call(
                "POST", "/agents/support-bot/pause", what="pause", key=request.idempotency_key
            )
    assert refused.value.non_retryable
    assert sent == []


async def test_a_keyed_effect_carries_its_key_and_a_read_carries_none() -> None:
    sent: list[httpx.Request] = []
    async with recording_client(sent) as client:
        http = PlatformHttp(client)
        await http.call("POST", "/agents/support-bot/pause", what="pause", key="incident-x/run/pause")
        await http.call("GET", "/agents/support-bot", what="agent")
    assert [request.headers.get("Idempotency-Key") for request in sent] == ["incident-x/run/pause", None]
