"""Security on the real stack (Temporal dev server, Postgres, sandbox, worker and intake as processes).

- Approvals: an approver outside the allowed roles, an action that was not recommended and the requester
  approving their own destructive action are refused. Through `stanch approve` (the `decide` update) the
  validator refuses before anything enters history, so there is no event and no audit row; through
  `temporal workflow signal` the gate records a `refused` timeline entry and audit row. Nothing changes on
  the platform either way.
- Intake with a token and an HMAC secret (a stack of this module's own): no token, a wrong token or a wrong
  signature is a 401 that starts nothing; oversized and hostile bodies are 4xx naming the field.
- Secrets: with every kind of notification secret configured (Slack, Telegram and Discord URLs/tokens, keyed
  webhooks, an SMTP password) and the intake's token and HMAC secret, runbooks notify through failures,
  timeouts and fallbacks; then no log file, no workflow history (any event, payload or failure), no
  Postgres row, and no other file the stack wrote holds any of those values.
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import psycopg
import pytest
from aiosmtpd.controller import Controller
from pydantic import SecretStr
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from schemas.briefs import Timeline
from stanch.ops.devstack import DevStack, settings_on_free_ports
from stanch.ops.samples import sample
from stanch.ops.signer import unsigned_notice
from stanch.settings import Settings
from stanch.temporal_client import connect
from tests.helpers import Mailbox, audit_rows, chat_messages, free_port, http_client, new_agent
from tests.helpers_intake import BAD_INPUT, raw, sign
from tests.stack import (
    activity_run,
    agent,
    applied,
    audit_settled,
    awaiting,
    brief_state,
    calls,
    eventually,
    fire,
    history,
    policy_with_notify,
    result_of,
    scheduled,
    stanch_cli,
    temporal_signal,
)

pytestmark = pytest.mark.e2e

OPENING = ["pause", "tell-customer", "tell-oncall", "gate1-requested"]
UPDATE_EVENTS = (
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ADMITTED,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_REJECTED,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED,
)


def events_of(settings: Settings, workflow_id: str, *types: EventType.ValueType) -> list[Any]:
    return [event for event in history(settings, workflow_id) if event.event_type in types]


def asked(settings: Settings, workflow_id: str, action: str) -> bool:
    try:
        return f"'{action}'" in awaiting(settings, workflow_id)
    except RPCError:  # a child the runbook has not started yet
        return False


def refusals(settings: Settings, workflow_id: str) -> list[tuple[str, str, str, str]]:
    """(step, actor, action, reason) of each refused answer, by step key: concurrent signal handlers write
    their rows in whichever order the writes finish."""
    rows = audit_rows(settings, workflow_id)
    return sorted(
        (row["step_key"], row["actor"], row["action"], row["reason"])
        for row in rows
        if row["outcome"] == "refused"
    )


def terminate_if_running(settings: Settings, workflow_id: str) -> None:
    async def terminate() -> None:
        handle = (await connect(settings)).get_workflow_handle(workflow_id)
        try:
            running = (await handle.describe()).status is WorkflowExecutionStatus.RUNNING
        except RPCError as error:
            if error.status is RPCStatusCode.NOT_FOUND:
                return
            raise
        if running:
            await handle.terminate(reason="test cleanup")

    asyncio.run(terminate())


# ---- approvals on the shared stack ----------------------------------------------------------------------


def test_outsider_and_unrecommended_approvals_are_refused_by_cli_and_by_signal(stack: Settings) -> None:
    agent_id = new_agent(stack.platform_url, ["v1", "v2"])
    workflow_id = fire(stack, "agent-hallucination", agent_id)
    eventually(lambda: brief_state(stack, workflow_id) == "awaiting_approval", "the approval request")
    outsider = "mallory may not decide 'rollback' (needs oncall, lead)"
    unrecommended = "'terminate' was not recommended; the pending action is 'rollback'"

    # The stanch CLI sends the `decide` update: its validator refuses at once, with one line and exit 1.
    for args, reason in [
        (("approve", workflow_id, "rollback", "--as", "mallory"), outsider),
        (("reject", workflow_id, "rollback", "--as", "mallory"), outsider),
        (("approve", workflow_id, "terminate", "--as", "alice"), unrecommended),
    ]:
        refused = stanch_cli(stack, *args)
        # Sent unsigned (the CLI finds no key here), as it says in one line before the refusal.
        expected = (1, "", f"{unsigned_notice()}\nstanch: refused: {reason}\n")
        assert (refused.returncode, refused.stdout, refused.stderr) == expected
    # A validator's refusal never enters history, so there is nothing to audit either.
    assert events_of(stack, workflow_id, *UPDATE_EVENTS) == []
    audit_settled(stack, workflow_id)
    assert [row["step_key"] for row in audit_rows(stack, workflow_id)] == OPENING

    # The same answers as signals (`temporal workflow signal`) are in history, refused and audited.
    temporal_signal(stack, workflow_id, "approve", {"approver": "mallory", "action": "rollback"})
    temporal_signal(stack, workflow_id, "approve", {"approver": "alice", "action": "terminate"})
    eventually(lambda: len(refusals(stack, workflow_id)) == 2, "both refusals audited")
    assert refusals(stack, workflow_id) == sorted(
        [
            ("refused-1", "mallory", "approval of rollback", outsider),
            ("refused-2", "alice", "approval of terminate", unrecommended),
        ]
    )
    signals = events_of(stack, workflow_id, EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED)
    approvals = [e.workflow_execution_signaled_event_attributes for e in signals]
    assert [(s.signal_name, s.identity) for s in approvals if s.signal_name == "approve"] == [
        ("approve", "mallory@laptop"),
        ("approve", "alice@laptop"),
    ]

    async def timeline() -> Timeline:
        client = await connect(stack)
        return await client.get_workflow_handle(workflow_id).query("timeline", result_type=Timeline)

    noted = [(e.actor, e.text) for e in asyncio.run(timeline()).entries if e.kind == "refused"]
    assert noted == [
        ("mallory", f"approval from mallory refused: {outsider}"),
        ("alice", f"approval from alice refused: {unrecommended}"),
    ]
    # Nothing happened on the platform, and the gate still waits.
    assert calls(stack, f"/agents/{agent_id}/rollback") == []
    assert (agent(stack, agent_id)["state"], agent(stack, agent_id)["version"]) == ("paused", "v2")
    assert brief_state(stack, workflow_id) == "awaiting_approval"

    # The refusals did not spoil the gate: a rightful approver still decides, once.
    approved = stanch_cli(stack, "approve", workflow_id, "rollback", "--as", "bob")
    assert approved.returncode == 0, approved.stderr
    assert result_of(stack, workflow_id).final_state == "rolled_back"
    assert applied(stack, f"/agents/{agent_id}/rollback") == 1
    assert [row["step_key"] for row in audit_rows(stack, workflow_id)][-3:] == [
        "gate1-decision",
        "rollback",
        "closed",
    ]


def test_the_requester_of_a_destructive_action_may_not_approve_it(stack: Settings) -> None:
    # A security incident on an agent with no earlier version cannot be fixed by a rollback: it is handed
    # to a human (`<id>-handoff-1`, P0) whose options include terminating the agent, a destructive one.
    agent_id = new_agent(stack.platform_url, ["v1"])
    parent = fire(stack, "security-p0", agent_id)
    handoff = f"{parent}-handoff-1"
    try:
        eventually(lambda: asked(stack, handoff, "keep-isolated"), "the handoff's approval request")

        # Dave rejects the recommendation and names the destructive option: that makes him its requester.
        rejected = stanch_cli(
            stack,
            "reject",
            handoff,
            "keep-isolated",
            "--as",
            "dave",
            "--comment",
            "terminate-agent: no trust",
        )
        assert rejected.returncode == 0, rejected.stderr
        eventually(lambda: asked(stack, handoff, "terminate-agent"), "the terminate-agent approval request")
        self_approval = "dave requested the destructive action 'terminate-agent' and may not approve it"

        refused = stanch_cli(stack, "approve", handoff, "terminate-agent", "--as", "dave")
        assert (refused.returncode, refused.stderr) == (
            1,
            f"{unsigned_notice()}\nstanch: refused: {self_approval}\n",
        )
        # Only dave's own rejection went through as an update; the refused approval left no event.
        accepted = events_of(stack, handoff, EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED)
        assert len(accepted) == 1
        assert refusals(stack, handoff) == []

        temporal_signal(stack, handoff, "approve", {"approver": "dave", "action": "terminate-agent"})
        eventually(lambda: refusals(stack, handoff), "the refusal audited")
        assert refusals(stack, handoff) == [
            ("refused-1", "dave", "approval of terminate-agent", self_approval)
        ]
        assert asked(stack, handoff, "terminate-agent")
        desk = http_client.get(f"{stack.platform_url}/handoffs/{handoff}").json()
        assert (desk["status"], desk["executed_option"]) == ("open", None)
        assert calls(stack, f"/handoffs/{handoff}/execute") == []
        assert agent(stack, agent_id)["state"] == "paused"

        # Someone else closes it by rejecting: nothing is carried out.
        closed = stanch_cli(stack, "reject", handoff, "terminate-agent", "--as", "erin")
        assert closed.returncode == 0, closed.stderr
        assert result_of(stack, parent).final_state == "escalated"
        assert calls(stack, f"/handoffs/{handoff}/execute") == []
        assert agent(stack, agent_id)["state"] == "paused"
    finally:
        # The kill switch started this agent's guardrail, a workflow that lives on; and a failed assertion
        # must not leave the incident parked on the shared stack.
        for workflow_id in (parent, handoff, f"guardrail-{agent_id}"):
            terminate_if_running(stack, workflow_id)


# ---- a stack of this module's own: intake token and HMAC secret, a channel of every kind -----------------


@dataclass
class Secured:
    settings: Settings
    secrets: dict[str, str]
    mailbox: Mailbox

    @property
    def intake(self) -> str:
        return f"http://127.0.0.1:{self.settings.intake_port}"

    def post(self, body: bytes, source: str = "alertmanager", **headers: str) -> httpx.Response:
        """POST as a configured sender does: bearer token and signature, unless `headers` say otherwise."""
        signed = {
            "authorization": f"Bearer {self.secrets['intake token']}",
            "x-stanch-signature": "sha256=" + sign(self.secrets["intake HMAC secret"], body),
            "content-type": "application/json",
        }
        sent = {name: value for name, value in {**signed, **headers}.items() if value}
        return http_client.post(f"{self.intake}/alerts/{source}", content=body, headers=sent, timeout=30)

    def fire(self, agent_id: str) -> str:
        answer = self.post(raw(sample("agent-hallucination", agent=agent_id)))
        assert answer.status_code == 202, answer.text
        return str(answer.json()["incidents"][0]["workflow_id"])


def secret_value(prefix: str, hex_chars: int = 32) -> str:
    return prefix + secrets.token_hex(hex_chars // 2)


def notify_section(sandbox: str, smtp_port: int) -> str:
    """Every on-call message walks five failing channels (404, a Telegram refusal, a hang, a refused SMTP
    login, a port nobody listens on) before a keyed webhook takes it; the customer chat is keyed too."""
    return f"""
[notify]
P0 = ["instant"]
P1 = ["cockpit", "instant"]
P2 = ["cockpit"]
P3 = ["cockpit"]
customer = ["customer-chat"]
escalation = ["instant"]

[notify.groups]
instant = ["slack-oncall", "telegram-oncall", "discord-oncall", "email-oncall", "down-webhook", "keyed-webhook"]
cockpit = ["cockpit-webhook"]

[channels.slack-oncall]
type = "slack"
url_env = "STANCH_TEST_SLACK_WEBHOOK_URL"

[channels.telegram-oncall]
type = "telegram"
token_env = "STANCH_TEST_TELEGRAM_BOT_TOKEN"
chat_id = "-1001234567890"
api_base = "{sandbox}/telegram"

[channels.discord-oncall]
type = "discord"
url_env = "STANCH_TEST_DISCORD_WEBHOOK_URL"
timeout_seconds = 1

[channels.email-oncall]
type = "email"
host = "127.0.0.1"
port = {smtp_port}
starttls = false
username = "stanch"
password_env = "STANCH_TEST_SMTP_PASSWORD"
from_address = "stanch@example.com"
to = ["oncall@example.com"]

[channels.down-webhook]
type = "webhook"
url_env = "STANCH_TEST_DOWN_WEBHOOK_URL"

[channels.keyed-webhook]
type = "webhook"
url_env = "STANCH_TEST_KEYED_WEBHOOK_URL"

[channels.cockpit-webhook]
type = "webhook"
url_setting = "notify_webhook_url"

[channels.customer-chat]
type = "webhook"
url_env = "STANCH_TEST_CUSTOMER_WEBHOOK_URL"
"""


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    ports = settings_on_free_ports(tmp_path_factory.mktemp("secured"))
    nobody = free_port()
    sandbox = ports.platform_url
    values = {
        "intake token": secret_value("itk"),
        "intake HMAC secret": secret_value("hms"),
        "Slack webhook key": secret_value("slk", 24),
        "Telegram bot token": f"{secrets.randbelow(10**9)}:AA{secrets.token_hex(16)}",
        "Discord webhook token": secret_value("dsc", 64),
        "SMTP password": secret_value("smtp"),
        "keyed webhook key": secret_value("whk"),
        "customer webhook key": secret_value("cwk"),
        "down webhook key": secret_value("dwk"),
    }
    environment = {
        "STANCH_TEST_SLACK_WEBHOOK_URL": f"{sandbox}/slack/services/T0STANCH/B0STANCH/{values['Slack webhook key']}",
        "STANCH_TEST_TELEGRAM_BOT_TOKEN": values["Telegram bot token"],
        "STANCH_TEST_DISCORD_WEBHOOK_URL": f"{sandbox}/discord/api/webhooks/1234/{values['Discord webhook token']}",
        "STANCH_TEST_SMTP_PASSWORD": values["SMTP password"],
        "STANCH_TEST_DOWN_WEBHOOK_URL": f"http://127.0.0.1:{nobody}/hook?key={values['down webhook key']}",
        "STANCH_TEST_KEYED_WEBHOOK_URL": f"{sandbox}/chat/messages?key={values['keyed webhook key']}",
        "STANCH_TEST_CUSTOMER_WEBHOOK_URL": f"{sandbox}/chat/messages?key={values['customer webhook key']}",
    }
    mailbox = Mailbox()
    smtp = Controller(
        mailbox,
        hostname="127.0.0.1",
        port=free_port(),
        authenticator=mailbox.authenticate,  # refuses: the password is not the one it knows
        auth_require_tls=False,
    )
    # The policy lives outside the stack's home, so a sweep of the home finds only what the stack wrote.
    config = policy_with_notify(
        tmp_path_factory.mktemp("policy") / "stanch.toml", notify_section(sandbox, smtp.port)
    )
    settings = ports.model_copy(
        update={
            "config": config,
            "intake_token": SecretStr(values["intake token"]),
            "intake_hmac_secret": SecretStr(values["intake HMAC secret"]),
        }
    )
    smtp.start()
    stack = DevStack(settings, log=lambda line: None)
    try:
        # The children copy the environment at start: channel secrets reach the worker, then leave ours.
        with pytest.MonkeyPatch.context() as env:
            for name, value in environment.items():
                env.setenv(name, value)
            stack.start()
        yield Secured(stack.settings, values, mailbox)
    finally:
        stack.stop()
        smtp.stop()


# ---- intake ---------------------------------------------------------------------------------------------


def never_started(settings: Settings, workflow_id: str) -> bool:
    async def describe() -> bool:
        client = await connect(settings)
        try:
            await client.get_workflow_handle(workflow_id).describe()
        except RPCError as error:
            return error.status is RPCStatusCode.NOT_FOUND
        return False

    return asyncio.run(describe())


def workflow_count(settings: Settings) -> int:
    async def count() -> int:
        client = await connect(settings)
        return (await client.count_workflows()).count

    return asyncio.run(count())


def test_intake_without_the_right_token_or_signature_is_401_and_starts_nothing(secured: Secured) -> None:
    settings = secured.settings
    agent_id = new_agent(settings.platform_url, ["v1", "v2"])
    body = raw(sample("agent-hallucination", agent=agent_id))
    token, hmac_secret = secured.secrets["intake token"], secured.secrets["intake HMAC secret"]

    refused = [
        secured.post(body, authorization="", **{"x-stanch-signature": ""}),
        secured.post(body, authorization="Bearer wrong-token"),
        secured.post(body, authorization=f"Basic {token}"),
        secured.post(body, **{"x-stanch-signature": ""}),
        secured.post(body, **{"x-stanch-signature": "sha256=" + sign("wrong-secret", body)}),
        secured.post(body, **{"x-stanch-signature": "sha256=" + sign(hmac_secret, raw({"another": "body"}))}),
    ]
    assert [answer.status_code for answer in refused] == [401] * 6
    assert [answer.json()["detail"][0]["field"] for answer in refused] == ["authorization"] * 3 + [
        "X-Stanch-Signature"
    ] * 3
    assert refused[0].headers["www-authenticate"] == "Bearer"
    workflow_id = f"incident-agent-hallucination-{agent_id}"
    assert never_started(settings, workflow_id)

    # The operator's own CLI gets through: `stanch fire` sends the token and signs the body.
    fired = stanch_cli(settings, "fire", "agent-hallucination", "--agent", agent_id)
    assert fired.returncode == 0, fired.stdout + fired.stderr
    assert json.loads(fired.stdout)["incidents"][0] == {
        "workflow_id": workflow_id,
        "runbook": "agent_emergency_stop",
        "action": "started",
        "alert": "AgentHallucination",
        "fingerprint": agent_id,
        "status": "firing",
    }
    eventually(lambda: brief_state(settings, workflow_id) == "awaiting_approval", "the approval request")
    # Only the accepted request acted: one pause, however many refused copies came before it.
    assert [call["status_code"] for call in calls(settings, f"/agents/{agent_id}/pause")] == [200]
    rejected = stanch_cli(settings, "reject", workflow_id, "rollback", "--as", "alice")
    assert rejected.returncode == 0, rejected.stderr
    assert result_of(settings, workflow_id).final_state == "contained"


def test_intake_answers_hostile_bodies_with_a_4xx_naming_the_field_and_triages_unusable_alerts(
    secured: Secured,
) -> None:
    settings = secured.settings
    before = workflow_count(settings)
    agent_id = new_agent(settings.platform_url, ["v1", "v2"])

    oversized = sample("agent-hallucination", agent=agent_id)
    oversized["alerts"][0]["annotations"]["description"] = "x" * settings.intake_max_body_bytes
    huge_agent = sample("agent-hallucination", agent="a" * 5_000)
    huge_subsystem = sample("security-p0", agent=agent_id)
    huge_subsystem["alerts"][0]["labels"]["subsystem"] = "s" * 50_000
    hostile = [
        *((source, body, status, field) for source, body, status, field in BAD_INPUT),
        ("alertmanager", raw(oversized), 413, "body"),
    ]
    answers = [(secured.post(body, source), status, field) for source, body, status, field in hostile]

    wrong = [
        (answer.status_code, answer.text[:200], status, field)
        for answer, status, field in answers
        if answer.status_code != status or answer.json()["detail"][0]["field"] != field
    ]
    assert wrong == []
    assert all(answer.json()["detail"][0]["error"] for answer, _, _ in answers)
    # A target label too long to act on is an alert all the same: a triage incident pages a human, naming
    # the label, and no runbook starts (issue #10: a 4xx would make Alertmanager drop the page).
    triaged = []
    for body, label in ((huge_agent, "labels.agent"), (huge_subsystem, "labels.subsystem")):
        answer = secured.post(raw(body), "alertmanager")
        assert answer.status_code == 202, answer.text[:200]
        [entry] = answer.json()["incidents"]
        assert entry["action"] == "triage" and label in entry["workflow_id"], entry
        triaged.append(entry["workflow_id"])
    assert never_started(settings, f"incident-agent-hallucination-{agent_id}")
    assert never_started(settings, f"incident-security-p0-{agent_id}")

    # The intake still takes a good alert, and it is the only workflow any of this started.
    fired = stanch_cli(settings, "fire", "agent-hallucination", "--agent", agent_id)
    assert fired.returncode == 0, fired.stdout + fired.stderr
    workflow_id = json.loads(fired.stdout)["incidents"][0]["workflow_id"]
    eventually(lambda: brief_state(settings, workflow_id) == "awaiting_approval", "the approval request")
    eventually(
        lambda: workflow_count(settings) == before + 1 + len(triaged),
        "the good alert's workflow and the two triage incidents, and no other",
    )
    assert [call["status_code"] for call in calls(settings, f"/agents/{agent_id}/pause")] == [200]
    assert calls(settings, f"/agents/{'a' * 5_000}/pause") == []
    rejected = stanch_cli(settings, "reject", workflow_id, "rollback", "--as", "alice")
    assert rejected.returncode == 0, rejected.stderr
    assert result_of(settings, workflow_id).final_state == "contained"


# ---- the secrets sweep ----------------------------------------------------------------------------------


def forms(name: str, value: str) -> dict[str, bytes]:
    """The ways a secret could be written down: as is, URL-encoded, base64 (SMTP AUTH LOGIN), and for the
    SMTP password also inside the AUTH PLAIN blob."""
    found = {
        "plain": value.encode(),
        "url-encoded": quote(value, safe="").encode(),
        "base64": base64.b64encode(value.encode()),
    }
    if name == "SMTP password":
        found["AUTH PLAIN"] = base64.b64encode(f"\0stanch\0{value}".encode())
    if found["url-encoded"] == found["plain"]:
        del found["url-encoded"]
    return found


def leaks(place: str, blob: bytes, values: dict[str, str]) -> list[str]:
    return [
        f"{name} ({form}) in {place}"
        for name, value in values.items()
        for form, written in forms(name, value).items()
        if written in blob
    ]


def stored_history(settings: Settings) -> dict[str, bytes]:
    """Everything Temporal keeps for the namespace: each workflow's full history (every event with its
    payloads, failures and stack traces, as the server stores them), its description (pending activities
    and their last failure), and each schedule."""

    async def collect() -> dict[str, bytes]:
        client = await connect(settings)
        kept: dict[str, bytes] = {}
        async for execution in client.list_workflows():
            handle = client.get_workflow_handle(execution.id, run_id=execution.run_id)
            events = (await handle.fetch_history()).events
            described = (await handle.describe()).raw_description
            # Keyed by workflow id: the runs of one id (a guardrail's continue-as-new) go together.
            for place, blob in (
                (f"history of {execution.id}", b"".join(event.SerializeToString() for event in events)),
                (f"description of {execution.id}", described.SerializeToString()),
            ):
                kept[place] = kept.get(place, b"") + blob
        async for listed in await client.list_schedules():
            described_schedule = await client.get_schedule_handle(listed.id).describe()
            kept[f"schedule {listed.id}"] = described_schedule.raw_description.SerializeToString()
        return kept

    return asyncio.run(collect())


def database_rows(settings: Settings) -> dict[str, bytes]:
    """Every row of every table of Stanch's database, all columns, as Postgres renders the row."""
    with psycopg.connect(settings.database_admin_url) as conn:
        tables = [
            row[0]
            for row in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
            )
        ]
        return {
            f"table {table}": "\n".join(
                row[0] for row in conn.execute(f'SELECT t::text FROM "{table}" t')
            ).encode()
            for table in tables
        }


def test_no_configured_secret_reaches_a_log_a_history_or_the_audit_log(secured: Secured) -> None:
    settings = secured.settings
    sandbox = settings.platform_url

    def inject(path_prefix: str, status: int, hang_seconds: float = 0) -> None:
        fault = {"path_prefix": path_prefix, "status": status, "times": 1, "hang_seconds": hang_seconds}
        http_client.post(f"{sandbox}/faults", json=fault).raise_for_status()

    try:
        # 1. An incident that notifies the customer (first try refused: the activity retries) and on-call
        #    (Discord hangs past its timeout), escalates by hand, and is approved.
        first = new_agent(sandbox, ["v1", "v2"])
        inject("/chat/messages", 500)
        inject("/discord/", 504, hang_seconds=3)
        workflow_id = secured.fire(first)
        eventually(lambda: brief_state(settings, workflow_id) == "awaiting_approval", "the approval request")
        escalated = stanch_cli(settings, "escalate", workflow_id, "--as", "alice", "--reason", "lead needed")
        assert escalated.returncode == 0, escalated.stderr
        eventually(lambda: brief_state(settings, workflow_id) == "escalated", "the escalation")
        approved = stanch_cli(settings, "approve", workflow_id, "rollback", "--as", "carol")
        assert approved.returncode == 0, approved.stderr
        assert result_of(settings, workflow_id).final_state == "rolled_back"

        # 2. An incident whose pause the platform refuses: on-call hears of it through the same channels.
        second = new_agent(sandbox, ["v1", "v2"])
        inject(f"/agents/{second}/pause", 404)
        failing = secured.fire(second)
        assert result_of(settings, failing).final_state == "action_failed"
    finally:
        http_client.delete(f"{sandbox}/faults").raise_for_status()

    # The paths were walked: every secret-bearing channel failed its own way and was audited, the keyed
    # webhooks delivered, and the secrets really went over the wire (so they had a chance to leak).
    reasons = {
        row["step_key"]: row["reason"]
        for row in audit_rows(settings, workflow_id)
        if row["outcome"] == "failed"
    }
    assert reasons["tell-oncall-failed-slack-oncall"].startswith("HTTP 404")
    assert reasons["tell-oncall-failed-telegram-oncall"].startswith("Telegram: HTTP 404")
    assert reasons["tell-oncall-failed-discord-oncall"] == "no answer within 1 s"
    assert reasons["tell-oncall-failed-email-oncall"].startswith("SMTP: SMTPAuthenticationError")
    assert reasons["tell-oncall-failed-down-webhook"].startswith("ConnectError")
    assert {f"gate1-escalate-1-failed-{name}" for name in ("slack-oncall", "email-oncall")} <= set(reasons)
    assert {"pause", "pause-failed-failed-email-oncall"} <= {
        row["step_key"] for row in audit_rows(settings, failing) if row["outcome"] == "failed"
    }
    told = [message["channel"] for message in chat_messages(sandbox, workflow_id)]
    assert told == ["customer", "on-call", "team-lead"]  # by the keyed webhooks, after every failure
    events = list(history(settings, workflow_id))
    started, _ = activity_run(events, scheduled(events, "send_notification", channel="customer"))
    retried = started.activity_task_started_event_attributes
    assert retried.attempt == 2 and "customer-chat: HTTP 500" in retried.last_failure.message
    assert ("stanch", secured.secrets["SMTP password"]) in secured.mailbox.logins
    on_the_wire = http_client.get(f"{sandbox}/calls").text.encode()
    assert {"Slack webhook key", "Telegram bot token", "Discord webhook token"} <= {
        found.split(" (")[0] for found in leaks("the sandbox's call log", on_the_wire, secured.secrets)
    }

    # The sweep.
    logs = {f"log {path.name}": path.read_bytes() for path in (settings.home / "logs").iterdir()}
    assert {"log worker.log", "log intake.log", "log temporal.log", "log postgres.log"} <= set(logs)
    kept = stored_history(settings)
    rows = database_rows(settings)
    assert f"history of {workflow_id}" in kept and rows["table audit_log"]
    # The places searched do hold what a failed delivery writes: a leak would have landed there.
    for place in (f"history of {workflow_id}", "table audit_log", "log worker.log"):
        assert b"SMTPAuthenticationError" in {**logs, **kept, **rows}[place], place
    # And everything the stack wrote to disk besides its logs: Temporal's SQLite file, Postgres's data.
    disk = {
        f"file {path.relative_to(settings.home)}": path.read_bytes()
        for path in settings.home.rglob("*")
        if path.is_file() and path.parent.name != "logs"
    }
    found = [
        leak
        for place, blob in {**logs, **kept, **rows, **disk}.items()
        for leak in leaks(place, blob, secured.secrets)
    ]
    assert not found, "\n".join(found)
