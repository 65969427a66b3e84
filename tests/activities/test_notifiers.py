"""Notify by priority: each vendor's wire format against real local receivers (HTTP under uvicorn, SMTP
under aiosmtpd), fallback within a group, bounded timeouts, the delivery ledger, priority routing, the
policy's validation, and that no configured secret leaks into a receipt, an error, a log line or the audit."""

from __future__ import annotations

import base64
import email
import email.policy
import logging
import socket
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from psycopg_pool import AsyncConnectionPool
from pydantic import SecretStr
from temporalio.client import WorkflowHandle
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from activities.notifiers.base import DeliveryFailed
from activities.notifiers.discord import CONTENT_LIMIT, DiscordConfig, DiscordNotifier
from activities.notifiers.email import EmailConfig, EmailNotifier
from activities.notifiers.slack import SlackConfig, SlackNotifier
from activities.notifiers.telegram import TelegramConfig, TelegramNotifier
from activities.notifiers.webhook import WebhookConfig, WebhookNotifier
from activities.notify import NotifyActivities
from schemas.actions import NotificationReceipt
from schemas.approvals import ApprovalAnswer
from schemas.briefs import Timeline
from stanch.policy import Policy, PolicyError, load_policy
from stanch.settings import Settings
from tests.helpers import (
    SMTP_PASSWORD,
    Incidents,
    Mailbox,
    Running,
    audit_rows,
    chat_messages,
    free_port,
    new_agent,
    until_state,
    write_policy,
)
from tests.helpers_notify import Receiver, notification, prefix
from workers.worker import activity_implementations, build_worker, notify_activities

# ---- local receivers (shared ones in tests/helpers_notify.py) ---------------------------------------


@pytest.fixture
def hung_url() -> Iterator[str]:
    """A port whose kernel completes the handshake and takes the request, but that never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/hook"


@pytest.fixture
async def pool(postgres_settings: Settings) -> AsyncIterator[AsyncConnectionPool]:
    async with AsyncConnectionPool(
        postgres_settings.database_url, min_size=1, max_size=2, open=False
    ) as pool:
        yield pool


# ---- each vendor's wire format ---------------------------------------------------------------------------


async def test_slack_posts_text_and_blocks_to_the_webhook_url(
    receiver: Receiver, http: httpx.AsyncClient
) -> None:
    path = f"{prefix()}/services/T000/B000/{uuid.uuid4().hex}"
    receiver.answer(path, 200, b"ok")
    slack = SlackNotifier("slack-oncall", SlackConfig(url=SecretStr(receiver.url + path)), http)

    await slack.send(notification(text="<@U123> & co said <script>"))

    [request] = receiver.to(path)
    assert request.method == "POST" and request.headers["content-type"] == "application/json"
    body = request.json()
    assert body["text"].startswith("[P1] Agent support-bot paused")
    header, section, context = body["blocks"]
    assert header == {
        "type": "header",
        "text": {"type": "plain_text", "text": "[P1] Agent support-bot paused"},
    }
    # Alert text in a plain_text block: Slack renders no mention, link or formatting from it.
    assert section["text"] == {"type": "plain_text", "text": "<@U123> & co said <script>"}
    assert body["text"].endswith("&lt;@U123&gt; &amp; co said &lt;script&gt;")
    assert "incident-test-1" in context["elements"][0]["text"]


async def test_telegram_calls_send_message_with_the_token_in_the_path(
    receiver: Receiver, http: httpx.AsyncClient
) -> None:
    base, token = receiver.url + prefix(), "123456:AA" + uuid.uuid4().hex
    path = f"{base.removeprefix(receiver.url)}/bot{token}/sendMessage"
    receiver.answer(path, 200, b'{"ok":true,"result":{"message_id":7}}', "application/json")
    telegram = TelegramNotifier(
        "telegram-oncall", TelegramConfig(token=SecretStr(token), chat_id="-1001234", api_base=base), http
    )

    await telegram.send(notification(severity="P0", text="5 < 6 & ok"))

    [request] = receiver.to(path)
    assert request.headers["content-type"] == "application/json"
    body = request.json()
    assert body["chat_id"] == -1001234 and body["parse_mode"] == "HTML"
    assert body["text"].startswith("<b>[P0] Agent support-bot paused</b>\n5 &lt; 6 &amp; ok\n<i>")
    assert "incident-test-1" in body["text"]


async def test_telegram_refusal_is_reported_without_the_token(
    receiver: Receiver, http: httpx.AsyncClient
) -> None:
    base, token = receiver.url + prefix(), "987654:BB" + uuid.uuid4().hex
    path = f"{base.removeprefix(receiver.url)}/bot{token}/sendMessage"
    refusal = b'{"ok":false,"error_code":400,"description":"Bad Request: chat not found"}'
    receiver.answer(path, 400, refusal, "application/json")
    telegram = TelegramNotifier(
        "telegram-oncall", TelegramConfig(token=SecretStr(token), chat_id="@oncall", api_base=base), http
    )

    with pytest.raises(DeliveryFailed) as failed:
        await telegram.send(notification())

    assert "chat not found" in str(failed.value)
    assert token not in str(failed.value) and token not in repr(telegram)
    assert receiver.to(path)[0].json()["chat_id"] == "@oncall"


async def test_discord_posts_content_capped_at_2000_characters(
    receiver: Receiver, http: httpx.AsyncClient
) -> None:
    path = f"{prefix()}/api/webhooks/42/{uuid.uuid4().hex}"
    receiver.answer(path, 204)
    discord = DiscordNotifier("discord-oncall", DiscordConfig(url=SecretStr(receiver.url + path)), http)

    await discord.send(notification(severity="P2", text="@everyone " + "x" * 3000))

    body = receiver.to(path)[0].json()
    assert set(body) == {"content", "allowed_mentions"}
    assert body["content"].startswith("**\\[P2\\] Agent support\\-bot paused**\n\\@everyone xxx")
    assert len(body["content"]) == CONTENT_LIMIT
    assert body["allowed_mentions"] == {"parse": []}  # the alert's "@everyone" pings nobody


async def test_webhook_posts_the_notification_with_an_idempotency_key(
    receiver: Receiver, http: httpx.AsyncClient
) -> None:
    path = f"{prefix()}/hook"
    receiver.answer(path, 201, b"{}", "application/json")
    message = notification(recipient="carol")

    await WebhookNotifier("cockpit", WebhookConfig(url=SecretStr(receiver.url + path)), http).send(message)

    [request] = receiver.to(path)
    assert request.headers["idempotency-key"] == message.idempotency_key
    assert request.headers["content-type"] == "application/json"
    body = request.json()
    sent_at = datetime.fromisoformat(body.pop("sent_at"))
    assert sent_at.tzinfo is not None
    assert body == message.model_dump(mode="json")


async def test_email_sends_plain_text_and_html_with_from_to_subject_after_login(
    mailbox: tuple[Mailbox, int],
) -> None:
    box, port = mailbox
    config = EmailConfig(
        host="127.0.0.1",
        port=port,
        starttls=False,
        username="stanch",
        password=SecretStr(SMTP_PASSWORD),
        from_address="stanch@example.com",
        to=["oncall@example.com", "lead@example.com"],
    )
    message = notification(severity="P0", recipient="carol")

    await EmailNotifier("email-oncall", config).send(message)

    assert box.logins == [("stanch", SMTP_PASSWORD)]
    [envelope] = box.messages
    assert envelope.mail_from == "stanch@example.com"
    assert envelope.rcpt_tos == ["oncall@example.com", "lead@example.com"]
    assert isinstance(envelope.content, bytes)
    mail = email.message_from_bytes(envelope.content, policy=email.policy.default)
    assert mail["From"] == "stanch@example.com"
    assert mail["To"] == "oncall@example.com, lead@example.com"
    assert mail["Subject"] == "[P0] Agent support-bot paused"
    assert mail.get_content_type() == "multipart/alternative"
    text_part = mail.get_body(preferencelist=("plain",))
    assert text_part is not None
    text = text_part.get_content()
    assert message.text in text and "Severity P0" in text and "incident-test-1" in text and "carol" in text


async def test_email_refused_login_does_not_show_the_password(mailbox: tuple[Mailbox, int]) -> None:
    box, port = mailbox
    wrong = "wrong-" + uuid.uuid4().hex
    config = EmailConfig(
        host="127.0.0.1",
        port=port,
        starttls=False,
        username="stanch",
        password=SecretStr(wrong),
        from_address="stanch@example.com",
        to=["oncall@example.com"],
    )
    with pytest.raises(DeliveryFailed) as failed:
        await EmailNotifier("email-oncall", config).send(notification())
    assert "SMTPAuthenticationError" in str(failed.value) and wrong not in str(failed.value)
    assert box.messages == []


# ---- routing, fallback, timeouts, ledger -----------------------------------------------------------------


def routing_policy(tmp_path: Path, *, instant: str, extra: str = "") -> Policy:
    """`cockpit` and `customer-chat` are channels used as groups of one; `instant` is a real group."""
    return load_policy(
        write_policy(
            tmp_path,
            f"""
            [[escalation]]
            name = "team-lead"
            notify = ["carol"]

            [people.carol]  # no channels of her own: her pages take the groups (the fallback)

            [notify]
            P0 = ["instant"]
            P1 = ["cockpit", "instant"]
            P2 = ["cockpit"]
            P3 = ["cockpit"]
            customer = ["customer-chat"]
            escalation = ["instant"]

            [notify.groups]
            instant = {instant}

            [channels.cockpit]
            type = "webhook"
            url_env = "HOOK_COCKPIT"

            [channels.customer-chat]
            type = "webhook"
            url_env = "HOOK_CUSTOMER"

            [channels.primary]
            type = "webhook"
            url_env = "HOOK_PRIMARY"
            timeout_seconds = 0.5

            [channels.secondary]
            type = "webhook"
            url_env = "HOOK_SECONDARY"
            {extra}
            """,
        )
    )


def hooks(receiver: Receiver, base: str, **urls: str) -> dict[str, str]:
    """Environment for routing_policy: each channel at its own path under `base`, unless given."""
    names = ("cockpit", "customer", "primary", "secondary")
    env = {f"HOOK_{name.upper()}": f"{receiver.url}{base}/{name}" for name in names}
    env.update({f"HOOK_{name.upper()}": url for name, url in urls.items()})
    return env


def build(
    policy: Policy,
    settings: Settings,
    http: httpx.AsyncClient,
    pool: AsyncConnectionPool,
    env: Mapping[str, str],
) -> NotifyActivities:
    return NotifyActivities.from_policy(policy, settings, http, pool, environ=env)


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"severity": "P0"}, ["primary"]),
        ({"severity": "P1"}, ["cockpit", "primary"]),
        ({"severity": "P2"}, ["cockpit"]),
        ({"severity": "P3"}, ["cockpit"]),
        ({"severity": "P0", "channel": "customer"}, ["customer"]),
        ({"severity": "P3", "channel": "team-lead", "recipient": "carol"}, ["primary"]),
        ({"severity": "P3", "channel": "renamed-level", "escalation": True}, ["primary"]),
    ],
    ids=["P0", "P1", "P2", "P3", "customer", "escalation-level", "escalation-flag"],
)
async def test_priority_picks_the_groups(
    receiver: Receiver,
    tmp_path: Path,
    postgres_settings: Settings,
    http: httpx.AsyncClient,
    pool: AsyncConnectionPool,
    changes: dict[str, Any],
    expected: list[str],
) -> None:
    base = prefix()
    policy = routing_policy(tmp_path, instant='["primary", "secondary"]')
    notify = build(policy, postgres_settings, http, pool, hooks(receiver, base))

    receipt = await notify.send_notification(notification(**changes))

    reached = [r.path.rsplit("/", 1)[1] for r in receiver.requests if r.path.startswith(base + "/")]
    assert reached == expected
    assert [d.channel for d in receipt.deliveries] == [
        "customer-chat" if name == "customer" else name for name in expected
    ]
    assert all(d.delivered and d.transport == "webhook" for d in receipt.deliveries)


async def test_notifier_fallback_tries_the_next_channel_and_lists_each_failure(
    receiver: Receiver,
    tmp_path: Path,
    postgres_settings: Settings,
    http: httpx.AsyncClient,
    pool: AsyncConnectionPool,
) -> None:
    base = prefix()
    receiver.answer(f"{base}/primary", 500, b"upstream exploded")
    refused = f"http://127.0.0.1:{free_port()}/nobody-listens"
    extra = '[channels.refused]\ntype = "webhook"\nurl_env = "HOOK_REFUSED"'
    policy = routing_policy(tmp_path, instant='["primary", "refused", "secondary"]', extra=extra)
    notify = build(policy, postgres_settings, http, pool, hooks(receiver, base) | {"HOOK_REFUSED": refused})

    receipt = await notify.send_notification(notification(severity="P0"))

    assert receipt.delivered
    assert [(d.channel, d.delivered) for d in receipt.deliveries] == [
        ("primary", False),
        ("refused", False),
        ("secondary", True),
    ]
    assert receipt.deliveries[0].error == "HTTP 500: upstream exploded"
    assert receipt.deliveries[1].error.startswith("ConnectError")
    assert len(receiver.to(f"{base}/primary")) == 1 and len(receiver.to(f"{base}/secondary")) == 1


async def test_a_hung_channel_falls_back_within_its_timeout(
    receiver: Receiver,
    tmp_path: Path,
    hung_url: str,
    postgres_settings: Settings,
    http: httpx.AsyncClient,
    pool: AsyncConnectionPool,
) -> None:
    base = prefix()
    policy = routing_policy(tmp_path, instant='["primary", "secondary"]')  # primary: timeout_seconds = 0.5
    notify = build(policy, postgres_settings, http, pool, hooks(receiver, base, primary=hung_url))

    started = time.monotonic()
    receipt = await notify.send_notification(notification(severity="P0"))

    assert time.monotonic() - started < 3
    assert [(d.channel, d.delivered, d.error) for d in receipt.deliveries] == [
        ("primary", False, "no answer within 0.5 s"),
        ("secondary", True, ""),
    ]
    assert len(receiver.to(f"{base}/secondary")) == 1


async def test_a_group_without_a_working_channel_fails_retryably_and_the_retry_skips_delivered_groups(
    receiver: Receiver,
    tmp_path: Path,
    postgres_settings: Settings,
    http: httpx.AsyncClient,
    pool: AsyncConnectionPool,
) -> None:
    base = prefix()
    receiver.answer(f"{base}/primary", 503, b"down")
    receiver.answer(f"{base}/secondary", 502, b"down too")
    policy = routing_policy(tmp_path, instant='["primary", "secondary"]')
    notify = build(policy, postgres_settings, http, pool, hooks(receiver, base))
    message = notification(severity="P1")

    with pytest.raises(ApplicationError) as failed:
        await notify.send_notification(message)
    assert failed.value.type == "NotificationUndelivered" and not failed.value.non_retryable
    assert "primary: HTTP 503: down" in str(failed.value) and "secondary: HTTP 502: down too" in str(
        failed.value
    )

    # The outage ends; Temporal retries the activity with the same input.
    receiver.answer(f"{base}/secondary", 200)
    receipt = await notify.send_notification(message)

    assert len(receiver.to(f"{base}/cockpit")) == 1  # delivered by the first attempt, not again
    assert [(d.channel, d.delivered, d.replayed) for d in receipt.deliveries] == [
        ("cockpit", True, True),
        ("primary", False, False),
        ("secondary", True, False),
    ]


async def test_a_retried_notification_reaches_each_channel_once(
    receiver: Receiver,
    tmp_path: Path,
    postgres_settings: Settings,
    http: httpx.AsyncClient,
    pool: AsyncConnectionPool,
) -> None:
    # Slack and Telegram have no idempotency key: only the ledger keeps a retry from posting twice.
    base = prefix()
    token = "555:TG" + uuid.uuid4().hex
    slack_path = f"{base}/services/T/B/{uuid.uuid4().hex}"
    telegram_path = f"{base}/bot{token}/sendMessage"
    receiver.answer(telegram_path, 200, b'{"ok":true,"result":{}}', "application/json")
    policy = load_policy(
        write_policy(
            tmp_path,
            f"""
            [notify]
            P0 = ["slack-oncall"]
            P1 = ["slack-oncall", "telegram-oncall"]
            P2 = ["slack-oncall"]
            P3 = ["slack-oncall"]
            customer = ["slack-oncall"]
            escalation = ["slack-oncall"]

            [channels.slack-oncall]
            type = "slack"
            url_env = "T_SLACK_URL"

            [channels.telegram-oncall]
            type = "telegram"
            token_env = "T_TELEGRAM_TOKEN"
            chat_id = "-100"
            api_base = "{receiver.url}{base}"
            """,
        )
    )
    env = {"T_SLACK_URL": receiver.url + slack_path, "T_TELEGRAM_TOKEN": token}
    notify = build(policy, postgres_settings, http, pool, env)
    message = notification(severity="P1")

    first = await notify.send_notification(message)
    second = await notify.send_notification(message)

    assert len(receiver.to(slack_path)) == 1 and len(receiver.to(telegram_path)) == 1
    assert [(d.channel, d.transport, d.replayed) for d in first.deliveries] == [
        ("slack-oncall", "slack", False),
        ("telegram-oncall", "telegram", False),
    ]
    assert all(d.delivered and d.replayed for d in second.deliveries)
    # A different notification is a different key: it goes out.
    await notify.send_notification(notification(severity="P0"))
    assert len(receiver.to(slack_path)) == 2


async def test_secrets_stay_out_of_receipts_errors_and_logs(
    receiver: Receiver,
    tmp_path: Path,
    postgres_settings: Settings,
    http: httpx.AsyncClient,
    pool: AsyncConnectionPool,
    caplog: pytest.LogCaptureFixture,
) -> None:
    base = prefix()
    token = "777:SECRET" + uuid.uuid4().hex
    slack_secret = "SLACKSECRET" + uuid.uuid4().hex
    receiver.answer(
        f"{base}/bot{token}/sendMessage",
        401,
        b'{"ok":false,"description":"Unauthorized ' + token.encode() + b'"}',
    )
    receiver.answer(f"{base}/services/{slack_secret}", 404, b"no_service " + slack_secret.encode())
    policy = load_policy(
        write_policy(
            tmp_path,
            f"""
            [notify]
            P0 = ["instant"]
            P1 = ["instant"]
            P2 = ["instant"]
            P3 = ["instant"]
            customer = ["instant"]
            escalation = ["instant"]

            [notify.groups]
            instant = ["telegram-oncall", "slack-oncall"]

            [channels.slack-oncall]
            type = "slack"
            url_env = "S_SLACK_URL"

            [channels.telegram-oncall]
            type = "telegram"
            token_env = "S_TELEGRAM_TOKEN"
            chat_id = "1"
            api_base = "{receiver.url}{base}"
            """,
        )
    )
    env = {"S_SLACK_URL": f"{receiver.url}{base}/services/{slack_secret}", "S_TELEGRAM_TOKEN": token}
    notify = build(policy, postgres_settings, http, pool, env)
    caplog.set_level(logging.INFO)

    with pytest.raises(ApplicationError) as failed:
        await notify.send_notification(notification(severity="P0"))

    # The vendors even echoed the secrets back in their error bodies; none of it survives.
    text = f"{failed.value} {failed.value!r} {notify!r} {policy!r} {caplog.text}"
    assert "Unauthorized ***" in str(failed.value) and "no_service ***" in str(failed.value)
    assert token not in text and slack_secret not in text
    assert any(record.name == "httpx" and "***" in record.getMessage() for record in caplog.records)


# ---- the policy --------------------------------------------------------------------------------------------

MINIMAL_NOTIFY = """
[notify]
P0 = ["instant"]
P1 = ["instant"]
P2 = ["instant"]
P3 = ["instant"]
customer = ["hook"]
escalation = ["instant"]
"""


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            MINIMAL_NOTIFY
            + '[notify.groups]\ninstant = ["slak"]\n[channels.hook]\ntype = "webhook"\nurl_env = "X"',
            "notify: groups.instant: unknown channel 'slak'",
        ),
        (
            MINIMAL_NOTIFY.replace('P2 = ["instant"]', 'P2 = ["cokpit"]')
            + '[notify.groups]\ninstant = ["hook"]\n[channels.hook]\ntype = "webhook"\nurl_env = "X"',
            "notify: P2: unknown group or channel 'cokpit'",
        ),
        (
            MINIMAL_NOTIFY
            + '[notify.groups]\ninstant = ["hook"]\n[channels.hook]\ntype = "slack"\nurl = "https://x"',
            "channels.hook.slack.url",
        ),
        (
            MINIMAL_NOTIFY + '[notify.groups]\ninstant = ["hook"]\n[channels.hook]\ntype = "webhook"',
            "give exactly one of url_env or url_setting",
        ),
        (
            MINIMAL_NOTIFY
            + '[notify.groups]\ninstant = ["hook"]\n[channels.hook]\ntype = "pager"\nurl_env = "X"',
            "channels.hook",
        ),
    ],
    ids=["unknown-channel", "unknown-group", "secret-in-file", "webhook-without-url", "unknown-type"],
)
def test_policy_errors_name_the_key(tmp_path: Path, body: str, expected: str) -> None:
    with pytest.raises(PolicyError) as refused:
        load_policy(write_policy(tmp_path, body))
    assert expected in str(refused.value)


async def test_a_missing_secret_stops_the_worker_with_one_line_naming_it(
    tmp_path: Path,
    postgres_settings: Settings,
    http: httpx.AsyncClient,
    pool: AsyncConnectionPool,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = write_policy(
        tmp_path,
        MINIMAL_NOTIFY + '[notify.groups]\ninstant = ["hook"]\n'
        '[channels.hook]\ntype = "slack"\nurl_env = "STANCH_TEST_UNSET_SLACK_URL"\n',
    )
    monkeypatch.delenv("STANCH_TEST_UNSET_SLACK_URL", raising=False)
    settings = postgres_settings.model_copy(update={"config": config})

    with pytest.raises(SystemExit) as stopped:
        notify_activities(settings, http, pool)

    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "channels.hook.url_env: environment variable STANCH_TEST_UNSET_SLACK_URL is not set" in err


# ---- through a runbook: the failed channel is audited ------------------------------------------------------


async def test_notifier_fallback_is_audited_by_the_runbook(
    time_env: WorkflowEnvironment,
    settings: Settings,
    receiver: Receiver,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    secret = "hooks-secret-" + uuid.uuid4().hex
    slack_path = f"{prefix()}/services/T/B/{secret}"
    receiver.answer(slack_path, 500, b"internal_error")
    monkeypatch.setenv("STANCH_TEST_SLACK_URL", receiver.url + slack_path)
    config = write_policy(
        tmp_path,
        """
        [[escalation]]
        name = "team-lead"
        notify = ["carol"]

        [people.carol]

        [notify]
        P0 = ["instant"]
        P1 = ["cockpit", "instant"]
        P2 = ["cockpit"]
        P3 = ["cockpit"]
        customer = ["customer-chat"]
        escalation = ["instant"]

        [notify.groups]
        instant = ["slack-oncall", "oncall-webhook"]
        cockpit = ["cockpit-webhook"]

        [channels.slack-oncall]
        type = "slack"
        url_env = "STANCH_TEST_SLACK_URL"

        [channels.oncall-webhook]
        type = "webhook"
        url_setting = "notify_webhook_url"

        [channels.cockpit-webhook]
        type = "webhook"
        url_setting = "notify_webhook_url"

        [channels.customer-chat]
        type = "webhook"
        url_setting = "notify_webhook_url"
        """,
    )
    task_queue = f"test-{uuid.uuid4().hex[:8]}"
    worker_settings = settings.model_copy(update={"config": config, "task_queue": task_queue})
    policy = load_policy(config)
    async with (
        activity_implementations(worker_settings, time_env.client) as activities,
        build_worker(time_env.client, task_queue, activities),
    ):
        running = Running(time_env, time_env.client, task_queue, worker_settings)
        agent_id = new_agent(settings.platform_url)
        handle: WorkflowHandle[Any, Any] = await Incidents(
            running.client, task_queue, policy
        ).agent_emergency_stop(agent_id)
        await until_state(handle, "awaiting_approval")
        timeline = await handle.query("timeline", result_type=Timeline)
        await handle.signal("reject", ApprovalAnswer(approver="alice", action="rollback", comment="later"))
        await handle.result()

    rows = audit_rows(settings, handle.id)
    steps = [row["step_key"] for row in rows]
    assert steps[:5] == [
        "pause",
        "tell-customer",
        "tell-oncall",
        "tell-oncall-failed-slack-oncall",
        "gate1-requested",
    ]
    failure = rows[3]
    assert failure["outcome"] == "failed" and failure["reason"] == "HTTP 500: internal_error"
    assert failure["action"] == "Notify on-call via slack-oncall"
    assert rows[2]["outcome"] == "done"
    assert any("via slack-oncall failed" in entry.text for entry in timeline.entries)
    assert len(receiver.to(slack_path)) == 1  # the group succeeded by fallback: no activity retry
    # Cockpit and on-call both reach the sandbox chat with the same key: it shows the message once.
    assert [m["channel"] for m in chat_messages(settings.platform_url, handle.id)] == ["customer", "on-call"]
    # The secret URL is nowhere: not in the audit log, not in any payload of the workflow's history.
    payloads = history_payloads((await handle.fetch_history()).to_json_dict())
    assert secret not in f"{rows}" and not any(secret in payload for payload in payloads)
    receipt = NotificationReceipt.model_validate_json(
        next(payload for payload in payloads if '"deliveries"' in payload and "slack-oncall" in payload)
    )
    assert [(d.channel, d.delivered) for d in receipt.deliveries] == [
        ("cockpit-webhook", True),
        ("slack-oncall", False),
        ("oncall-webhook", True),
    ]


def history_payloads(node: Any) -> list[str]:
    """Every payload in a history's JSON form, decoded (the JSON keeps them base64-encoded)."""
    if isinstance(node, dict):
        found = [base64.b64decode(node["data"]).decode()] if isinstance(node.get("data"), str) else []
        return found + [payload for value in node.values() for payload in history_payloads(value)]
    if isinstance(node, list):
        return [payload for value in node for payload in history_payloads(value)]
    return []
