"""Helpers shared by test modules: reaching the worker a test runs, reading what the sandbox platform and
Postgres saw, and the incident factory behind conftest's `incidents` fixture.

Test modules import helpers from here (or tests/stack.py for the real stack, tests/helpers_intake.py for
the in-process intake, tests/clock.py for the time-skipping clock), never from another test module: a
test module is free to change without breaking its neighbours.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import textwrap
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import uvicorn
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from click.testing import Result
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import Client, WorkflowHandle, WorkflowHistory
from temporalio.testing import WorkflowEnvironment
from typer.testing import CliRunner

from schemas.alerts import Alert
from schemas.approvals import ApprovalAnswer
from schemas.audit import AuditEvent
from schemas.briefs import Brief
from schemas.incidents import IncidentInput, IncidentPolicy, IncidentResult
from schemas.severity import Severity
from schemas.triage import TRIAGE_WORKFLOW, TriageInput, TriageProblem
from stanch.ops.cli import app
from stanch.policy import Policy
from stanch.settings import REPO_ROOT, Settings, get_settings
from stanch.tls import default_tls_context
from tests.clock import settled
from workers.intake.routing import runbook_incident_id

# The shipped policy with a demo key for every person: the tests decide as the shipped policy says, and sign
# what it needs signed with config/dev-keys/.
TEST_POLICY = REPO_ROOT / "tests" / "policy.toml"

# A loaded CI machine can take longer than the SDK's default to bring a server up.
SERVER_STARTUP = timedelta(seconds=60)
SEARCH_ATTRIBUTE_NAMES = (
    "StanchRunbook",
    "StanchSeverity",
    "StanchService",
    "StanchState",
    "StanchAwaiting",
    "StanchEscalationLevel",
)
KEYWORD_LISTS = frozenset({"StanchAwaiting"})
INTS = frozenset({"StanchEscalationLevel"})


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def register_search_attributes(client: Client) -> None:
    # The time-skipping server knows no custom search attribute until told; the first upsert would
    # otherwise fail the workflow task forever.
    await client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=client.namespace,
            search_attributes={
                name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD_LIST
                if name in KEYWORD_LISTS
                else IndexedValueType.INDEXED_VALUE_TYPE_INT
                if name in INTS
                else IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD
                for name in SEARCH_ATTRIBUTE_NAMES
            },
        )
    )


class ThreadedServer(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # the test process owns its signals
        pass


# The tests' own calls to local services (the sandbox, receivers, the real stack) share one client:
# `httpx.get` builds a client, and with it a TLS context (~30 ms of CPU), per call, and the fast tier makes
# thousands. No proxy from the environment: every address here is local.
http_client = httpx.Client(timeout=5.0, trust_env=False, verify=default_tls_context())


# An agent emergency stop approved and rolled back, as its audit trail lists the steps.
EMERGENCY_STOP_APPROVED_STEPS = [
    "pause",
    "tell-customer",
    "tell-oncall",
    "gate1-requested",
    "gate1-decision",
    "rollback",
    "closed",
]


def audit_event(workflow_id: str, step: str, *, run_id: str = "run-1", reason: str = "") -> AuditEvent:
    """One audit row as a runbook hands it to the audit activities."""
    return AuditEvent(
        workflow_id=workflow_id,
        run_id=run_id,
        step_key=step,
        actor="stanch",
        action=f"do {step}",
        outcome="done",
        reason=reason,
        occurred_at=datetime.now(UTC),
        details={"agent": "support-bot"},
    )


def csrf_of(html: str) -> str:
    """The CSRF token a console page's form carries."""
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "no CSRF token on the page"
    return found.group(1)


class Running:
    """A worker on a fresh task queue, with the client and settings the test needs to reach it."""

    def __init__(self, env: WorkflowEnvironment, client: Client, task_queue: str, settings: Settings) -> None:
        self.env = env
        self.client = client
        self.task_queue = task_queue
        self.settings = settings


# ---- what Postgres and the sandbox platform saw ---------------------------------------------------------


def audit_rows(settings: Settings, workflow_id: str) -> list[dict[str, Any]]:
    with psycopg.connect(settings.database_url) as conn:
        cursor = conn.execute(
            "SELECT step_key, actor, action, outcome, reason FROM audit_log WHERE workflow_id = %s ORDER BY id",
            (workflow_id,),
        )
        names = [column.name for column in cursor.description or []]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def applied(sandbox_url: str, path: str, method: str = "POST") -> int:
    """How many `method` calls to `path` the sandbox platform applied (replays of an idempotency key not
    counted)."""
    counts = http_client.get(f"{sandbox_url}/calls/count", params={"path": path, "method": method}).json()
    return int(counts["applied"])


def new_agent(sandbox_url: str, versions: list[str] | None = None) -> str:
    agent_id = f"agent-{uuid.uuid4().hex[:8]}"
    response = http_client.put(
        f"{sandbox_url}/agents/{agent_id}", json={"versions": versions or ["v1", "v2", "v3"]}
    )
    response.raise_for_status()
    return agent_id


def agent(sandbox_url: str, agent_id: str) -> dict[str, Any]:
    return http_client.get(f"{sandbox_url}/agents/{agent_id}").json()


def _incident_messages(sandbox_url: str, workflow_id: str) -> list[dict[str, Any]]:
    messages = http_client.get(f"{sandbox_url}/chat/messages").json()
    return [m["body"] for m in messages if m["idempotency_key"].startswith(workflow_id + "/")]


def chat_messages(sandbox_url: str, workflow_id: str) -> list[dict[str, Any]]:
    """Notifications this incident sent, one each (their idempotency keys start with its workflow id).

    A notification to a role reaches the sandbox once per person and kind (`pages` lists those); here it
    counts once, as the first copy, so a test about what a runbook said reads the same for any audience.
    """
    seen: set[str] = set()
    notifications = []
    for body in _incident_messages(sandbox_url, workflow_id):
        if body["idempotency_key"] not in seen:
            seen.add(body["idempotency_key"])
            notifications.append(body)
    return notifications


def pages(sandbox_url: str, workflow_id: str, title: str = "") -> list[tuple[str, str, str | None]]:
    """(audience, person, kind) of every message the sandbox received for this incident, in order, for
    those whose title contains `title`: who got each page on which channel kind. A message a `[notify]`
    group took (the customer's, or a fallback) has person "" and kind None."""
    return [
        (body["channel"], body.get("person") or "", body.get("kind"))
        for body in _incident_messages(sandbox_url, workflow_id)
        if title in body["title"]
    ]


def fault(sandbox_url: str, path_prefix: str, status: int = 409, times: int = 1) -> None:
    """The sandbox answers the next `times` requests under `path_prefix` with `status`."""
    http_client.post(
        f"{sandbox_url}/faults", json={"path_prefix": path_prefix, "status": status, "times": times}
    ).raise_for_status()


def get(sandbox: str, path: str, **params: str) -> Any:
    return http_client.get(f"{sandbox}{path}", params=params).json()


def put(sandbox: str, path: str, body: dict[str, Any], key: str | None = None) -> Any:
    headers = {"Idempotency-Key": key} if key else {}
    response = http_client.put(f"{sandbox}{path}", json=body, headers=headers)
    response.raise_for_status()
    return response.json()


def new_service(sandbox: str, versions: list[str] | None = None) -> str:
    """A service of its own, with deploys (oldest first, the last one live), so tests never collide."""
    service = f"svc-{uuid.uuid4().hex[:8]}"
    if versions:
        http_client.put(
            f"{sandbox}/deploys/services/{service}", json={"versions": versions}
        ).raise_for_status()
    return service


def script_qa(sandbox: str, service: str, verdicts: list[str]) -> None:
    http_client.put(
        f"{sandbox}/qa/script", json={"service": service, "verdicts": verdicts}
    ).raise_for_status()


def deploys_of(sandbox: str, service: str) -> list[dict[str, Any]]:
    return [d for d in http_client.get(f"{sandbox}/deploys").json() if d["service"] == service]


# ---- waiting on a workflow ------------------------------------------------------------------------------


async def until_state(handle: WorkflowHandle[Any, Any], state: str, *, settle: bool = True) -> Brief:
    """Poll the brief (bounded), then let the step that set the state finish its audit row (unless
    the test keeps an activity retrying on purpose). Queries do not advance the time-skipping clock."""
    for _ in range(200):
        brief = await handle.query("brief", result_type=Brief)
        if brief.state == state:
            if settle:
                await settled(handle)
            return brief
        await asyncio.sleep(0.05)
    raise AssertionError(f"incident never reached {state}; last brief: {brief}")


async def emergency_stop_rolled_back(
    incidents: Incidents, sandbox_url: str
) -> tuple[WorkflowHandle[Any, Any], str]:
    """The emergency stop's happy path for a new agent: paused, approved by alice, rolled back. Returns
    the closed incident's handle and the agent."""
    agent_id = new_agent(sandbox_url)
    handle = await incidents.agent_emergency_stop(agent_id)
    await until_state(handle, "awaiting_approval")
    await handle.signal("approve", ApprovalAnswer(approver="alice", action="rollback", comment="v3 is bad"))
    result = await handle.result()
    assert result.final_state == "rolled_back", result
    return handle, agent_id


def level_timers(history: WorkflowHistory) -> list[timedelta]:
    """The timers a history started, in order, without the incident's response-target watch (a clock of
    its own beside the ladder's levels; workflows/steps/incident.py)."""
    timers = []
    for event in history.events:
        if not event.HasField("timer_started_event_attributes"):
            continue
        summary = event.user_metadata.summary.data.decode() if event.HasField("user_metadata") else ""
        if "response target" not in summary:
            timers.append(event.timer_started_event_attributes.start_to_fire_timeout.ToTimedelta())
    return timers


def patch_markers(events: Iterable[HistoryEvent]) -> list[str]:
    """The `workflow.patched` ids a history's events recorded a marker for, in order."""
    return [
        json.loads(event.marker_recorded_event_attributes.details["patch-data"].payloads[0].data)["id"]
        for event in events
        if event.HasField("marker_recorded_event_attributes")
        and event.marker_recorded_event_attributes.marker_name == "core_patch"
    ]


def upserts_of(events: Iterable[HistoryEvent], attribute: str) -> int:
    """How many search-attribute upserts among a history's events set `attribute` (`TemporalChangeVersion`:
    the SDK's own, one with each patch marker)."""
    return sum(
        attribute in event.upsert_workflow_search_attributes_event_attributes.search_attributes.indexed_fields
        for event in events
        if event.HasField("upsert_workflow_search_attributes_event_attributes")
    )


# ---- the CLI ---------------------------------------------------------------------------------------------


def cli_environment(
    client: Client, home: Path, http_url: str | None, payload_key: str | None
) -> dict[str, Any]:
    """What `cli` needs to reach `client`'s server: over Temporal's HTTP API at `http_url` (None unsets it:
    the SDK path), with `payload_key`'s codec, and a HOME with no ~/.ssh/id_ed25519 and no signing key, so
    a decision goes out unsigned on either path."""
    get_settings.cache_clear()
    return {
        "STANCH_TEMPORAL_ADDRESS": client.service_client.config.target_host,
        "STANCH_NAMESPACE": client.namespace,
        "STANCH_CONFIG": str(TEST_POLICY),
        "STANCH_TEMPORAL_HTTP_URL": http_url,
        "STANCH_PAYLOAD_KEY": payload_key,
        "STANCH_SIGNING_KEY": None,
        "HOME": str(home),
    }


async def cli(args: list[str], env: dict[str, str]) -> Result:
    """The CLI runs its own event loop (asyncio.run), as in a terminal: give it a thread of its own.
    `env` points it at the test's Temporal server and Postgres (conftest's `cli_env`)."""
    return await asyncio.to_thread(CliRunner().invoke, app, args, env=env)


# ---- policy files and a mailbox -------------------------------------------------------------------------


def write_policy(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "stanch.toml"
    path.write_text(textwrap.dedent(body))
    return path


SMTP_PASSWORD = "smtp-pw-" + uuid.uuid4().hex


@dataclass
class Mailbox:
    """An aiosmtpd handler that keeps every message and login; only SMTP_PASSWORD signs in."""

    messages: list[Envelope] = field(default_factory=list)
    logins: list[tuple[str, str]] = field(default_factory=list)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.messages.append(envelope)
        return "250 OK"

    def authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        assert isinstance(data, LoginPassword)
        login, password = data.login.decode(), data.password.decode()
        self.logins.append((login, password))
        # handled=False: aiosmtpd answers 535 itself; True would leave the client waiting for an answer.
        return AuthResult(success=password == SMTP_PASSWORD, handled=False)


# ---- the incident factory -------------------------------------------------------------------------------


class Incidents:
    """Opens incidents the way the intake does: an `Alert`, the runbook's `IncidentInput` (or a subclass),
    and a start on the test's task queue with the alert as the `alert` start signal.

    Everything a runbook test varies is a keyword; the defaults are what most tests used to write by
    hand. `await incidents.open("rollback", target={"service": s, "kind": "code"}, alertname=...)`.
    """

    def __init__(self, client: Client, task_queue: str, policy: Policy) -> None:
        self.client = client
        self.task_queue = task_queue
        self.policy = policy
        self.opened: dict[str, IncidentInput] = {}  # the input of each incident it opened, by workflow id

    @staticmethod
    def alert(
        runbook: str,
        *,
        target: dict[str, str],
        alertname: str | None = None,
        labels: dict[str, str] | None = None,
        annotations: dict[str, str] | None = None,
        fingerprint: str | None = None,
        source: str = "alertmanager",
    ) -> Alert:
        """The alert `open` builds from the same keywords (give the same `fingerprint` to get the same
        alert), for a test that derives an input field from it before opening the incident."""
        name = alertname or runbook
        return Alert(
            source=source,
            name=name,
            fingerprint=fingerprint or uuid.uuid4().hex[:16],
            labels={"alertname": name, **(target if labels is None else labels)},
            annotations=annotations if annotations is not None else {"summary": f"{name} ({runbook})"},
        )

    async def open(
        self,
        runbook: str,
        *,
        target: dict[str, str],
        alertname: str | None = None,
        labels: dict[str, str] | None = None,
        annotations: dict[str, str] | None = None,
        severity: Severity = Severity.P1,
        service: str = "test",
        workflow_id: str = "incident-test-{fingerprint}",
        fingerprint: str | None = None,
        signal_alert: bool = True,
        start_signal: tuple[str, Any] | None = None,
        source: str = "alertmanager",
        incident_policy: IncidentPolicy | None = None,
        input_type: type[IncidentInput] = IncidentInput,
        result_type: type[Any] = IncidentResult,
        **fields: Any,
    ) -> WorkflowHandle[Any, Any]:
        """Start `runbook` for a fresh alert and return its handle.

        - `alertname` defaults to the runbook's name; the alert's labels are `{"alertname": ...}` plus
          `labels` (default: the target itself); `annotations` default to a summary naming the runbook,
          and the incident's summary is the alert's, as the intake makes it.
        - `workflow_id` is formatted with the alert's `fingerprint` (random unless given).
        - The alert goes in as the `alert` start signal unless `signal_alert=False` (workflows the intake
          never starts, e.g. `hotfix_cycle`, or started without one); `start_signal=(name, arg)` sends
          another start signal instead.
        - `incident_policy` replaces the policy file's (roles, escalation chain) for this incident.
        - `input_type` and `**fields` build a runbook's own input (`HandoffInput(handoff=...)`,
          `HotfixInput(issue=..., max_iterations=...)`); `result_type` is what `handle.result()` returns.
        - The input it started is `self.opened[handle.id]`.
        """
        alert = self.alert(
            runbook,
            target=target,
            alertname=alertname,
            labels=labels,
            annotations=annotations,
            fingerprint=fingerprint,
            source=source,
        )
        incident = input_type(
            incident_id=workflow_id.format(fingerprint=alert.fingerprint),
            runbook=runbook,
            severity=severity,
            service=service,
            summary=alert.summary,
            alert=alert,
            target=target,
            policy=incident_policy if incident_policy is not None else self.policy.incident_policy(),
            **fields,
        )
        self.opened[incident.incident_id] = incident
        signal: dict[str, Any] = {}
        if start_signal is not None:
            signal = {"start_signal": start_signal[0], "start_signal_args": [start_signal[1]]}
        elif signal_alert:
            signal = {"start_signal": "alert", "start_signal_args": [alert]}
        return await self.client.start_workflow(
            runbook,
            incident,
            id=incident.incident_id,
            task_queue=self.task_queue,
            result_type=result_type,
            **signal,
        )

    async def agent_emergency_stop(
        self, agent_id: str, workflow_id: str = "incident-test-{fingerprint}"
    ) -> WorkflowHandle[Any, IncidentResult]:
        """The suite's most common incident: support agent `agent_id` of customer acme makes things up."""
        return await self.open(
            "agent_emergency_stop",
            workflow_id=workflow_id,
            alertname="AgentHallucination",
            target={"agent_id": agent_id, "customer": "acme"},
            labels={"agent": agent_id, "customer": "acme"},
            annotations={"summary": f"{agent_id} promised a 90% discount"},
            service="support",
        )

    async def number_banned(
        self, channel: str, *, severity: Severity = Severity.P1, **options: Any
    ) -> WorkflowHandle[Any, IncidentResult]:
        """The provider banned the number of customer acme's WhatsApp channel `channel`."""
        return await self.open(
            "number_banned",
            alertname="WhatsAppNumberBanned",
            target={"channel": channel, "customer": "acme"},
            annotations={"summary": f"WhatsAppNumberBanned on {channel}"},
            severity=severity,
            service="whatsapp",
            **options,
        )

    async def channel_down(
        self, channel: str, *, severity: Severity = Severity.P1, **options: Any
    ) -> WorkflowHandle[Any, IncidentResult]:
        """Customer acme's WhatsApp channel `channel` is down; its runtime's restarts counted by `rt-<channel>`."""
        return await self.open(
            "channel_downtime",
            alertname="WhatsAppChannelDown",
            target={
                "channel": channel,
                "runtime": "chat-runtime",
                "subsystem": f"rt-{channel}",
                "customer": "acme",
            },
            annotations={"summary": f"WhatsAppChannelDown on {channel}"},
            severity=severity,
            service="whatsapp",
            **options,
        )

    async def agent_hallucination_triage(
        self,
        *,
        service: str,
        summary: str,
        workflow_id: str = "incident-triage-agent-hallucination-{fingerprint}",
        fingerprint: str | None = None,
        severity: Severity | None = None,
        incident_policy: IncidentPolicy | None = None,
        **fields: Any,
    ) -> tuple[WorkflowHandle[Any, IncidentResult], TriageInput]:
        """What the intake opens for `AgentHallucination` without its `agent` label: a triage incident on
        the policy's `agent-hallucination` route (severity, problem, hand-over id); `fields` replace the
        route's fields (`route=None` for an unrouted alert). Returns its handle and its input."""
        route = self.policy.route_named("agent-hallucination")
        assert route is not None
        without_agent: dict[str, Any] = {
            "alertname": "AgentHallucination",
            "target": {},
            "labels": {"severity": "critical", "service": service},
            "annotations": {"summary": summary},
            "fingerprint": fingerprint or uuid.uuid4().hex[:16],
        }
        alert = self.alert(TRIAGE_WORKFLOW, **without_agent)
        route_fields: dict[str, Any] = {
            "route": route.name,
            "suggested_runbook": route.runbook,
            "problems": [
                TriageProblem(field="labels.agent", problem="required by route 'agent-hallucination'")
            ],
            "runbook_incident_ids": {route.runbook: runbook_incident_id(alert, route)},
        }
        handle = await self.open(
            TRIAGE_WORKFLOW,
            **without_agent,
            severity=route.severity if severity is None else severity,
            service=service,
            workflow_id=workflow_id,
            incident_policy=incident_policy,
            input_type=TriageInput,
            **(route_fields | fields),
        )
        triage = self.opened[handle.id]
        assert isinstance(triage, TriageInput) and triage.alert == alert
        return handle, triage


# ---- the escalation ladder ------------------------------------------------------------------------------

# The shipped policy's ladder (config/stanch.toml): asked at 0, the team lead at 30 min, unattended from
# 60 min, the team lead paged again every 30 min (90 ... 1410 min), closed unattended 24 h after asking.
SHIPPED_LADDER_REPEATS = 45


def repeat_pages(count: int = SHIPPED_LADDER_REPEATS, gate: str = "gate1") -> list[str]:
    """The audit steps of the pages an unattended gate sends again, in order."""
    return [f"{gate}-repeat-{n}" for n in range(1, count + 1)]
