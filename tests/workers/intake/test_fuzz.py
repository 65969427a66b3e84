"""Arbitrary JSON, arbitrary bytes and damaged real payloads at every intake endpoint, against a real
Temporal dev server: the answer is always 2xx or 4xx, never 5xx (503 only while Temporal is down), and a
4xx never reaches Temporal. With triage (the shipped policy) a body that is the source's format is always a
202 that accounts for every alert in it, by an incident, a repeat or a triage incident Temporal holds; a body
that is not the format is a 422 naming the field."""

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
from temporalio.client import Client
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from stanch.policy import Policy, Route
from stanch.settings import Settings
from tests.helpers import Running, free_port
from tests.helpers_intake import (
    ALERTMANAGER_FIXTURES,
    GRAFANA_FIXTURES,
    CountingGateway,
    audit_mode,
    serve,
    start_dev_server,
)

# Hypothesis: a hundred generated bodies per endpoint through the intake and a dev server (3-10 s per test).
pytestmark = pytest.mark.slow

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
    """Three intakes on one Temporal: the shipped policy (alerts no runbook can act on go to triage), the
    same with a default route (every routable alert opens an incident), and audit mode (the old rules:
    unmatched alerts are audited, a bad alert is a 422). No worker: what is started only has to be held."""
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
    triage_gateway = CountingGateway(base, client=fuzz_env.client)
    default_gateway = CountingGateway(base, client=fuzz_env.client)
    audit_gateway = CountingGateway(base, client=fuzz_env.client)
    async with (
        serve(base, policy, triage_gateway) as triage_http,
        serve(base, with_default, default_gateway) as default_http,
        serve(base, audit_mode(policy), audit_gateway) as audit_http,
    ):
        yield {
            "triage": (triage_http, triage_gateway),
            "default": (default_http, default_gateway),
            "audit": (audit_http, audit_gateway),
        }


def is_the_format(source: str, payload: Any) -> bool:
    """The oracle, written apart from the intake: what each source sends at all (docs/intake.md)."""
    if not isinstance(payload, dict):
        return False
    if "alerts" in payload:
        return isinstance(payload["alerts"], list)
    return source == "generic" and "name" in payload


def items_of(source: str, payload: Any) -> list[Any]:
    return payload["alerts"] if "alerts" in payload else [payload]


async def held_by_temporal(client: Client, incidents: list[dict[str, Any]]) -> None:
    """Every alert of the answer is accounted for: its workflow exists at Temporal (a triage incident
    where the answer says `triage`), or it is a resolved alert with nothing running to tell."""
    for index, item in enumerate(incidents):
        if item["action"] == "duplicate":  # accounted for by the same alert earlier in the body
            same = ("workflow_id", "fingerprint", "status")
            assert any(all(earlier[k] == item[k] for k in same) for earlier in incidents[:index]), item
            continue
        if item["action"] == "ignored":
            assert item["status"] == "resolved", item
            continue
        assert item["action"] in {"started", "signalled", "triage"}, item
        try:
            description = await client.get_workflow_handle(item["workflow_id"]).describe()
        except RPCError as error:
            raise AssertionError(
                f"{item['workflow_id']} answered {item['action']} but is not held"
            ) from error
        if item["action"] == "triage":
            assert description.workflow_type == "triage"
            assert item["workflow_id"].startswith("incident-triage-")


async def check(
    intakes: dict[str, tuple[httpx.AsyncClient, CountingGateway]], which: str, source: str, body: bytes
) -> None:
    http, gateway = intakes[which]
    before = len(gateway.calls)
    answer = await http.post(f"/alerts/{source}", content=body, headers={"content-type": "application/json"})

    event(f"{which} policy: {answer.status_code}")  # shown by --hypothesis-show-statistics
    assert answer.status_code < 500, answer.text
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):
        payload = None
    if which != "audit" and answer.status_code not in (400, 413):
        # Triage: the format is always taken whole, anything else is refused naming a field.
        if is_the_format(source, payload):
            assert answer.status_code == 202, answer.text
            assert len(answer.json()["incidents"]) == len(items_of(source, payload))
            await held_by_temporal(await gateway.client(), answer.json()["incidents"])
        else:
            assert answer.status_code == 422, answer.text
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
            "triage",
        }
        if which == "audit":
            assert "triage" not in {item["action"] for item in incidents}


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
    which = data.draw(st.sampled_from(["triage", "default", "audit"]), label="policy")
    await check(fuzz_intake, which, source, json.dumps(payload).encode())


@pytest.mark.parametrize("source", SOURCES)
@settings(FUZZ, max_examples=30)
@given(body=st.binary(max_size=200))
async def test_arbitrary_bytes_are_never_a_5xx(
    fuzz_intake: dict[str, tuple[httpx.AsyncClient, CountingGateway]], source: str, body: bytes
) -> None:
    await check(fuzz_intake, "triage", source, body)


# Every code point a Temporal payload can carry (no lone surrogates: those are a 400 for the whole body).
carried_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=30)
# Label names and values as any sender may write them, plus the names routes look at, so that generated
# alerts hit routes, miss their target labels, or overflow them (> 253 characters).
label_names = (
    st.sampled_from(["alertname", "agent", "service", "severity", "channel", "gateway", "version"])
    | carried_text
)
label_values = (
    st.sampled_from(
        [
            "AgentHallucination",
            "AgentUpgradeRequested",
            "WhatsAppChannelDown",
            "critical",
            "page",
            "warning",
            "",
        ]
    )
    | carried_text
    | st.text(min_size=250, max_size=300)
)
label_sets = st.dictionaries(label_names, label_values, max_size=6)
unfit_values = (
    st.none()
    | st.integers()
    | carried_text
    | st.lists(carried_text, max_size=2)
    | st.dictionaries(carried_text, st.integers() | st.none(), max_size=2)
)


@st.composite
def alertmanager_item(draw: st.DrawFn) -> dict[str, Any]:
    item: dict[str, Any] = {
        "status": draw(st.sampled_from(["firing", "firing", "resolved"])),
        "labels": draw(label_sets),
        "annotations": {"summary": draw(carried_text)},
        "startsAt": "2026-11-21T21:51:56.989Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "fingerprint": draw(st.text("0123456789abcdef", min_size=1, max_size=16)),
    }
    if draw(st.booleans()):  # now and then one field no alert can carry
        item[draw(st.sampled_from(["labels", "startsAt", "status", "fingerprint"]))] = draw(unfit_values)
    return item


@FUZZ
@given(alerts=st.lists(alertmanager_item(), max_size=5), group_key=carried_text)
async def test_any_label_set_in_a_body_of_the_format_is_a_202_accounting_for_every_alert(
    fuzz_intake: dict[str, tuple[httpx.AsyncClient, CountingGateway]], alerts: list[Any], group_key: str
) -> None:
    body = {"version": "4", "status": "firing", "groupKey": group_key, "alerts": alerts}
    await check(fuzz_intake, "triage", "alertmanager", json.dumps(body).encode())


@pytest.mark.parametrize("source", SOURCES)
@settings(FUZZ, max_examples=15)
@given(data=st.data())
async def test_while_temporal_is_down_the_answer_is_503_or_a_4xx_never_another_5xx(
    settings: Settings, policy: Policy, source: str, data: st.DataObject
) -> None:
    down = settings.model_copy(
        update={
            "temporal_address": f"127.0.0.1:{free_port()}",  # nothing listens there
            "intake_token": None,
            "intake_hmac_secret": None,
        }
    )
    payload = data.draw(json_values | damaged(source), label="payload")
    async with serve(down, policy, CountingGateway(down)) as http:
        answer = await http.post(
            f"/alerts/{source}", content=json.dumps(payload), headers={"content-type": "application/json"}
        )
    assert answer.status_code in (202, 400, 413, 422, 503), answer.text
    event(f"Temporal down: {answer.status_code}")
    if answer.status_code == 503:
        assert answer.json()["detail"][0]["field"] == "temporal" and answer.headers["retry-after"]
    elif answer.status_code == 202:
        assert answer.json()["incidents"] == []  # only a body without alerts needs nothing of Temporal
    elif answer.status_code == 422 and is_the_format(source, payload):
        pytest.fail(f"a body of the format was refused: {answer.text}")
