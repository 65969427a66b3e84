"""Alert text is data, never markup (issue #10, part 6): hostile annotations — HTML tags, Markdown images
and links, bold banners, headings, tables, entities, chat mentions, very long lines, control characters —
reach every sink as inert text. Markdown is judged by rendering it with a real CommonMark renderer
(markdown-it-py, with raw HTML and tables on, as the Temporal UI allows); HTML by parsing it; notifier
payloads by what a real local receiver got."""

from __future__ import annotations

import email
import email.policy
import html
import json
import re
import uuid
from html.parser import HTMLParser
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt
from pydantic import SecretStr
from temporalio.api.sdk.v1 import WorkflowMetadata

from activities.notifiers.discord import CONTENT_LIMIT, DiscordConfig, DiscordNotifier
from activities.notifiers.email import EmailConfig, EmailNotifier
from activities.notifiers.slack import SlackConfig, SlackNotifier
from activities.notifiers.telegram import TelegramConfig, TelegramNotifier
from schemas.briefs import Brief
from stanch import markup
from tests.helpers import Incidents, Mailbox, Running, new_agent, until_state
from tests.helpers_intake import start_dev_server
from tests.helpers_notify import Receiver, notification, prefix

FAKE_APPROVAL = "**APPROVED BY SECURITY — no action needed**"
HOSTILE = [
    '<img src="http://evil.example/x.png" onerror="alert(1)">',
    "![approved](http://evil.example/badge.png)",
    "[click to approve](http://evil.example/approve)",
    FAKE_APPROVAL,
    "# Resolved\n## by security",
    "| approved | yes |\n|---|---|\n| by | security |",
    "&lt;b&gt;entity&lt;/b&gt; &amp; &#x3C;img&#x3E;",
    "<!channel> <!here> <@U123> <#C42> <http://evil.example|docs> @everyone @here <@123456> <t:0:R>",
    "`code` ~~gone~~ ||spoiler|| > quoted -# subtext <script>alert(1)</script>",
    "terminal \x1b[31mred\x1b[0m bell\x07 nul\x00 rtl\u202eevil\u202c zw\u200bsp del\x7f c1\x9b",
    "http://bare.example/link www.bare.example",
    "x" * 20_000,
]
CONTROLS = ["\x1b", "\x07", "\x00", "\u202e", "\u202c", "\u200b", "\x7f", "\x9b"]
ALL = "\n".join(HOSTILE)

md = MarkdownIt("commonmark", {"html": True}).enable("table").enable("strikethrough")


class Tags(HTMLParser):
    """The tags and the text of an HTML fragment."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)

    def handle_data(self, data: str) -> None:
        self.text += data


def parse_html(fragment: str) -> Tags:
    parser = Tags()
    parser.feed(fragment)
    parser.close()
    return parser


def rendered(markdown_text: str) -> Tags:
    return parse_html(md.render(markdown_text))


# ---- the pure functions, one per sink syntax --------------------------------------------------------


@pytest.mark.parametrize("text", HOSTILE, ids=range(len(HOSTILE)))
def test_markdown_escaped_alert_text_renders_as_exactly_the_text(text: str) -> None:
    page = rendered(markup.markdown(text))
    assert page.tags == ["p"], page.tags  # no image, link, bold, heading, table, code, script
    assert page.text.strip() == markup.one_line(text)


@given(st.text())
@settings(max_examples=300, deadline=None)
def test_markdown_escaping_round_trips_any_text(text: str) -> None:
    page = rendered(markup.markdown(text))
    assert set(page.tags) <= {"p"}
    assert page.text.strip() == markup.one_line(text).strip()


def test_control_characters_are_made_visible_in_every_sink() -> None:
    sinks = [
        markup.plain,
        markup.markdown,
        markup.slack_mrkdwn,
        markup.discord_markdown,
        markup.telegram_html,
        markup.email_html,
        markup.header,
    ]
    for sink in sinks:
        out = sink(HOSTILE[9])
        assert not any(char in out for char in CONTROLS), (sink.__name__, out)
    assert "\\x1b[31mred" in markup.plain(HOSTILE[9]) and "\\u202e" in markup.plain(HOSTILE[9])
    assert markup.plain("two\r\nlines\tand a tab") == "two\nlines\tand a tab"


def test_slack_mrkdwn_leaves_no_angle_brackets_so_no_mention_or_link() -> None:
    out = markup.slack_mrkdwn(HOSTILE[7])
    assert "<" not in out and ">" not in out
    assert "&lt;!channel&gt;" in out and "&lt;@U123&gt;" in out and "&lt;http://evil.example|docs&gt;" in out
    assert re.sub(r"&(amp|lt|gt);", "", out).count("&") == 0


def test_discord_markdown_escapes_mentions_and_markup() -> None:
    out = markup.discord_markdown("\n".join(HOSTILE[:9]))
    assert not re.search(r"(?<!\\)@(everyone|here)", out)
    for char in "<*[]()`~|#>":
        assert not re.search(rf"(?<!\\){re.escape(char)}", out), char


@pytest.mark.parametrize("sink", [markup.telegram_html, markup.email_html])
def test_html_sinks_carry_no_tag_of_the_alert(sink: Any) -> None:
    page = parse_html(sink(ALL))
    assert set(page.tags) <= ({"br"} if sink is markup.email_html else set())
    assert "<img" in page.text and "<script>" in page.text and "&lt;b&gt;" in page.text


def test_limits_bound_the_escaped_text_without_cutting_an_escape() -> None:
    text = "<&>" * 5_000
    for sink in (markup.slack_mrkdwn, markup.telegram_html, markup.discord_markdown, markup.markdown):
        out = sink(text, limit=1_001)
        assert len(out) <= 1_001 and out.endswith(markup.ELLIPSIS)
        body = out.removesuffix(markup.ELLIPSIS)
        # The cut falls between whole escapes: the body is the escaping of some prefix of the text.
        assert any(sink(text[:n]) == body for n in range(len(body) + 1)), sink.__name__
    assert all(len(line) <= markup.MAX_LINE for line in markup.plain("y" * 50_000 + "\nshort").split("\n"))


@pytest.mark.parametrize("max_bytes", [300, 4_000])
def test_temporal_ui_text_is_literal_markdown_within_temporals_byte_limit(max_bytes: int) -> None:
    out = markup.temporal_ui_text(f"P1 agent_emergency_stop: {ALL}", max_bytes)
    assert len(json.dumps(out, ensure_ascii=False).encode()) <= max_bytes
    assert "\n" not in out
    page = rendered(out)
    assert page.tags == ["p"]
    assert page.text.strip().removesuffix(markup.ELLIPSIS) in markup.one_line(
        f"P1 agent_emergency_stop: {ALL}"
    )


async def test_temporal_keeps_the_escaped_static_summary_and_details_within_its_limits() -> None:
    # The dev server, not the time-skipping one: only it keeps user metadata (measured: None there).
    env = await start_dev_server()
    try:
        summary = markup.temporal_ui_text(f"P1 agent_emergency_stop: {ALL}", 300)
        details = markup.temporal_ui_text(f"Opened by alertmanager alert {ALL}", 4_000)
        handle = await env.client.start_workflow(
            "agent_emergency_stop",
            {"hostile": True},
            id=f"incident-hostile-{uuid.uuid4().hex[:8]}",
            task_queue=f"nobody-{uuid.uuid4().hex[:8]}",  # no worker: only the start is judged
            static_summary=summary,
            static_details=details,
        )
        description = await handle.describe()
        assert await description.static_summary() == summary
        assert await description.static_details() == details
        for stored in (summary, details):
            page = rendered(stored)
            assert page.tags == ["p"] and FAKE_APPROVAL[:20] in page.text
        await handle.terminate("test over")
    finally:
        await env.shutdown()


# ---- the brief: fields stay raw, the Markdown renders them inert, the CLI text is plain ----------------


def hostile_brief() -> Brief:
    at = "2026-12-01T00:00:00Z"
    return Brief.model_validate(
        {
            "incident_id": "incident-<img src=x>",
            "runbook": "agent_emergency_stop",
            "severity": "P1",
            "service": "[svc](http://evil.example)",
            "summary": ALL,
            "started_at": at,
            "last_update_at": at,
            "automatic_actions": ["Paused agent **boss**", "![x](http://evil.example/y.png)"],
            "state": "awaiting_approval",
            "recommendation": FAKE_APPROVAL,
            "risk_if_no_action": "<b>none</b>",
            "awaiting": "@everyone",
            # Platform answers can quote names an alert chose (a template, a version): escaped like the rest.
            "system_state": [
                {"name": "template **promo**", "value": "rejected: <img src=x>", "read_at": at},
                {"name": "memory", "value": "3.4 GB", "limit": "[watermark](http://evil.example)"},
            ],
        }
    )


def test_brief_markdown_keeps_stanchs_formatting_and_renders_alert_text_as_typed() -> None:
    brief = hostile_brief()
    page = md.render(brief.as_markdown())
    parsed = parse_html(page)
    # Stanch's own: one h2, one bold label per line, a list of actions and one of readings, the state as code.
    assert parsed.tags.count("h2") == 1 and "h1" not in parsed.tags
    assert parsed.tags.count("strong") == 8
    assert parsed.tags.count("li") == 4 and parsed.tags.count("code") == 1
    assert not {"img", "a", "table", "b", "script", "em", "del"} & set(parsed.tags)
    assert FAKE_APPROVAL in parsed.text and '<img src="http://evil.example/x.png"' in parsed.text
    assert "&lt;b&gt;entity" in parsed.text  # an entity in the alert shows as the entity, not as <b>
    text = brief.as_text()
    assert FAKE_APPROVAL in text and "**boss**" in text
    assert "template **promo**: rejected: <img src=x> · read 00:00:00 UTC" in text
    assert "memory: 3.4 GB (limit: [watermark](http://evil.example))" in text
    assert not any(char in text for char in CONTROLS)


async def test_hostile_alert_reaches_the_incidents_brief_raw_and_its_markdown_inert(
    stanch: Running, incidents: Incidents
) -> None:
    agent_id = new_agent(stanch.settings.platform_url)
    summary = f"{agent_id}: {FAKE_APPROVAL} <img src=x onerror=alert(1)> [ok](http://evil.example) \x1b[2J"
    handle = await incidents.open(
        "agent_emergency_stop",
        alertname="AgentHallucination",
        target={"agent_id": agent_id, "customer": "acme"},
        labels={"agent": agent_id, "customer": "<!channel>"},
        annotations={"summary": summary, "description": "\n".join(HOSTILE[:9])},
        service="support **urgent**",
    )
    try:
        brief = await until_state(handle, "awaiting_approval")
        # What the Temporal UI shows: the current details the workflow set, and the static summary.
        metadata = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
        details = parse_html(md.render(metadata.current_details))
        assert not {"img", "a", "em"} & set(details.tags)
        assert FAKE_APPROVAL in details.text and "<img src=x onerror=alert(1)>" in details.text
        # Stored raw: the structured fields are exactly what the alert said.
        assert brief.summary == summary and brief.service == "support **urgent**"
        parsed = parse_html(md.render(brief.as_markdown()))
        assert not {"img", "a", "em"} & set(parsed.tags)
        assert parsed.tags.count("strong") == 8 - (0 if brief.awaiting else 1)
        assert FAKE_APPROVAL in parsed.text and "<img src=x onerror=alert(1)>" in parsed.text
        assert "\x1b" not in parsed.text and "\\x1b[2J" in parsed.text
    finally:
        await handle.terminate("test over")


# ---- each notifier's payload, as a real receiver got it -------------------------------------------------


async def test_slack_payload_shows_hostile_text_as_plain_text_and_escapes_the_fallback(
    receiver: Receiver, http: httpx.AsyncClient
) -> None:
    path = f"{prefix()}/services/T000/B000/{uuid.uuid4().hex}"
    await SlackNotifier("slack", SlackConfig(url=SecretStr(receiver.url + path)), http).send(
        notification(title="Agent <!channel> paused", text=ALL)
    )
    body = receiver.to(path)[0].json()
    assert "<" not in body["text"] and ">" not in body["text"]
    assert "&lt;!channel&gt;" in body["text"]
    for block in body["blocks"]:
        texts = [block["text"]] if "text" in block else block["elements"]
        assert all(text["type"] == "plain_text" for text in texts), block
    header, section, _ = body["blocks"]
    assert header["text"]["text"].endswith("Agent <!channel> paused") and len(header["text"]["text"]) <= 150
    assert section["text"]["text"].startswith(HOSTILE[0]) and len(section["text"]["text"]) <= 3000
    assert not any(char in json.dumps(body, ensure_ascii=False) for char in CONTROLS)


async def test_discord_payload_pings_nobody_and_renders_no_markup(
    receiver: Receiver, http: httpx.AsyncClient
) -> None:
    path = f"{prefix()}/api/webhooks/42/{uuid.uuid4().hex}"
    receiver.answer(path, 204)
    await DiscordNotifier("discord", DiscordConfig(url=SecretStr(receiver.url + path)), http).send(
        notification(title="@everyone **fake**", text=ALL)
    )
    body = receiver.to(path)[0].json()
    content = body["content"]
    assert body["allowed_mentions"] == {"parse": []}
    assert len(content) <= CONTENT_LIMIT
    head, rest = content.split("\n", 1)
    assert head.startswith("**") and head.endswith("**")  # Stanch's bold title, with the alert's escaped
    assert "\\@everyone \\*\\*fake\\*\\*" in head
    inner = rest.rsplit("\n-# ", 1)[0]
    assert not re.search(r"(?<!\\)(@everyone|@here|<@|\*\*|\]\(|^#)", inner, re.MULTILINE)


async def test_telegram_payload_carries_only_stanchs_tags(
    receiver: Receiver, http: httpx.AsyncClient
) -> None:
    base, token = receiver.url + prefix(), "123456:AA" + uuid.uuid4().hex
    path = f"{base.removeprefix(receiver.url)}/bot{token}/sendMessage"
    receiver.answer(path, 200, b'{"ok":true,"result":{"message_id":7}}', "application/json")
    config = TelegramConfig(token=SecretStr(token), chat_id="-1", api_base=base)
    await TelegramNotifier("telegram", config, http).send(notification(title="<b>fake</b>", text=ALL))
    body = receiver.to(path)[0].json()
    assert body["parse_mode"] == "HTML" and len(body["text"]) <= 4096
    page = parse_html(body["text"])
    assert page.tags == ["b", "i"]  # the title and the footer, nothing from the alert
    assert page.text.startswith("[P1] <b>fake</b>\n" + HOSTILE[0])


async def test_email_html_part_is_escaped_and_plain_part_plain(mailbox: tuple[Mailbox, int]) -> None:
    box, port = mailbox
    config = EmailConfig(
        host="127.0.0.1",
        port=port,
        starttls=False,
        from_address="stanch@example.com",
        to=["oncall@example.com"],
    )
    await EmailNotifier("email", config).send(notification(title="Paused\nBcc: victim@example.com", text=ALL))
    [envelope] = box.messages
    assert isinstance(envelope.content, bytes)
    mail = email.message_from_bytes(envelope.content, policy=email.policy.default)
    assert mail["Subject"] == "[P1] Paused Bcc: victim@example.com"  # one header, not two
    assert mail["Bcc"] is None and envelope.rcpt_tos == ["oncall@example.com"]
    html_part, text_part = mail.get_body(("html",)), mail.get_body(("plain",))
    assert html_part is not None and text_part is not None
    page = parse_html(html_part.get_content())
    assert set(page.tags) <= {"html", "body", "h3", "p", "small", "br"}
    assert HOSTILE[0] in html.unescape(html_part.get_content())
    plain_text = text_part.get_content()
    assert HOSTILE[0] in plain_text and FAKE_APPROVAL in plain_text
    assert not any(char in plain_text for char in CONTROLS)
