"""The alert intake over HTTP, against a real Temporal server and the real runbooks.

These tests run on the Temporal dev server, not the time-skipping test server: the intake reports whether
signal-with-start opened a run (`started`) or joined one (`signalled`) from the server's `started` flag,
which the time-skipping server never sets, and "exactly one workflow" is checked with a visibility count,
which it cannot answer. No test here waits on a workflow timer, so nothing is lost by real time.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode

from schemas.briefs import Timeline
from stanch.ops.samples import alertmanager_body
from stanch.policy import Policy, Route
from stanch.settings import Settings
from tests.helpers import Running, applied, audit_rows, free_port, http_client, new_agent, until_state
from tests.helpers_intake import (
    ALERTMANAGER_FIXTURES,
    AUDIT_MODE_BAD_INPUT,
    BAD_INPUT,
    GRAFANA_FIXTURES,
    CountingGateway,
    audit_mode,
    events,
    fixture_bodies,
    intake,
    raw,
    runs_of,
    serve,
    sign,
    start_dev_server,
)

# ---- helpers (shared ones live in tests/helpers_intake.py) ------------------------------------------


def put_agents(sandbox_url: str, *agent_ids: str) -> None:
    for agent_id in agent_ids:
        http_client.put(
            f"{sandbox_url}/agents/{agent_id}", json={"versions": ["v1", "v2"]}
        ).raise_for_status()


def fixture_policy(policy: Policy, name: str, match: str, agent_label: str) -> Policy:
    """The example policy plus a route for the fixtures' alerts; a fresh route name gives fresh workflow ids
    although the recorded fingerprints are the same in every test."""
    route = Route(
        name=name,
        runbook="agent_emergency_stop",
        match={"alertname": match},
        target_labels={"agent_id": agent_label},
    )
    return policy.model_copy(update={"routes": [*policy.routes, route]})


def summary(answer: httpx.Response) -> list[tuple[str, str, str]]:
    assert answer.status_code == 202, answer.text
    return [(item["workflow_id"], item["action"], item["status"]) for item in answer.json()["incidents"]]


async def alert_entries(handle: WorkflowHandle[Any, Any], expected: int) -> list[str]:
    """The incident's timeline entries for alerts, once `expected` have arrived (bounded poll: a query
    answers from the worker's state, which may lag the signals the server has already accepted)."""
    texts: list[str] = []
    for _ in range(200):
        timeline = await handle.query("timeline", result_type=Timeline)
        texts = [entry.text for entry in timeline.entries if entry.kind == "alert"]
        if len(texts) >= expected:
            return texts
        await asyncio.sleep(0.05)
    raise AssertionError(f"only {len(texts)} of {expected} alerts reached the timeline: {texts}")


async def assert_never_started(client: Client, workflow_id: str) -> None:
    with pytest.raises(RPCError) as missing:
        await client.get_workflow_handle(workflow_id).describe()
    assert missing.value.status is RPCStatusCode.NOT_FOUND


# ---- recorded payloads, every format ---------------------------------------------------------------------


async def test_alertmanager_recordings_open_signal_and_resolve_incidents(
    dev_stanch: Running, policy: Policy
) -> None:
    route = f"am-{uuid.uuid4().hex[:6]}"
    put_agents(dev_stanch.settings.platform_url, "checkout", "payments", "search")
    rules = fixture_policy(policy, route, "HighErrorRate|PodCrashLooping|LatencyHigh", "service")
    bodies = fixture_bodies(ALERTMANAGER_FIXTURES, "alertmanager-firing.json") + fixture_bodies(
        ALERTMANAGER_FIXTURES, "alertmanager-resolved.json"
    )

    async with intake(dev_stanch, rules) as (http, _):
        answers = [summary(await http.post("/alerts/alertmanager", json=body)) for body in bodies]

    def incident(fingerprint: str) -> str:
        return f"incident-{route}-{fingerprint}"

    errors, pod_a, pod_b, latency = (
        incident("7d2d332feada5c59"),
        incident("f73e4048787d1f2e"),
        incident("66cf5c81bf1a4a0b"),
        incident("51d6fc97a459687d"),
    )
    assert answers == [
        [(errors, "started", "firing")],
        [(pod_a, "started", "firing"), (pod_b, "started", "firing")],
        # One body, two alerts, two statuses: pod-a resolved while pod-b still fires.
        [(pod_a, "signalled", "resolved"), (pod_b, "signalled", "firing")],
        [(errors, "signalled", "resolved")],
        [(pod_b, "signalled", "resolved")],
        # Resolved without ever firing here: nothing to tell, and no incident is opened for it.
        [(latency, "ignored", "resolved")],
    ]
    client = dev_stanch.client
    assert await alert_entries(client.get_workflow_handle(pod_a), 2) == [
        "PodCrashLooping firing: pod pod-a crashlooping",
        "monitoring reports PodCrashLooping resolved (f73e4048787d1f2e)",
    ]
    assert len(await alert_entries(client.get_workflow_handle(pod_b), 3)) == 3
    await assert_never_started(client, latency)


async def test_grafana_payloads_open_signal_and_resolve_incidents(
    dev_stanch: Running, policy: Policy
) -> None:
    route = f"gf-{uuid.uuid4().hex[:6]}"
    put_agents(dev_stanch.settings.platform_url, "blue", "green")
    rules = fixture_policy(policy, route, "High .* usage|Disk almost full", "team")
    bodies = fixture_bodies(GRAFANA_FIXTURES, "grafana-firing.json") + fixture_bodies(
        GRAFANA_FIXTURES, "grafana-resolved.json"
    )

    async with intake(dev_stanch, rules) as (http, _):
        answers = [summary(await http.post("/alerts/grafana", json=body)) for body in bodies]

    memory, cpu, disk = (
        f"incident-{route}-{fp}" for fp in ("c6eadffa33fcdf37", "bc97ff14869b13e3", "5a1bd03e7c22f941")
    )
    assert answers == [
        [(memory, "started", "firing"), (cpu, "started", "firing")],
        [(disk, "started", "firing")],
        [(memory, "signalled", "resolved"), (cpu, "signalled", "firing")],
        [(cpu, "signalled", "resolved")],
    ]
    texts = await alert_entries(dev_stanch.client.get_workflow_handle(cpu), 3)
    assert texts[0] == "High CPU usage firing: This alert was triggered for zone eu-1"
    assert texts[1:] == [
        "repeat of High CPU usage (#2)",
        "monitoring reports High CPU usage resolved (bc97ff14869b13e3)",
    ]


async def test_generic_json_starts_the_runbook_which_acts(dev_stanch: Running, policy: Policy) -> None:
    sandbox = dev_stanch.settings.platform_url
    agent_id = new_agent(sandbox)
    fingerprint = f"generic-{agent_id}"
    alert = {
        "name": "AgentHallucination",
        "fingerprint": fingerprint,
        "labels": {"agent": agent_id, "customer": "acme"},
        "summary": f"{agent_id} invents refund policies",
    }

    async with intake(dev_stanch, policy) as (http, _):
        first = await http.post("/alerts/generic", json=alert)
        later = await http.post(
            "/alerts/generic",
            json={"alerts": [alert, {**alert, "status": "resolved", "ends_at": "2026-11-21T22:00:00Z"}]},
        )

    workflow_id = f"incident-agent-hallucination-{fingerprint}"
    assert first.json()["incidents"] == [
        {
            "workflow_id": workflow_id,
            "runbook": "agent_emergency_stop",
            "action": "started",
            "alert": "AgentHallucination",
            "fingerprint": fingerprint,
            "status": "firing",
        }
    ]
    assert summary(later) == [(workflow_id, "signalled", "firing"), (workflow_id, "signalled", "resolved")]
    await alert_entries(dev_stanch.client.get_workflow_handle(workflow_id), 3)
    for _ in range(200):  # the runbook's first effect, reached from a plain JSON alert
        if applied(sandbox, f"/agents/{agent_id}/pause") == 1:
            break
        await asyncio.sleep(0.05)
    assert applied(sandbox, f"/agents/{agent_id}/pause") == 1


# ---- deduplication ---------------------------------------------------------------------------------------


async def test_the_same_body_again_adds_no_effect_and_no_workflow(
    dev_stanch: Running, policy: Policy
) -> None:
    sandbox = dev_stanch.settings.platform_url
    agent_id = new_agent(sandbox)
    body = alertmanager_body(
        "AgentHallucination", {"agent": agent_id}, "promised a discount", fingerprint=f"twice-{agent_id}"
    )
    workflow_id = f"incident-agent-hallucination-twice-{agent_id}"
    handle = dev_stanch.client.get_workflow_handle(workflow_id)

    async with intake(dev_stanch, policy) as (http, _):
        assert summary(await http.post("/alerts/alertmanager", json=body)) == [
            (workflow_id, "started", "firing")
        ]
        # Let the runbook act first, so a re-delivery could only add effects, not race the first ones.
        for _ in range(200):
            if applied(sandbox, f"/agents/{agent_id}/pause") == 1:
                break
            await asyncio.sleep(0.05)
        run_id = (await handle.describe()).run_id
        # Alertmanager re-sends after a 5xx and every group_interval: byte for byte the same body.
        for _ in range(3):
            assert summary(await http.post("/alerts/alertmanager", json=body)) == [
                (workflow_id, "signalled", "firing")
            ]

    assert len(await alert_entries(handle, 4)) == 4
    # Parked at the approval gate: whatever the repeats could have caused has happened by now.
    await until_state(handle, "awaiting_approval")
    assert (await handle.describe()).run_id == run_id
    assert await events(handle, EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED) == 1
    assert await runs_of(dev_stanch.client, workflow_id) == 1
    assert applied(sandbox, f"/agents/{agent_id}/pause") == 1
    steps = [row["step_key"] for row in audit_rows(dev_stanch.settings, workflow_id)]
    assert len(steps) == len(set(steps)) and "pause" in steps


async def test_fifty_identical_deliveries_in_parallel_open_exactly_one_incident(
    dev_stanch: Running, policy: Policy
) -> None:
    agent_id = new_agent(dev_stanch.settings.platform_url)
    body = alertmanager_body(
        "AgentHallucination", {"agent": agent_id}, "insults customers", fingerprint=f"storm-{agent_id}"
    )
    workflow_id = f"incident-agent-hallucination-storm-{agent_id}"

    async with intake(dev_stanch, policy) as (http, gateway):
        answers = await asyncio.gather(*(http.post("/alerts/alertmanager", json=body) for _ in range(50)))

    actions = [summary(answer)[0] for answer in answers]
    assert {workflow_id for workflow_id, _, _ in actions} == {workflow_id}
    assert sorted(action for _, action, _ in actions) == ["signalled"] * 49 + ["started"]
    assert len(gateway.calls) == 50
    handle = dev_stanch.client.get_workflow_handle(workflow_id)
    texts = await alert_entries(handle, 50)
    assert len(texts) == 50
    assert (
        texts[0].startswith("AgentHallucination firing") and texts[-1] == "repeat of AgentHallucination (#50)"
    )
    # Only now: signals that arrive while a workflow task runs are buffered, and written to history
    # when it completes; once the runbook has seen all 50, all 50 are in its history.
    assert await events(handle, EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED) == 1
    assert await events(handle, EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED) == 50
    assert await runs_of(dev_stanch.client, workflow_id) == 1


async def test_a_closed_incident_is_opened_again_by_a_new_firing_alert(
    dev_stanch: Running, policy: Policy
) -> None:
    agent_id = new_agent(dev_stanch.settings.platform_url)
    body = alertmanager_body(
        "AgentHallucination", {"agent": agent_id}, "again", fingerprint=f"again-{agent_id}"
    )
    workflow_id = f"incident-agent-hallucination-again-{agent_id}"

    async with intake(dev_stanch, policy) as (http, _):
        assert summary(await http.post("/alerts/alertmanager", json=body))[0][1] == "started"
        first = await dev_stanch.client.get_workflow_handle(workflow_id).describe()
        await dev_stanch.client.get_workflow_handle(workflow_id).terminate("closed by the test")
        resolved = {**body, "alerts": [{**body["alerts"][0], "status": "resolved"}]}
        assert summary(await http.post("/alerts/alertmanager", json=resolved))[0][1] == "ignored"
        assert summary(await http.post("/alerts/alertmanager", json=body))[0][1] == "started"

    second = await dev_stanch.client.get_workflow_handle(workflow_id).describe()
    assert second.run_id != first.run_id


# ---- unrouted and default routes ---------------------------------------------------------------------------


async def test_in_audit_mode_an_unrouted_alert_is_answered_and_audited_once_however_often_it_comes(
    dev_stanch: Running, policy: Policy
) -> None:
    policy = audit_mode(policy)
    fingerprint = f"disk-{uuid.uuid4().hex[:8]}"
    alert = {
        "name": "DiskFull",
        "fingerprint": fingerprint,
        "starts_at": "2026-11-21T21:51:56Z",
        "labels": {"host": "db1"},
    }

    async with intake(dev_stanch, policy) as (http, _):
        answers = await asyncio.gather(*(http.post("/alerts/generic", json=alert) for _ in range(3)))
        [(workflow_id, action, _)] = summary(answers[0])
        assert (
            action == "unrouted"
            and workflow_id is not None
            and workflow_id.startswith(f"unrouted-{fingerprint}-firing-")
        )
        assert all(summary(answer) == [(workflow_id, "unrouted", "firing")] for answer in answers)
        assert answers[0].json()["incidents"][0]["runbook"] is None

        await dev_stanch.client.get_workflow_handle(workflow_id).result()
        # After the record is written, a re-delivery is refused by id and writes nothing.
        assert summary(await http.post("/alerts/generic", json=alert)) == [
            (workflow_id, "unrouted", "firing")
        ]
        resolved = summary(await http.post("/alerts/generic", json={**alert, "status": "resolved"}))

    rows = audit_rows(dev_stanch.settings, workflow_id)
    assert [(row["step_key"], row["actor"], row["outcome"]) for row in rows] == [
        ("unrouted", "generic", "unrouted")
    ]
    assert await runs_of(dev_stanch.client, workflow_id) == 1
    [(resolved_id, action, _)] = resolved
    assert action == "unrouted" and resolved_id != workflow_id
    await dev_stanch.client.get_workflow_handle(resolved_id).result()
    assert len(audit_rows(dev_stanch.settings, resolved_id)) == 1


async def test_the_default_route_takes_what_no_rule_matches(dev_stanch: Running, policy: Policy) -> None:
    agent_id = new_agent(dev_stanch.settings.platform_url)
    route = f"default-{uuid.uuid4().hex[:6]}"
    rules = policy.model_copy(
        update={
            "default_route": Route(
                name=route, runbook="agent_emergency_stop", target_labels={"agent_id": "agent"}
            )
        }
    )
    alert = {"name": "SomethingOdd", "fingerprint": "odd", "labels": {"agent": agent_id}}

    async with intake(dev_stanch, rules) as (http, _):
        answer = await http.post("/alerts/generic", json=alert)

    assert summary(answer) == [(f"incident-{route}-odd", "started", "firing")]
    assert answer.json()["incidents"][0]["runbook"] == "agent_emergency_stop"


# ---- bad input ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "body", "status", "field"),
    BAD_INPUT,
    ids=[f"{s}-{status}-{field}-{i}" for i, (s, _, status, field) in enumerate(BAD_INPUT)],
)
async def test_bad_input_is_a_4xx_naming_the_field_and_starts_nothing(
    dev_stanch: Running, policy: Policy, source: str, body: bytes, status: int, field: str
) -> None:
    for rules in (policy, audit_mode(policy)):
        async with intake(dev_stanch, rules) as (http, gateway):
            answer = await http.post(
                f"/alerts/{source}", content=body, headers={"content-type": "application/json"}
            )
        assert answer.status_code == status, answer.text
        assert answer.json()["detail"][0]["field"] == field
        assert answer.json()["detail"][0]["error"]
        assert gateway.calls == []


@pytest.mark.parametrize(
    ("source", "body", "status", "field"),
    AUDIT_MODE_BAD_INPUT,
    ids=[f"{s}-{status}-{field}-{i}" for i, (s, _, status, field) in enumerate(AUDIT_MODE_BAD_INPUT)],
)
async def test_in_audit_mode_an_unreadable_alert_is_a_4xx_naming_the_field_and_starts_nothing(
    dev_stanch: Running, policy: Policy, source: str, body: bytes, status: int, field: str
) -> None:
    async with intake(dev_stanch, audit_mode(policy)) as (http, gateway):
        answer = await http.post(
            f"/alerts/{source}", content=body, headers={"content-type": "application/json"}
        )
    assert answer.status_code == status, answer.text
    assert answer.json()["detail"][0]["field"] == field
    assert answer.json()["detail"][0]["error"]
    assert gateway.calls == []


async def test_in_audit_mode_one_bad_alert_in_a_body_starts_none_of_the_others(
    dev_stanch: Running, policy: Policy
) -> None:
    policy = audit_mode(policy)
    agent_id = new_agent(dev_stanch.settings.platform_url)
    good = alertmanager_body(
        "AgentHallucination", {"agent": agent_id}, "good", fingerprint=f"good-{agent_id}"
    )
    # The second alert matches the agent route but lacks the `agent` label the runbook acts on.
    bad = alertmanager_body("AgentHallucination", {}, "bad", fingerprint=f"bad-{agent_id}")
    body = {**good, "alerts": [good["alerts"][0], bad["alerts"][0]]}

    async with intake(dev_stanch, policy) as (http, gateway):
        answer = await http.post("/alerts/alertmanager", json=body)

    assert answer.status_code == 422
    assert answer.json()["detail"] == [
        {
            "field": "alerts.1.labels.agent",
            "error": "required by route 'agent-hallucination' (it names the agent_id)",
        }
    ]
    assert gateway.calls == []
    await assert_never_started(dev_stanch.client, f"incident-agent-hallucination-good-{agent_id}")


async def test_the_same_alert_twice_in_one_body_is_delivered_once(
    dev_stanch: Running, policy: Policy
) -> None:
    alert = {
        "name": "DiskFull",
        "fingerprint": f"twice-{uuid.uuid4().hex[:8]}",
        "starts_at": "2026-11-21T21:00:00Z",
    }
    async with intake(dev_stanch, audit_mode(policy)) as (http, gateway):
        answer = await http.post(
            "/alerts/generic", json={"alerts": [alert, alert, {**alert, "status": "resolved"}]}
        )
    [first, second, resolved] = summary(answer)
    assert [first[1], second[1], resolved[1]] == ["unrouted", "duplicate", "unrouted"]
    assert first[0] == second[0] != resolved[0]
    assert gateway.calls == [first[0], resolved[0]]


async def test_in_audit_mode_a_request_temporal_calls_invalid_is_a_422_not_a_retry_forever(
    dev_stanch: Running, policy: Policy
) -> None:
    # Temporal caps workflow ids at 1,000 characters; a policy can name a route that breaks the cap.
    route = Route(
        name="r" * 1_000,
        runbook="agent_emergency_stop",
        match={"alertname": "TooLong"},
        target_labels={"agent_id": "agent"},
    )
    rules = audit_mode(policy).model_copy(update={"routes": [route]})
    async with intake(dev_stanch, rules) as (http, _):
        answer = await http.post(
            "/alerts/generic", json={"name": "TooLong", "fingerprint": "x", "labels": {"agent": "bot"}}
        )
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"][0]["field"] == "alerts.0"
    assert "Temporal refused it" in answer.json()["detail"][0]["error"]


async def test_unknown_paths_and_methods_answer_in_the_same_error_shape(
    dev_stanch: Running, policy: Policy
) -> None:
    async with intake(dev_stanch, policy) as (http, _):
        wrong_method = await http.get("/alerts/alertmanager")
        wrong_path = await http.post("/alert", json={})
    assert wrong_method.status_code == 405 and wrong_method.json()["detail"][0]["field"] == "path"
    assert wrong_path.status_code == 404 and wrong_path.json()["detail"][0]["field"] == "path"


# ---- authentication and size -------------------------------------------------------------------------------


async def test_bearer_token_and_hmac_signature(dev_stanch: Running, policy: Policy) -> None:
    token, secret = "t0ken-for-tests", "hmac-secret-for-tests"
    body = raw({"name": "DiskFull", "fingerprint": f"auth-{uuid.uuid4().hex[:8]}"})
    other_body = raw({"name": "DiskFull", "fingerprint": "someone-else"})
    bearer = {"authorization": f"Bearer {token}"}
    # Headers are bytes on the wire: a signature that is not even ASCII must be a 401 too.
    not_ascii = {
        b"authorization": f"Bearer {token}".encode(),
        b"x-stanch-signature": "sha256=ü".encode("latin-1"),
    }

    async with intake(
        dev_stanch, policy, intake_token=SecretStr(token), intake_hmac_secret=SecretStr(secret)
    ) as (http, gateway):

        async def post(headers: Mapping[str, str] | Mapping[bytes, bytes]) -> httpx.Response:
            return await http.post("/alerts/generic", content=body, headers=headers)

        refused = [
            await post({}),
            await post(
                {"authorization": "Bearer wrong", "x-stanch-signature": f"sha256={sign(secret, body)}"}
            ),
            await post(
                {"authorization": f"Basic {token}", "x-stanch-signature": f"sha256={sign(secret, body)}"}
            ),
            await post(bearer),
            await post({**bearer, "x-stanch-signature": f"sha256={sign('wrong', body)}"}),
            await post({**bearer, "x-stanch-signature": f"sha256={sign(secret, other_body)}"}),
            await post(not_ascii),
        ]
        assert [answer.status_code for answer in refused] == [401] * 7
        assert [answer.json()["detail"][0]["field"] for answer in refused] == ["authorization"] * 3 + [
            "X-Stanch-Signature"
        ] * 4
        assert refused[0].headers["www-authenticate"] == "Bearer"
        assert gateway.calls == []

        prefixed = await post({**bearer, "x-stanch-signature": f"sha256={sign(secret, body)}"})
        # Grafana's HMAC option sends the bare hex digest in the header it is told to use.
        bare = await post(
            {"authorization": f"bearer {token}", "x-stanch-signature": sign(secret, body).upper()}
        )
    assert [prefixed.status_code, bare.status_code] == [202, 202]
    assert len(gateway.calls) == 2


async def test_a_body_over_the_limit_is_413_whether_declared_or_streamed(
    dev_stanch: Running, policy: Policy
) -> None:
    limit = 2_000
    fits = raw({"name": "DiskFull", "fingerprint": f"size-{uuid.uuid4().hex[:8]}", "summary": "x" * 1_000})
    too_big = raw({"name": "DiskFull", "fingerprint": "too-big", "summary": "x" * limit})

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the limit must hold while reading
        for start in range(0, len(too_big), 500):
            yield too_big[start : start + 500]

    async with intake(dev_stanch, policy, intake_max_body_bytes=limit) as (http, gateway):
        declared = await http.post("/alerts/generic", content=too_big)
        streamed = await http.post("/alerts/generic", content=chunks())
        assert "content-length" not in streamed.request.headers
        assert [declared.status_code, streamed.status_code] == [413, 413]
        assert declared.json()["detail"][0]["field"] == "body"
        assert gateway.calls == []
        assert (await http.post("/alerts/generic", content=fits)).status_code == 202


# ---- Temporal unreachable ------------------------------------------------------------------------------


async def test_temporal_unreachable_is_503_and_the_intake_recovers_when_it_is_back(
    settings: Settings, policy: Policy
) -> None:
    port = free_port()  # nothing listens here yet
    down_settings = settings.model_copy(
        update={
            "temporal_address": f"127.0.0.1:{port}",
            "task_queue": f"intake-{uuid.uuid4().hex[:8]}",
            "intake_token": None,
            "intake_hmac_secret": None,
        }
    )
    body = raw(
        {
            "name": "DiskFull",
            "fingerprint": f"down-{uuid.uuid4().hex[:8]}",
            "starts_at": "2026-11-21T21:00:00Z",
        }
    )

    # No client given: the gateway connects by itself, as `stanch intake` does.
    gateway = CountingGateway(down_settings)
    async with serve(down_settings, audit_mode(policy), gateway) as http:
        health = await http.get("/healthz")
        assert health.status_code == 503 and health.json()["ok"] is False
        down = await http.post("/alerts/generic", content=body)
        assert down.status_code == 503, down.text
        assert down.headers["retry-after"] and down.json()["detail"][0]["field"] == "temporal"

        env = await start_dev_server(port=port)
        try:
            assert (await http.get("/healthz")).json() == {"ok": True, "temporal": "reachable"}
            back = await http.post("/alerts/generic", content=body)
            [(workflow_id, action, _)] = summary(back)
            assert action == "unrouted"
            await env.client.get_workflow_handle(workflow_id).describe()  # accepted means it exists
        finally:
            await env.shutdown()


async def test_healthz_says_temporal_is_reachable(dev_stanch: Running, policy: Policy) -> None:
    async with intake(dev_stanch, policy) as (http, _):
        health = await http.get("/healthz")
    assert (health.status_code, health.json()) == (200, {"ok": True, "temporal": "reachable"})
