"""The agent platform's activities through the http adapter, against the real sandbox over HTTP.

Token revocation and the gold set each have two activity names, one per runbook that recorded it: both
names are the same adapter call, so each reaches the platform the same way and is applied once per key.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from temporalio.testing import ActivityEnvironment

from activities.adapters import AdapterContext
from activities.agents import AgentActivities
from activities.agents.http import HttpAgents
from activities.http import HttpSettings
from schemas.agents import AgentAction, AgentRollback, CredentialsResult, GoldSetResult
from stanch.tls import default_tls_context
from tests.helpers import get, http_client


@pytest.fixture
async def agents(sandbox_url: str) -> AsyncIterator[AgentActivities]:
    async with httpx.AsyncClient(base_url=sandbox_url, timeout=10, verify=default_tls_context()) as client:
        adapter = HttpAgents(HttpSettings(), AdapterContext(platform_url=sandbox_url, platform_http=client))
        yield AgentActivities(adapter)


def agent_with(sandbox_url: str, *, tokens: list[str], gold_scores: dict[str, float] | None = None) -> str:
    agent_id = f"act-agent-{uuid.uuid4().hex[:8]}"
    spec = {"versions": ["v1", "v2"], "gold_scores": gold_scores or {}}
    http_client.put(f"{sandbox_url}/agents/{agent_id}", json=spec).raise_for_status()
    http_client.put(f"{sandbox_url}/agents/{agent_id}/lifecycle", json={"tokens": tokens}).raise_for_status()
    return agent_id


def keyed_calls(sandbox_url: str, agent_id: str) -> list[dict[str, Any]]:
    """The effects the platform received about the agent (the test's own set-up carries no key)."""
    calls: list[dict[str, Any]] = get(sandbox_url, "/calls", path_prefix=f"/agents/{agent_id}/")
    return [call for call in calls if call["idempotency_key"]]


def calls_about(sandbox_url: str, agent_id: str) -> list[tuple[str, str, str, bool]]:
    calls = keyed_calls(sandbox_url, agent_id)
    return [(c["method"], c["path"], c["idempotency_key"], c["replayed"]) for c in calls]


async def run(activity: Any, request: Any) -> Any:
    return await ActivityEnvironment().run(activity, request)


async def test_both_token_revocations_revoke_the_agents_tokens_once_per_key(
    sandbox_url: str, agents: AgentActivities
) -> None:
    agent_id = agent_with(sandbox_url, tokens=["tok-a", "tok-b"])

    first = await run(agents.security_revoke_tokens, AgentAction(agent_id=agent_id, idempotency_key="sec/1"))
    again = await run(agents.security_revoke_tokens, AgentAction(agent_id=agent_id, idempotency_key="sec/1"))
    later = await run(agents.revoke_tokens, AgentAction(agent_id=agent_id, idempotency_key="term/1"))

    assert first == CredentialsResult(agent_id=agent_id, removed=2)
    assert again == CredentialsResult(agent_id=agent_id, removed=2, replayed=True)
    assert later == CredentialsResult(agent_id=agent_id, removed=0)  # nothing left to revoke
    lifecycle = get(sandbox_url, f"/agents/{agent_id}/lifecycle")
    assert (lifecycle["tokens"], lifecycle["revoked_tokens"]) == ([], ["tok-a", "tok-b"])
    path = f"/agents/{agent_id}/tokens"
    assert calls_about(sandbox_url, agent_id) == [
        ("DELETE", path, "sec/1", False),
        ("DELETE", path, "sec/1", True),
        ("DELETE", path, "term/1", False),
    ]


async def test_both_gold_set_names_run_the_same_gold_set(sandbox_url: str, agents: AgentActivities) -> None:
    agent_id = agent_with(sandbox_url, tokens=[], gold_scores={"v2": 0.5})

    onboarding = await run(agents.run_gold_set, AgentAction(agent_id=agent_id, idempotency_key="on/1"))
    security = await run(
        agents.security_run_gold_set, AgentAction(agent_id=agent_id, idempotency_key="sec/1")
    )

    assert (
        onboarding
        == security
        == GoldSetResult(agent_id=agent_id, version="v2", score=0.5, threshold=0.8, passed=False)
    )
    path = f"/agents/{agent_id}/gold-set"
    assert calls_about(sandbox_url, agent_id) == [
        ("POST", path, "on/1", False),
        ("POST", path, "sec/1", False),
    ]


async def test_a_rollback_without_a_version_sends_none_and_goes_back_one(
    sandbox_url: str, agents: AgentActivities
) -> None:
    agent_id = agent_with(sandbox_url, tokens=[])
    rolled = await run(agents.rollback_agent, AgentRollback(agent_id=agent_id, idempotency_key="rb/1"))
    assert (rolled.version, rolled.previous_version) == ("v1", "v2")
    [call] = keyed_calls(sandbox_url, agent_id)
    assert call["body"] == {"reason": ""}  # the platform picks the version, not a null sent for it


def test_results_recorded_before_the_merge_still_decode() -> None:
    # Replaying a recorded history decodes each activity's result into the model the code declares now.
    revoked_by_security = {"agent_id": "a", "state": "active", "version": "v3", "replayed": False}
    assert CredentialsResult.model_validate(revoked_by_security).removed == 0
    security_gold_set = {"agent_id": "a", "version": "v2", "score": 0.9, "threshold": 0.8, "passed": True}
    onboarding_gold_set = {**security_gold_set, "state": "paused", "previous_version": "v1"}
    assert GoldSetResult.model_validate(security_gold_set) == GoldSetResult.model_validate(
        onboarding_gold_set
    )
