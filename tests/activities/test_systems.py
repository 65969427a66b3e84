"""The systems a worker opens: a policy that names none reaches every system over the http contract, and
every activity name a recorded history holds is registered by the worker."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from temporalio import activity

from activities.adapters import AdapterContext
from activities.agents.http import HttpAgents
from activities.channel.http import HttpChannel
from activities.documents.http import HttpDocuments
from activities.systems import INTERFACES, Systems, open_systems
from schemas.systems import SYSTEMS
from stanch.policy import Policy
from stanch.tls import default_tls_context
from tests.activities.test_heartbeat import activity_definitions
from workers.worker import system_activities

HISTORIES = Path(__file__).resolve().parents[1] / "histories"
# What the worker registers besides the systems' activities (workers/worker.py), and the replay probe.
NOT_A_SYSTEM = {
    "ask_guardrail",
    "postmortem_open",
    "report_audit_summary",
    "security_kill_switch",
    "send_notification",
    "write_audit",
    "audit_write_rows",
}
PROBES = {"replay_probe_echo"}


@pytest.fixture
async def systems(sandbox_url: str) -> AsyncIterator[Systems]:
    async with (
        httpx.AsyncClient(base_url=sandbox_url, timeout=10, verify=default_tls_context()) as client,
        open_systems(Policy(), AdapterContext(platform_url=sandbox_url, platform_http=client)) as opened,
    ):
        yield opened


def recorded_activity_names() -> set[str]:
    names: set[str] = set()
    for path in HISTORIES.glob("*/*.json"):
        for event in json.loads(path.read_text())["events"]:
            scheduled = event.get("activityTaskScheduledEventAttributes")
            if scheduled:
                names.add(scheduled["activityType"]["name"])
    return names


async def test_a_policy_without_systems_opens_every_system_over_http(systems: Systems) -> None:
    assert set(INTERFACES) == set(SYSTEMS)
    assert isinstance(systems.agents, HttpAgents)
    assert isinstance(systems.channel, HttpChannel)
    assert isinstance(systems.documents, HttpDocuments)
    checks = await systems.check()
    assert [(check.system, check.adapter, check.ok) for check in checks] == [
        (system, "http", True) for system in SYSTEMS
    ]


async def test_every_recorded_activity_name_is_registered(systems: Systems) -> None:
    recorded = recorded_activity_names()
    assert {"security_revoke_tokens", "security_run_gold_set", "postmortem_store_report"} <= recorded
    registered = {activity._Definition.must_from_callable(fn).name for fn in system_activities(systems)}
    defined = set(activity_definitions())
    assert NOT_A_SYSTEM <= defined - registered  # each is defined, outside the systems' classes
    assert recorded - registered - NOT_A_SYSTEM - PROBES == set()
