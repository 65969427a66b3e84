"""A message to a role reaches each of its people on the channel kinds the priority picks (seed 004: P0
instant, P1 cockpit + instant, P2/P3 cockpit), read back from what the sandbox chat received; a kind on
which nobody in the role can be reached falls back to the priority's groups; a retry pages nobody twice."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from psycopg_pool import AsyncConnectionPool

from activities.notify import NotifyActivities
from schemas.actions import Notification
from stanch.policy import Policy, load_policy
from stanch.settings import Settings
from stanch.tls import default_tls_context
from tests.helpers import free_port, http_client, pages, write_policy

# Everyone's channels are the sandbox chat (url_setting), as in the dev stack; erin has no instant channel
# and frank none at all. `broken` refuses every connection, so alice's instant page falls back to the chat.
POLICY = """
[people.alice]
instant = ["broken", "chat-instant"]
cockpit = ["chat-cockpit"]

[people.bob]
instant = ["chat-instant"]
cockpit = ["chat-cockpit"]

[people.carol]
instant = ["chat-instant"]
cockpit = ["chat-cockpit"]

[people.erin]
cockpit = ["chat-cockpit"]

[people.frank]

[roles.oncall]
people = ["alice", "bob"]

[roles.lead]
people = ["carol"]

[roles.owner]
people = ["erin"]

[roles.qa]
people = ["frank"]

[[escalation]]
name = "team-lead"
notify = ["lead", "erin"]

[notify]
P0 = ["instant"]
P1 = ["cockpit", "instant"]
P2 = ["cockpit"]
P3 = ["cockpit"]
customer = ["customer-chat"]
escalation = ["instant"]

[notify.groups]
instant = ["chat-instant"]
cockpit = ["chat-cockpit"]

[channels.broken]
type = "webhook"
url_env = "STANCH_TEST_BROKEN_URL"
timeout_seconds = 1

[channels.chat-instant]
type = "webhook"
url_setting = "notify_webhook_url"

[channels.chat-cockpit]
type = "webhook"
url_setting = "notify_webhook_url"

[channels.customer-chat]
type = "webhook"
url_setting = "notify_webhook_url"
"""


@pytest.fixture
async def notify(settings: Settings, tmp_path: Path) -> AsyncIterator[NotifyActivities]:
    policy: Policy = load_policy(write_policy(tmp_path, POLICY))
    env = {"STANCH_TEST_BROKEN_URL": f"http://127.0.0.1:{free_port()}/hook"}
    async with (
        httpx.AsyncClient(trust_env=False, verify=default_tls_context()) as http,
        AsyncConnectionPool(settings.database_url, min_size=1, max_size=2, open=False) as pool,
    ):
        yield NotifyActivities.from_policy(policy, settings, http, pool, environ=env)


def message(workflow_id: str, **changes: Any) -> Notification:
    values: dict[str, Any] = {
        "idempotency_key": f"{workflow_id}/run/tell-oncall",
        "channel": "on-call",
        "severity": "P1",
        "title": "Agent support-bot paused",
        "text": "Approve a rollback when ready.",
        "incident_id": workflow_id,
    }
    return Notification(**(values | changes))


def received_messages(sandbox_url: str) -> list[dict[str, Any]]:
    return list(http_client.get(f"{sandbox_url}/chat/messages").json())


def incident() -> str:
    return f"incident-test-{uuid.uuid4().hex[:12]}"


@pytest.mark.parametrize(
    ("severity", "expected"),
    [
        ("P0", [("alice", "instant"), ("bob", "instant")]),
        ("P1", [("alice", "cockpit"), ("bob", "cockpit"), ("alice", "instant"), ("bob", "instant")]),
        ("P2", [("alice", "cockpit"), ("bob", "cockpit")]),
        ("P3", [("alice", "cockpit"), ("bob", "cockpit")]),
    ],
)
async def test_on_call_reaches_each_person_of_the_role_on_the_kinds_of_the_priority(
    notify: NotifyActivities, settings: Settings, severity: str, expected: list[tuple[str, str]]
) -> None:
    workflow_id = incident()
    receipt = await notify.send_notification(message(workflow_id, severity=severity))

    assert pages(settings.platform_url, workflow_id) == [
        ("on-call", person, kind) for person, kind in expected
    ]
    delivered = [(d.person, d.kind) for d in receipt.deliveries if d.delivered]
    assert delivered == expected
    assert receipt.fallback == ""


async def test_a_persons_failed_channel_falls_back_to_their_next_and_is_listed(
    notify: NotifyActivities, settings: Settings
) -> None:
    workflow_id = incident()
    receipt = await notify.send_notification(message(workflow_id, severity="P0"))

    [failed] = [d for d in receipt.deliveries if not d.delivered]
    assert (failed.channel, failed.person, failed.kind, failed.group) == (
        "broken",
        "alice",
        "instant",
        "alice/instant",
    )
    assert "ConnectError" in failed.error
    # bob is not tried on alice's broken channel; both got the page on the chat.
    assert [(d.channel, d.person) for d in receipt.deliveries if d.delivered] == [
        ("chat-instant", "alice"),
        ("chat-instant", "bob"),
    ]
    assert pages(settings.platform_url, workflow_id) == [
        ("on-call", "alice", "instant"),
        ("on-call", "bob", "instant"),
    ]


async def test_the_copy_says_whom_it_is_for_and_on_which_kind(
    notify: NotifyActivities, settings: Settings
) -> None:
    workflow_id = incident()
    await notify.send_notification(message(workflow_id, severity="P2"))

    received = [
        m
        for m in received_messages(settings.platform_url)
        if m["idempotency_key"].startswith(workflow_id + "/")
    ]
    bodies = [m["body"] for m in received]
    keys = [m["idempotency_key"] for m in received]
    assert {(b["person"], b["kind"], b["idempotency_key"]) for b in bodies} == {
        ("alice", "cockpit", f"{workflow_id}/run/tell-oncall"),
        ("bob", "cockpit", f"{workflow_id}/run/tell-oncall"),
    }
    # Each copy has its own key at the receiver, so a receiver that dedupes keeps both people's pages.
    assert f"{workflow_id}/run/tell-oncall/alice/cockpit" in keys
    assert f"{workflow_id}/run/tell-oncall/bob/cockpit" in keys


async def test_a_retry_pages_nobody_twice(notify: NotifyActivities, settings: Settings) -> None:
    workflow_id = incident()
    first = await notify.send_notification(message(workflow_id, severity="P1"))
    again = await notify.send_notification(message(workflow_id, severity="P1"))

    assert len(pages(settings.platform_url, workflow_id)) == 4
    assert all(not d.replayed for d in first.deliveries)
    assert [(d.person, d.kind, d.replayed) for d in again.deliveries] == [
        ("alice", "cockpit", True),
        ("bob", "cockpit", True),
        ("alice", "instant", True),
        ("bob", "instant", True),
    ]


async def test_an_escalation_level_pages_its_roles_and_people_on_the_kinds_of_the_priority(
    notify: NotifyActivities, settings: Settings
) -> None:
    workflow_id = incident()
    receipt = await notify.send_notification(
        message(workflow_id, channel="team-lead", escalation=True, recipient="lead, erin", severity="P1")
    )

    # The level names the lead role (carol) and erin. erin has no instant channel; carol has, so the
    # instant kind is covered and no group is paged instead.
    assert pages(settings.platform_url, workflow_id) == [
        ("team-lead", "carol", "cockpit"),
        ("team-lead", "erin", "cockpit"),
        ("team-lead", "carol", "instant"),
    ]
    assert receipt.fallback == ""


async def test_a_role_nobody_can_be_reached_in_on_a_kind_falls_back_to_the_priority_groups(
    notify: NotifyActivities, settings: Settings
) -> None:
    owner, qa = incident(), incident()
    # P0 wants instant; the owner (erin) has only a cockpit channel: the P0 groups take the page.
    receipt = await notify.send_notification(message(owner, channel="owner", severity="P0"))
    assert pages(settings.platform_url, owner) == [("owner", "", None)]
    assert receipt.fallback == "nobody in owner can be reached on instant; paged the instant group(s) instead"
    assert [(d.channel, d.group, d.person) for d in receipt.deliveries] == [("chat-instant", "instant", None)]

    # P1: erin gets her cockpit copy, and the instant kind nobody has goes to the P1 groups.
    receipt = await notify.send_notification(message(qa, channel="owner", severity="P1"))
    assert pages(settings.platform_url, qa) == [("owner", "erin", "cockpit"), ("owner", "", None)]
    assert "on instant" in receipt.fallback


async def test_an_audience_naming_no_role_and_the_customer_go_to_their_groups(
    notify: NotifyActivities, settings: Settings
) -> None:
    workflow_id = incident()
    await notify.send_notification(message(workflow_id, channel="customer", recipient="acme"))
    await notify.send_notification(
        message(
            workflow_id, idempotency_key=f"{workflow_id}/run/other", channel="cockpit-only", severity="P2"
        )
    )
    assert pages(settings.platform_url, workflow_id) == [("customer", "", None), ("cockpit-only", "", None)]
