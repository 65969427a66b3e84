"""Arbitrary JSON, arbitrary bytes and damaged real payloads at every intake endpoint, against a real
Temporal dev server: the answer is always 2xx or 4xx, never 5xx, and a 4xx never reaches Temporal."""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from temporalio.testing import WorkflowEnvironment

from stanch.policy import Policy, Route
from stanch.settings import Settings
from tests.helpers import Running
from tests.helpers_intake import (
    ALERTMANAGER_FIXTURES,
    GRAFANA_FIXTURES,
    CountingGateway,
    serve,
    start_dev_server,
)

SOURCES = ("alertmanager", "grafana", "generic")
EXAMPLES_PER_ENDPOINT = 100

# Keys the parsers look for, so random objects often come close to a valid body and reach deeper checks.
KNOWN_KEYS = [
    "status", "alerts", "labels", "annotations", "startsAt", "endsAt", "fingerprint", "version", "groupKey",
    "name", "summary", "starts_at", "ends_at", "alertname", "agent", "service", "generatorURL", "title",
]  # fmt: skip

# Every code point, lone surrogates included: JSON can escape them, no Temporal payload can carry them.
any_text = st.text(st.characters(exclude_categories=[]), max_size=30) | st.sampled_from(
    ["\ud800", "x\udfffy", "\x00", "\u2028", "💥", "a b\nc", "'\"\\", "ä" * 500]
)
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | any_text
    | st.sampled_from(["firing", "resolved", "4", "2026-11-21T21:51:56.989Z", "0001-01-01T00:00:00Z", ""])
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(KNOWN_KEYS) | any_text, children, max_size=5)
    ),
    max_leaves=25,
)


def valid_bodies() -> dict[str, list[Any]]:
    def load(directory: Path) -> list[Any]:
        return [body for path in sorted(directory.glob("*.json")) for body in json.loads(path.read_text())]

    return {
        "alertmanager": load(ALERTMANAGER_FIXTURES),
        "grafana": load(GRAFANA_FIXTURES),
        "generic": [
            {
                "name": "AgentHallucination",
                "fingerprint": "fz-1",
                "labels": {"agent": "bot", "service": "chat"},
            },
            {"alerts": [{"name": "DiskFull", "status": "resolved", "starts_at": "2026-11-21T21:51:56Z"}]},
        ],
    }


VALID = valid_bodies()


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(value, dict):
        for key, child in value.items():
            yield from paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from paths(child, (*prefix, index))


@st.composite
def damaged(draw: st.DrawFn, source: str) -> Any:
    """A real body with one to three parts changed: deleted, replaced by arbitrary JSON, or (most often)
    a string replaced by any other string, which keeps the shape valid and fuzzes what flows on to
    Temporal: labels, names, fingerprints, summaries."""
    body = copy.deepcopy(draw(st.sampled_from(VALID[source])))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(list(paths(body))))
        if not path:
            body = draw(json_values)
            continue
        parent = body
        for part in path[:-1]:
            parent = parent[part]
        change = draw(st.sampled_from(["delete", "anything", "text", "text", "text"]))
        if change == "delete":
            del parent[path[-1]]
        elif change == "text" and isinstance(parent[path[-1]], str):
            parent[path[-1]] = draw(any_text | st.text(min_size=300, max_size=3000))
        elif change == "text" and isinstance(parent[path[-1]], dict):
            parent[path[-1]][draw(any_text)] = draw(any_text)
        else:
            parent[path[-1]] = draw(json_values)
    return body


@pytest.fixture(scope="module")
async def fuzz_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await start_dev_server()
    yield env
    await env.shutdown()


@pytest.fixture
async def fuzz_intake(
    fuzz_env: WorkflowEnvironment, settings: Settings, policy: Policy
) -> AsyncIterator[dict[str, tuple[httpx.AsyncClient, CountingGateway]]]:
    """Two intakes on one Temporal: one where unmatched alerts are unrouted (audited), one with a default
    route (every alert opens an incident). No worker: what is started only has to be accepted."""
    running = Running(fuzz_env, fuzz_env.client, f"fuzz-{uuid.uuid4().hex[:8]}", settings)
    base = running.settings.model_copy(
        update={"task_queue": running.task_queue, "intake_token": None, "intake_hmac_secret": None}
    )
    with_default = policy.model_copy(
        update={
            "default_route": Route(
                name="fuzz-default", runbook="agent_emergency_stop", target_labels={"agent_id": "alertname"}
            )
        }
    )
    unrouted_gateway = CountingGateway(base, client=fuzz_env.client)
    default_gateway = CountingGateway(base, client=fuzz_env.client)
    async with (
        serve(base, policy, unrouted_gateway) as unrouted_http,
        serve(base, with_default, default_gateway) as default_http,
    ):
        yield {"unrouted": (unrouted_http, unrouted_gateway), "default": (default_http, default_gateway)}


async def check(
    intakes: dict[str, tuple[httpx.AsyncClient, CountingGateway]], which: str, source: str, body: bytes
) -> None:
    http, gateway = intakes[which]
    before = len(gateway.calls)
    answer = await http.post(f"/alerts/{source}", content=body, headers={"content-type": "application/json"})

    event(f"{which} policy: {answer.status_code}")  # shown by --hypothesis-show-statistics
    assert answer.status_code < 500, answer.text
    if answer.status_code >= 400:
        assert answer.status_code in (400, 413, 422), answer.text
        detail = answer.json()["detail"]
        assert detail and all(item["field"] and item["error"] for item in detail)
        assert len(gateway.calls) == before, "a refused body reached Temporal"
    else:
        assert answer.status_code == 202
        incidents = answer.json()["incidents"]
        delivered = [item for item in incidents if item["action"] != "duplicate"]
        assert len(gateway.calls) - before == len(delivered)
        assert {item["action"] for item in incidents} <= {
            "started",
            "signalled",
            "ignored",
            "unrouted",
            "duplicate",
        }


FUZZ = settings(
    max_examples=EXAMPLES_PER_ENDPOINT,
    deadline=None,
    database=None,  # nothing written into the repository
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.mark.parametrize("source", SOURCES)
@FUZZ
@given(data=st.data())
async def test_arbitrary_json_is_never_a_5xx_and_refused_json_starts_nothing(
    fuzz_intake: dict[str, tuple[httpx.AsyncClient, CountingGateway]], source: str, data: st.DataObject
) -> None:
    payload = data.draw(json_values | damaged(source), label="payload")
    which = data.draw(st.sampled_from(["unrouted", "default"]), label="policy")
    await check(fuzz_intake, which, source, json.dumps(payload).encode())


@pytest.mark.parametrize("source", SOURCES)
@settings(FUZZ, max_examples=30)
@given(body=st.binary(max_size=200))
async def test_arbitrary_bytes_are_never_a_5xx(
    fuzz_intake: dict[str, tuple[httpx.AsyncClient, CountingGateway]], source: str, body: bytes
) -> None:
    await check(fuzz_intake, "unrouted", source, body)
