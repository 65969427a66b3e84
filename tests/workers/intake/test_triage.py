"""The intake refuses only what is not an alert: every item of a body that is the format becomes an incident,
a repeat, or a triage incident — on a real Temporal dev server, through the intake's HTTP app.

No worker runs here: what the intake starts only has to be held by Temporal, and is checked with
`describe()` and the started workflow's history (its type, id, input and start signal). The triage workflow
itself is the triage helper's; these tests need none of it to run.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any, NamedTuple

import httpx
import pytest
from pydantic import BaseModel, Field
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowExecutionStatus

from schemas import targets
from schemas.alerts import Alert
from schemas.incidents import IncidentInput
from schemas.severity import Severity
from schemas.triage import TRIAGE_WORKFLOW, TriageInput
from stanch.ops.samples import alertmanager_body
from stanch.policy import Policy, Route
from stanch.settings import Settings
from tests.helpers import Running
from tests.helpers_intake import CountingGateway, audit_mode, events, runs_of, serve
from workers.intake.parsers import RAW_ITEM_ANNOTATION, UNREADABLE_NAME
from workers.intake.routing import runbook_incident_id


@pytest.fixture
async def temporal(dev_env: Any, settings: Settings) -> AsyncIterator[Running]:
    """The dev server and a fresh task queue no worker polls: started workflows wait there, visibly."""
    yield Running(dev_env, dev_env.client, f"triage-{uuid.uuid4().hex[:8]}", settings)


class Intake(NamedTuple):
    http: httpx.AsyncClient
    gateway: CountingGateway
    run: str  # appended to every route's name: this test's incident ids are its own


def fresh_routes(policy: Policy, run: str) -> Policy:
    """The shipped policy with `-<run>` after each route's name: triage ids are keyed by route and cause,
    and the dev server is shared by the module's tests."""
    routes = [route.model_copy(update={"name": f"{route.name}-{run}"}) for route in policy.routes]
    return policy.model_copy(update={"routes": routes})


@pytest.fixture
async def post(temporal: Running, policy: Policy) -> AsyncIterator[Intake]:
    settings = temporal.settings.model_copy(
        update={"task_queue": temporal.task_queue, "intake_token": None, "intake_hmac_secret": None}
    )
    gateway = CountingGateway(settings, client=temporal.client)
    run = uuid.uuid4().hex[:8]
    async with serve(settings, fresh_routes(policy, run), gateway) as http:
        yield Intake(http, gateway, run)


def am(*alerts: dict[str, Any]) -> dict[str, Any]:
    """An Alertmanager v4 body holding these alerts (each as Alertmanager sends it)."""
    body = alertmanager_body("Group", {}, "group", fingerprint="unused")
    return {**body, "alerts": list(alerts)}


def am_alert(
    labels: Any, fingerprint: str, summary: str = "something is wrong", **changes: Any
) -> dict[str, Any]:
    alert = alertmanager_body("X", {}, summary, fingerprint)["alerts"][0]
    return {**alert, "labels": labels, **changes}


async def started_input(temporal: Running, workflow_id: str) -> tuple[str, TriageInput, list[Alert]]:
    """The workflow type, the TriageInput it was started with, and the alerts signalled into it."""
    history = await temporal.client.get_workflow_handle(workflow_id).fetch_history()
    start = history.events[0].workflow_execution_started_event_attributes
    converter = temporal.client.data_converter
    [triage] = await converter.decode(start.input.payloads, [TriageInput])
    signalled = [
        (await converter.decode(event.workflow_execution_signaled_event_attributes.input.payloads, [Alert]))[
            0
        ]
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
    ]
    return start.workflow_type.name, triage, signalled


def entries(answer: httpx.Response) -> list[tuple[str, str | None, str]]:
    assert answer.status_code == 202, answer.text
    return [(item["workflow_id"], item["runbook"], item["action"]) for item in answer.json()["incidents"]]


# ---- a body with bad items: the good ones start, each bad one goes to a human ------------------------------


async def test_one_unreadable_alert_between_two_good_ones_opens_two_incidents_and_one_triage(
    temporal: Running, post: Intake
) -> None:
    http, _, run = post
    good = [
        am_alert({"alertname": "AgentHallucination", "agent": f"bot-{run}-{n}"}, f"good-{run}-{n}")
        for n in (1, 2)
    ]
    # labels not an object: nothing of it can be routed, yet it must reach a human.
    broken = am_alert(["alertname", "AgentHallucination"], f"broken-{run}")

    answer = await http.post("/alerts/alertmanager", json=am(good[0], broken, good[1]))

    [first, middle, last] = entries(answer)
    assert first == (f"incident-agent-hallucination-{run}-good-{run}-1", "agent_emergency_stop", "started")
    assert last == (f"incident-agent-hallucination-{run}-good-{run}-2", "agent_emergency_stop", "started")
    assert middle == (f"incident-triage-unrouted-{UNREADABLE_NAME}-labels", "triage", "triage")
    for workflow_id in (first[0], last[0]):
        assert (await temporal.client.get_workflow_handle(workflow_id).describe()).workflow_type == (
            "agent_emergency_stop"
        )
    kind, triage, [alert] = await started_input(temporal, middle[0])
    assert kind == TRIAGE_WORKFLOW and triage.runbook == TRIAGE_WORKFLOW
    assert [(problem.field, problem.problem) for problem in triage.problems] == [
        ("alerts.1.labels", "Input should be a valid dictionary")
    ]
    assert triage.route is None and triage.suggested_runbook is None and triage.target == {}
    # The raw item is kept for the human, and its fingerprint comes from its canonical JSON.
    assert f'"fingerprint":"broken-{run}"' in alert.annotations[RAW_ITEM_ANNOTATION]
    assert alert.fingerprint == answer.json()["incidents"][1]["fingerprint"] != f"broken-{run}"


async def test_an_alert_without_its_target_label_opens_a_triage_incident_with_the_routes_severity(
    temporal: Running, post: Intake, policy: Policy
) -> None:
    http, _, run = post
    alert = am_alert(
        {"alertname": "AgentHallucination", "severity": "critical", "service": "support-bot"},
        f"nolabel-{uuid.uuid4().hex[:8]}",
        summary="support-bot invents refunds",
    )

    answer = await http.post("/alerts/alertmanager", json=am(alert))

    workflow_id = f"incident-triage-agent-hallucination-{run}-AgentHallucination-labels.agent"
    assert entries(answer) == [(workflow_id, "triage", "triage")]
    kind, triage, [signalled] = await started_input(temporal, workflow_id)
    assert kind == "triage"
    assert triage.incident_id == workflow_id
    assert (triage.severity, triage.service, triage.summary) == (
        Severity.P1,
        "support-bot",
        "support-bot invents refunds",
    )
    assert (triage.route, triage.suggested_runbook) == (f"agent-hallucination-{run}", "agent_emergency_stop")
    assert [(problem.field, problem.problem) for problem in triage.problems] == [
        ("labels.agent", f"required by route 'agent-hallucination-{run}' (it names the agent_id)")
    ]
    assert triage.policy == policy.incident_policy()
    assert signalled.labels["service"] == "support-bot" and signalled.fingerprint == alert["fingerprint"]


@pytest.mark.parametrize(
    ("labels", "severity"),
    [
        ({"severity": "critical"}, Severity.P1),
        ({"severity": "page"}, Severity.P1),
        ({"severity": "Warning"}, Severity.P2),
        ({"severity": "info"}, Severity.P3),
        ({}, Severity.P3),
    ],
)
async def test_an_alert_no_route_matches_opens_a_triage_incident_with_the_severity_its_labels_say(
    temporal: Running,
    post: Intake,
    labels: dict[str, str],
    severity: Severity,
) -> None:
    http, _, _ = post
    name = f"DiskFull{uuid.uuid4().hex[:8]}"

    answer = await http.post(
        "/alerts/alertmanager", json=am(am_alert({"alertname": name, **labels}, f"disk-{name}"))
    )

    workflow_id = f"incident-triage-unrouted-{name}"
    assert entries(answer) == [(workflow_id, "triage", "triage")]
    _, triage, _ = await started_input(temporal, workflow_id)
    assert triage.severity is severity
    assert [problem.field for problem in triage.problems] == ["labels"]


async def test_a_storm_of_fifty_alike_broken_alerts_opens_one_triage_incident(
    temporal: Running, post: Intake
) -> None:
    http, gateway, run = post
    # Fifty alert series (different fingerprints and services), all lacking the same label: one cause.
    bodies = [
        am(am_alert({"alertname": "AgentUpgradeRequested", "service": f"s{n}"}, f"storm-{run}-{n}"))
        for n in range(50)
    ]

    answers = await asyncio.gather(*(http.post("/alerts/alertmanager", json=body) for body in bodies))

    [workflow_id] = {workflow_id for answer in answers for workflow_id, _, _ in entries(answer)}
    assert workflow_id.startswith(f"incident-triage-agent-upgrade-{run}-AgentUpgradeRequested-labels.agent")
    assert {action for answer in answers for _, _, action in entries(answer)} == {"triage"}
    assert len(gateway.calls) == 50
    handle = temporal.client.get_workflow_handle(workflow_id)
    assert await runs_of(temporal.client, workflow_id) == 1
    assert await events(handle, EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED) == 1
    assert await events(handle, EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED) == 50
    _, triage, _ = await started_input(temporal, workflow_id)
    assert sorted(problem.field for problem in triage.problems) == ["labels.agent", "labels.version"]


async def test_a_target_label_longer_than_253_characters_opens_a_triage_incident_naming_it(
    temporal: Running, post: Intake
) -> None:
    http, _, run = post
    alert = am_alert(
        {"alertname": "AgentTerminationRequested", "agent": "a" * 254}, f"long-{uuid.uuid4().hex}"
    )

    [(workflow_id, runbook, action)] = entries(await http.post("/alerts/alertmanager", json=am(alert)))

    assert (workflow_id, runbook, action) == (
        f"incident-triage-agent-termination-{run}-AgentTerminationRequested-labels.agent",
        "triage",
        "triage",
    )
    _, triage, _ = await started_input(temporal, workflow_id)
    [problem] = triage.problems
    assert problem.field == "labels.agent" and "longer than 253 characters" in problem.problem


class SlugAgent(BaseModel):
    agent_id: str = Field(pattern=r"^[a-z0-9-]+$")


async def test_a_target_its_runbooks_model_refuses_opens_a_triage_incident_naming_the_label(
    temporal: Running, post: Intake, monkeypatch: pytest.MonkeyPatch
) -> None:
    http, _, run = post
    monkeypatch.setattr(
        targets, "target_model_for", lambda runbook: SlugAgent if runbook == "agent_termination" else None
    )
    bad = am_alert({"alertname": "AgentTerminationRequested", "agent": "Not A Slug!"}, f"slug-bad-{run}")
    good = am_alert({"alertname": "AgentTerminationRequested", "agent": f"bot-{run}"}, f"slug-good-{run}")

    answer = await http.post("/alerts/alertmanager", json=am(bad, good))

    assert entries(answer) == [
        (
            f"incident-triage-agent-termination-{run}-AgentTerminationRequested-labels.agent",
            "triage",
            "triage",
        ),
        (f"incident-agent-termination-{run}-slug-good-{run}", "agent_termination", "started"),
    ]
    _, triage, _ = await started_input(temporal, entries(answer)[0][0])
    [problem] = triage.problems
    assert problem.field == "labels.agent"
    assert "not a valid agent_id for runbook 'agent_termination'" in problem.problem


# ---- items and bodies that the old intake refused whole --------------------------------------------------


async def test_unreadable_fields_of_each_source_open_triage_incidents_naming_them(
    temporal: Running, post: Intake
) -> None:
    http, _, run = post
    answers = {
        "label value not a string": await http.post(
            "/alerts/alertmanager",
            json=am(am_alert({"alertname": f"Odd{run}", "service": 1}, f"odd-{run}")),
        ),
        "bad date": await http.post(
            "/alerts/alertmanager",
            json=am(am_alert({"alertname": f"Odd{run}"}, f"date-{run}", startsAt="yesterday")),
        ),
        "item not an object": await http.post("/alerts/grafana", json={"status": "firing", "alerts": [7]}),
        "unknown key": await http.post("/alerts/generic", json={"name": f"Odd{run}", "severity": "P1"}),
        "version 5": await http.post(
            "/alerts/alertmanager",
            json={**am(am_alert({"alertname": f"Odd{run}"}, f"v5-{run}")), "version": "5"},
        ),
    }

    ids = {what: entries(answer) for what, answer in answers.items()}
    assert ids == {
        "label value not a string": [
            (f"incident-triage-unrouted-Odd{run}-labels.service", "triage", "triage")
        ],
        "bad date": [(f"incident-triage-unrouted-Odd{run}-startsAt", "triage", "triage")],
        "item not an object": [(f"incident-triage-unrouted-{UNREADABLE_NAME}-item", "triage", "triage")],
        "unknown key": [(f"incident-triage-unrouted-Odd{run}-severity", "triage", "triage")],
        "version 5": [(f"incident-triage-unrouted-Odd{run}-version", "triage", "triage")],
    }
    _, triage, _ = await started_input(temporal, ids["label value not a string"][0][0])
    assert [problem.field for problem in triage.problems] == ["alerts.0.labels.service"]
    _, grafana, _ = await started_input(temporal, ids["item not an object"][0][0])
    assert [problem.field for problem in grafana.problems] == ["alerts.0"]
    _, generic, _ = await started_input(temporal, ids["unknown key"][0][0])
    assert [problem.field for problem in generic.problems] == ["severity"]


async def test_a_resolved_alert_reaches_its_triage_incident_and_never_opens_one(
    temporal: Running, post: Intake
) -> None:
    http, _, _ = post
    name = f"Quiet{uuid.uuid4().hex[:8]}"
    firing = am_alert({"alertname": name}, f"fp-{name}")
    resolved = {**firing, "status": "resolved", "endsAt": "2026-11-21T22:00:00Z"}
    other = {**resolved, "labels": {"alertname": f"Other{name}"}}

    opened = await http.post("/alerts/alertmanager", json=am(firing))
    told = await http.post("/alerts/alertmanager", json=am(resolved, other))

    workflow_id = f"incident-triage-unrouted-{name}"
    assert entries(opened) == [(workflow_id, "triage", "triage")]
    assert entries(told) == [
        (workflow_id, "triage", "triage"),
        (f"incident-triage-unrouted-Other{name}", "triage", "ignored"),
    ]
    _, _, signalled = await started_input(temporal, workflow_id)
    assert [alert.status.value for alert in signalled] == ["firing", "resolved"]
    assert await runs_of(temporal.client, workflow_id) == 1


async def test_a_runbook_incident_temporal_refuses_goes_to_a_triage_incident_not_a_422(
    temporal: Running, policy: Policy
) -> None:
    # Temporal caps workflow ids at 1,000 characters; a policy can name a route that breaks the cap.
    run = uuid.uuid4().hex[:8]
    route = Route(
        name="r" * 1_000,
        runbook="agent_emergency_stop",
        match={"alertname": f"TooLong{run}"},
        target_labels={"agent_id": "agent"},
    )
    settings = temporal.settings.model_copy(
        update={"task_queue": temporal.task_queue, "intake_token": None, "intake_hmac_secret": None}
    )
    gateway = CountingGateway(settings, client=temporal.client)
    async with serve(settings, policy.model_copy(update={"routes": [route]}), gateway) as http:
        answer = await http.post(
            "/alerts/generic", json={"name": f"TooLong{run}", "fingerprint": "x", "labels": {"agent": "bot"}}
        )

    [(workflow_id, runbook, action)] = entries(answer)
    assert (runbook, action) == ("triage", "triage")
    assert workflow_id.startswith("incident-triage-rrrr") and workflow_id.endswith(f"-TooLong{run}-route")
    _, triage, _ = await started_input(temporal, workflow_id)
    [problem] = triage.problems
    assert problem.field == "route" and "Temporal refused the runbook's incident" in problem.problem
    assert (triage.suggested_runbook, triage.severity) == ("agent_emergency_stop", route.severity)


# ---- hand-over: a runbook incident a human started for the group takes the repeats -----------------------


async def test_a_repeat_joins_the_runbook_incident_a_human_handed_its_group_to(
    temporal: Running, post: Intake, policy: Policy
) -> None:
    http, _, run = post
    alert_json = am_alert(
        {"alertname": "AgentHallucination", "service": "support"}, f"handed-{uuid.uuid4().hex[:8]}"
    )
    first = entries(await http.post("/alerts/alertmanager", json=am(alert_json)))
    triage_id = f"incident-triage-agent-hallucination-{run}-AgentHallucination-labels.agent"
    assert first == [(triage_id, "triage", "triage")]

    # What `run_runbook` does on the triage side: start the route's runbook under the id the intake computes.
    _, triage, [alert] = await started_input(temporal, triage_id)
    route = fresh_routes(policy, run).route_named(f"agent-hallucination-{run}")
    assert route is not None
    runbook_id = runbook_incident_id(alert, route)
    assert runbook_id == f"incident-agent-hallucination-{run}-{alert.fingerprint}"
    # The triage input tells the workflow this id, since it cannot read the policy.
    assert triage.runbook_incident_ids[route.runbook] == runbook_id
    handed = IncidentInput(
        incident_id=runbook_id,
        runbook=route.runbook,
        severity=route.severity,
        service="support",
        summary=alert.summary,
        alert=alert,
        target={"agent_id": "support-bot"},
        policy=policy.incident_policy(),
    )
    runbook = await temporal.client.start_workflow(
        route.runbook, handed, id=runbook_id, task_queue=temporal.task_queue
    )

    repeat = entries(await http.post("/alerts/alertmanager", json=am(alert_json)))
    assert repeat == [(runbook_id, "agent_emergency_stop", "signalled")]
    assert await events(runbook, EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED) == 1

    # Once that incident is over, the group's next alert goes to a human again.
    await runbook.terminate("the runbook finished")
    assert (await runbook.describe()).status == WorkflowExecutionStatus.TERMINATED
    again = entries(await http.post("/alerts/alertmanager", json=am(alert_json)))
    assert again == [(triage_id, "triage", "triage")]


# ---- the old behaviour, for teams that want it ------------------------------------------------------------


async def test_in_audit_mode_unrouted_alerts_are_only_audited_and_unactionable_ones_are_a_422(
    temporal: Running, policy: Policy
) -> None:
    settings = temporal.settings.model_copy(
        update={"task_queue": temporal.task_queue, "intake_token": None, "intake_hmac_secret": None}
    )
    gateway = CountingGateway(settings, client=temporal.client)
    name = f"DiskFull{uuid.uuid4().hex[:8]}"
    async with serve(settings, audit_mode(policy), gateway) as http:
        unrouted = await http.post("/alerts/alertmanager", json=am(am_alert({"alertname": name}, name)))
        refused = await http.post(
            "/alerts/alertmanager", json=am(am_alert({"alertname": "AgentHallucination"}, f"x-{name}"))
        )

    [(workflow_id, runbook, action)] = entries(unrouted)
    assert (runbook, action) == (None, "unrouted") and workflow_id.startswith(f"unrouted-{name}-firing-")
    description = await temporal.client.get_workflow_handle(workflow_id).describe()
    assert description.workflow_type == "unrouted_alert"
    assert refused.status_code == 422
    assert refused.json()["detail"][0]["field"] == "alerts.0.labels.agent"
    assert gateway.calls == [workflow_id]


def test_the_shipped_policy_sends_unroutable_alerts_to_triage(policy: Policy) -> None:
    assert policy.intake.unroutable == "triage"
    assert Policy().intake.unroutable == "triage"  # also the default of a policy that says nothing
    table = policy.intake.severity_from_labels
    assert [table.severity_for({"severity": value}) for value in ("critical", "page", "warning", "x")] == [
        Severity.P1,
        Severity.P1,
        Severity.P2,
        Severity.P3,
    ]
