"""End to end on the real stack for the chat-channel runbooks: an Alertmanager payload goes to the intake
over HTTP, humans answer with the `temporal` CLI (signals) and the `stanch` CLI (approval), and the
sandbox's channel state and the audit log show what happened. Each test sets up its own channel."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from stanch.ops.devstack import child_environment
from stanch.ops.samples import alertmanager_body
from stanch.settings import Settings
from tests.helpers import audit_rows, http_client
from tests.stack import applied, brief_state, eventually, post_alert, result_of, temporal_signal

pytestmark = pytest.mark.e2e

BIN = Path(sys.executable).parent


def new_channel(stack: Settings, **spec: Any) -> str:
    name = f"e2e-wa-{uuid.uuid4().hex[:8]}"
    http_client.put(f"{stack.platform_url}/chat/channels/{name}", json=spec).raise_for_status()
    return name


def channel_state(stack: Settings, name: str) -> dict[str, Any]:
    return dict(http_client.get(f"{stack.platform_url}/chat/channels/{name}").json())


def fire(stack: Settings, alertname: str, labels: dict[str, str], summary: str) -> str:
    body = alertmanager_body(alertname, labels, summary, fingerprint=uuid.uuid4().hex[:16])
    response = post_alert(stack, body)
    assert response.status_code == 202, response.text
    [incident] = response.json()["incidents"]
    assert incident["action"] == "started"
    return str(incident["workflow_id"])


def test_banned_number_stops_sends_takes_a_cli_verdict_and_a_cli_approval(stack: Settings) -> None:
    channel = new_channel(
        stack,
        number="+5511944440000",
        number_status="banned",
        sends={"template_sends_24h": 2000, "spam_reports_24h": 40, "rejected_template_sends": {"promo": 70}},
    )
    workflow_id = fire(
        stack,
        "WhatsAppNumberBanned",
        {"channel": channel, "service": "whatsapp", "customer": "acme", "severity": "critical"},
        f"The provider banned the number of {channel}",
    )

    eventually(lambda: brief_state(stack, workflow_id) == "awaiting_verdict", "the wait for a verdict")
    state = channel_state(stack, channel)
    assert state["template_sends_enabled"] is False and len(state["appeals"]) == 1

    temporal_signal(stack, workflow_id, "verdict", {"by": "alice", "outcome": "final", "note": "ban upheld"})
    eventually(lambda: brief_state(stack, workflow_id) == "awaiting_approval", "the approval request")
    approved = subprocess.run(
        [str(BIN / "stanch"), "approve", workflow_id, "provision-number", "--as", "bob"],
        env=child_environment(stack),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert approved.returncode == 0, approved.stderr

    result = result_of(stack, workflow_id)
    assert result.final_state == "number_replaced"
    state = channel_state(stack, channel)
    assert state["number"] != "+5511944440000" and [n["status"] for n in state["numbers"]] == [
        "retired",
        "active",
    ]
    assert applied(stack, f"/chat/channels/{channel}/numbers") == 1
    rows = audit_rows(stack, workflow_id)
    assert [row["step_key"] for row in rows] == [
        "stop-template-sends",
        "open-appeal",
        "tell-oncall",
        "verdict",
        "gate1-requested",
        "gate1-decision",
        "provision-number",
        "tell-customer-number",
        "analysis",
        "closed",
    ]
    by_step = {row["step_key"]: row for row in rows}
    assert by_step["verdict"]["actor"] == "alice" and by_step["provision-number"]["actor"] == "bob"
    assert "promo forced out 70 times" in by_step["analysis"]["reason"]


def test_channel_down_restarts_the_runtime_and_rotates_the_token_on_temporal_cli_approval(
    stack: Settings,
) -> None:
    channel = new_channel(stack, runtime_5xx_last_5m=25, token_expires_in_s=0)
    workflow_id = fire(
        stack,
        "WhatsAppChannelDown",
        {
            "channel": channel,
            "service": "whatsapp",
            "runtime": "chat-runtime",
            "subsystem": f"runtime-{uuid.uuid4().hex[:8]}",
            "severity": "critical",
        },
        f"Customers write to {channel} and get no answer",
    )

    # The runtime restart is automatic (its guardrail allows it); the token waits for a person.
    eventually(lambda: brief_state(stack, workflow_id) == "awaiting_approval", "the token approval")
    assert channel_state(stack, channel)["runtime_restarts"] == 1
    temporal_signal(stack, workflow_id, "approve", {"approver": "alice", "action": "rotate-token"})

    result = result_of(stack, workflow_id)
    assert result.final_state == "restored"
    state = channel_state(stack, channel)
    assert (state["runtime_restarts"], state["token_version"]) == (1, 2)
    assert applied(stack, f"/chat/channels/{channel}/runtime/restart") == 1
    assert applied(stack, f"/chat/channels/{channel}/token/rotate") == 1
    rows = audit_rows(stack, workflow_id)
    assert [row["step_key"] for row in rows] == [
        "diagnosis",
        "guardrail-restart-runtime",
        "restart-runtime",
        "gate1-requested",
        "gate1-decision",
        "rotate-token",
        "closed",
    ]
    assert rows[0]["outcome"] == "runtime_errors,token_expired"
    assert rows[-2]["actor"] == "alice"
