"""The sandbox platform is the evidence other tests rely on: its call log and idempotency must be exact."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from stanch.tls import default_tls_context
from workers.sandbox import create_app


@pytest.fixture
async def sandbox() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        verify=default_tls_context(),
        transport=httpx.ASGITransport(app=create_app()),
        base_url="http://sandbox",
    ) as client:
        yield client


async def post(
    client: httpx.AsyncClient, path: str, key: str | None, body: dict[str, Any] | None = None
) -> httpx.Response:
    headers = {"Idempotency-Key": key} if key else {}
    return await client.post(path, json=body if body is not None else {}, headers=headers)


async def agent(client: httpx.AsyncClient, agent_id: str) -> dict[str, Any]:
    response = await client.get(f"/agents/{agent_id}")
    assert response.status_code == 200
    result: dict[str, Any] = response.json()
    return result


def events(agent_view: dict[str, Any], event: str) -> list[dict[str, Any]]:
    return [entry for entry in agent_view["history"] if entry["event"] == event]


async def test_health_and_seeded_demo_agent(sandbox: httpx.AsyncClient) -> None:
    assert (await sandbox.get("/healthz")).json() == {"ok": True}
    bot = await agent(sandbox, "support-bot")
    assert (bot["state"], bot["version"], bot["versions"]) == ("active", "v3", ["v1", "v2", "v3"])
    assert (await sandbox.get("/chat/status")).json()["provider_status"] == "up"


async def test_pause_then_get_shows_paused(sandbox: httpx.AsyncClient) -> None:
    response = await post(sandbox, "/agents/support-bot/pause", "pause-1", {"reason": "leaking PII"})
    assert response.status_code == 200
    assert response.json()["state"] == "paused"
    assert response.json()["replayed"] is False

    bot = await agent(sandbox, "support-bot")
    assert bot["state"] == "paused"
    assert [entry["reason"] for entry in events(bot, "paused")] == ["leaking PII"]


async def test_repeated_key_is_applied_once_and_answered_as_replay(sandbox: httpx.AsyncClient) -> None:
    # Rollback, unlike pause, moves further on every application, so a double apply would show.
    first = await post(sandbox, "/agents/support-bot/rollback", "rb-1")
    second = await post(sandbox, "/agents/support-bot/rollback", "rb-1")

    assert first.status_code == second.status_code == 200
    assert first.json()["replayed"] is False
    assert second.json() == {**first.json(), "replayed": True}
    bot = await agent(sandbox, "support-bot")
    assert bot["version"] == "v2"
    assert len(events(bot, "rolled_back")) == 1
    count = await sandbox.get(
        "/calls/count", params={"path": "/agents/support-bot/rollback", "method": "POST"}
    )
    assert count.json() == {"applied": 1, "replayed": 1}
    calls = (await sandbox.get("/calls", params={"path_prefix": "/agents/"})).json()
    assert [(call["idempotency_key"], call["replayed"]) for call in calls] == [
        ("rb-1", False),
        ("rb-1", True),
    ]


async def test_same_key_on_another_path_is_a_different_call(sandbox: httpx.AsyncClient) -> None:
    await post(sandbox, "/agents/support-bot/pause", "step-1")
    resumed = await post(sandbox, "/agents/support-bot/resume", "step-1")
    assert resumed.json()["replayed"] is False
    assert (await agent(sandbox, "support-bot"))["state"] == "active"


async def test_concurrent_deliveries_of_one_key_apply_once(sandbox: httpx.AsyncClient) -> None:
    responses = await asyncio.gather(
        *(post(sandbox, "/agents/support-bot/snapshots", "snap-1") for _ in range(5))
    )
    assert {response.json()["snapshot_id"] for response in responses} == {"support-bot-state-1"}
    assert sorted(response.json()["replayed"] for response in responses) == [False, True, True, True, True]
    assert len(events(await agent(sandbox, "support-bot"), "state_snapshot")) == 1


async def test_rollback_goes_to_previous_version_and_refuses_without_one(sandbox: httpx.AsyncClient) -> None:
    created = await sandbox.put("/agents/fresh", json={"versions": ["v1", "v2"], "state": "active"})
    assert created.status_code == 200
    assert (created.json()["version"], created.json()["previous_version"]) == ("v2", "v1")

    rolled = await post(sandbox, "/agents/fresh/rollback", "fresh-rb-1", {"reason": "bad answers"})
    assert rolled.status_code == 200
    assert (rolled.json()["version"], rolled.json()["previous_version"]) == ("v1", "v2")
    fresh = await agent(sandbox, "fresh")
    assert [(entry["version"], entry["reason"]) for entry in events(fresh, "rolled_back")] == [
        ("v1", "bad answers")
    ]

    refused = await post(sandbox, "/agents/fresh/rollback", "fresh-rb-2")
    assert refused.status_code == 409
    assert "earliest version v1" in refused.json()["detail"]
    assert (await agent(sandbox, "fresh"))["version"] == "v1"


async def test_rollback_to_a_named_version(sandbox: httpx.AsyncClient) -> None:
    rolled = await post(sandbox, "/agents/support-bot/rollback", "rb-to-v1", {"to_version": "v1"})
    assert rolled.json()["version"] == "v1"
    unknown = await post(sandbox, "/agents/support-bot/rollback", "rb-to-v9", {"to_version": "v9"})
    assert unknown.status_code == 409


async def test_missing_idempotency_key_is_refused_and_logged(sandbox: httpx.AsyncClient) -> None:
    response = await post(sandbox, "/agents/support-bot/pause", None)
    assert response.status_code == 400
    assert response.json() == {"detail": "Idempotency-Key header is required"}
    assert (await agent(sandbox, "support-bot"))["state"] == "active"
    calls = (await sandbox.get("/calls")).json()
    assert [(call["path"], call["status_code"]) for call in calls] == [("/agents/support-bot/pause", 400)]


async def test_unknown_agent_is_404(sandbox: httpx.AsyncClient) -> None:
    assert (await sandbox.get("/agents/ghost")).json() == {"detail": "unknown agent ghost"}
    response = await post(sandbox, "/agents/ghost/pause", "ghost-1")
    assert response.status_code == 404
    assert response.json() == {"detail": "unknown agent ghost"}

    # A refusal is not the key's answer: once the agent exists, the same key is applied for real.
    await sandbox.put("/agents/ghost", json={"versions": ["v1"]})
    retried = await post(sandbox, "/agents/ghost/pause", "ghost-1")
    assert (retried.status_code, retried.json()["state"], retried.json()["replayed"]) == (
        200,
        "paused",
        False,
    )


async def test_injected_faults_are_not_applied_and_the_retry_applies_once(sandbox: httpx.AsyncClient) -> None:
    fault = await sandbox.post("/faults", json={"path_prefix": "/agents/", "status": 500, "times": 2})
    assert fault.status_code == 200

    statuses = [
        (await post(sandbox, "/agents/support-bot/rollback", "rb-chaos")).status_code for _ in range(3)
    ]
    assert statuses == [500, 500, 200]
    replay = await post(sandbox, "/agents/support-bot/rollback", "rb-chaos")
    assert replay.json()["replayed"] is True

    bot = await agent(sandbox, "support-bot")
    assert bot["version"] == "v2"
    assert len(events(bot, "rolled_back")) == 1
    calls = (await sandbox.get("/calls", params={"path_prefix": "/agents/support-bot/rollback"})).json()
    assert [(call["status_code"], call["replayed"]) for call in calls] == [
        (500, False),
        (500, False),
        (200, False),
        (200, True),
    ]


async def test_faults_match_by_prefix_and_can_be_cleared(sandbox: httpx.AsyncClient) -> None:
    status = "/runtimes/openclaw-gateway/status"
    await sandbox.post("/faults", json={"path_prefix": "/runtimes/", "status": 503, "times": 5})
    assert (await sandbox.get(status)).status_code == 503
    assert (await sandbox.get("/agents/support-bot")).status_code == 200
    await sandbox.delete("/faults")
    assert (await sandbox.get(status)).status_code == 200


async def test_a_hanging_fault_holds_only_its_own_path(sandbox: httpx.AsyncClient) -> None:
    await sandbox.post("/faults", json={"path_prefix": "/chat", "status": 504, "hang_seconds": 0.5})
    hanging = asyncio.create_task(sandbox.get("/chat/messages"))
    # Other paths keep answering while the hanging request is held.
    assert (await sandbox.get("/agents/support-bot")).status_code == 200
    assert not hanging.done()
    assert (await hanging).status_code == 504
    assert (await sandbox.get("/chat/messages")).status_code == 200  # one time only, then healthy


async def test_an_apply_first_fault_applies_the_call_and_holds_only_its_answer(
    sandbox: httpx.AsyncClient,
) -> None:
    path = "/agents/support-bot/pause"
    await sandbox.post("/faults", json={"path_prefix": path, "hang_seconds": 0.5, "apply_first": True})
    key = {"Idempotency-Key": "slow-pause"}
    held = asyncio.create_task(sandbox.post(path, json={"reason": "r"}, headers=key))
    while (await sandbox.get("/agents/support-bot")).json()["state"] != "paused":
        assert not held.done()
        await asyncio.sleep(0.01)
    # The caller still waits although the pause happened; its retry is a replay, not a second pause.
    assert not held.done()
    assert (await held).status_code == 200
    assert (await sandbox.post(path, json={"reason": "r"}, headers=key)).json()["replayed"] is True
    assert (await sandbox.get("/calls/count", params={"path": path})).json() == {"applied": 1, "replayed": 1}


async def test_chat_message_is_stored_once_under_a_repeated_key(sandbox: httpx.AsyncClient) -> None:
    body = {"channel": "on-call", "severity": "P1", "title": "Agent paused", "text": "…", "recipient": None}
    first = await sandbox.post("/chat/messages", json=body, headers={"Idempotency-Key": "msg-1"})
    second = await sandbox.post("/chat/messages", json=body, headers={"Idempotency-Key": "msg-1"})
    other = await sandbox.post("/chat/messages", json=body, headers={"Idempotency-Key": "msg-2"})

    assert first.status_code == second.status_code == 201
    assert (first.json(), second.json()) == ({"id": 1, "replayed": False}, {"id": 1, "replayed": True})
    assert other.json()["id"] == 2
    stored = (await sandbox.get("/chat/messages")).json()
    assert [(message["idempotency_key"], message["body"]) for message in stored] == [
        ("msg-1", body),
        ("msg-2", body),
    ]


async def test_safe_restart_lowers_memory_once_per_key_and_needs_a_reason(sandbox: httpx.AsyncClient) -> None:
    await sandbox.put("/runtimes/gw", json={"memory_mb": 2000, "unhealthy_checks_after_restart": 0})
    path, why = "/runtimes/gw/safe-restart", {"reason": "memory at 130 %"}

    assert (await post(sandbox, path, "restart-0")).status_code == 422  # no documented reason
    restarted = await post(sandbox, path, "restart-1", why)
    again = await post(sandbox, path, "restart-1", why)

    assert (restarted.json()["memory_before_mb"], restarted.json()["memory_mb"]) == (2000, 800)
    assert again.json() == {**restarted.json(), "replayed": True}
    gateway = (await sandbox.get("/runtimes/gw")).json()
    assert (gateway["memory_mb"], gateway["healthy"], gateway["restarts"]) == (800, True, 1)
    status = (await sandbox.get("/runtimes/gw/status")).json()
    assert (status["memory_ratio"], status["restarts"]) == (round(800 / 1536, 4), 1)


async def test_service_rollback_and_flags(sandbox: httpx.AsyncClient) -> None:
    service = "support-bot-api"  # seeded with two live deploys, 1.41.3 then 1.42.0
    path = f"/deploys/services/{service}/rollback"
    rolled = await post(sandbox, path, "deploy-rb-1", {"reason": "errors since 1.42.0"})
    assert (rolled.json()["version"], rolled.json()["status"]) == ("1.42.0", "rolled_back")
    assert rolled.json()["restored_version"] == "1.41.3"
    mine = [d for d in (await sandbox.get("/deploys")).json() if d["service"] == service]
    assert [(d["version"], d["status"]) for d in mine] == [("1.42.0", "rolled_back"), ("1.41.3", "live")]
    # Nothing earlier is live any more: a second rollback (a new key) is refused, not applied.
    assert (await post(sandbox, path, "deploy-rb-2")).status_code == 409

    flag = await sandbox.put(
        "/flags/agent-tool-calls", json={"enabled": False}, headers={"Idempotency-Key": "f1"}
    )
    assert flag.json() == {"name": "agent-tool-calls", "enabled": False, "replayed": False}
    assert (await sandbox.get("/flags")).json()[0]["enabled"] is False


async def test_gold_set_scores_the_current_version(sandbox: httpx.AsyncClient) -> None:
    await sandbox.put("/agents/graded", json={"versions": ["v1", "v2"], "gold_scores": {"v2": 0.4}})
    failing = (await post(sandbox, "/agents/graded/gold-set", "gold-1")).json()
    await post(sandbox, "/agents/graded/rollback", "graded-rb")
    passing = (await post(sandbox, "/agents/graded/gold-set", "gold-2")).json()
    assert (failing["score"], failing["passed"]) == (0.4, False)
    assert passing["passed"] is True
