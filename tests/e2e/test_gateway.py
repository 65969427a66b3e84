"""End to end on the real stack for the gateway health runbooks (seed 002): Alertmanager payloads go in over
HTTP to the intake, the worker acts on the sandbox's gateway runtimes, and a human approves the zombie
gateway's restart with the `stanch` CLI."""

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
from tests.stack import applied, audit_settled, brief_state, eventually, post_alert, result_of

pytestmark = pytest.mark.e2e

BIN = Path(sys.executable).parent


def new_gateway(stack: Settings, **spec: Any) -> str:
    name = f"e2e-gw-{uuid.uuid4().hex[:8]}"
    http_client.put(f"{stack.platform_url}/runtimes/{name}", json=spec).raise_for_status()
    return name


def runtime(stack: Settings, name: str) -> dict[str, Any]:
    return http_client.get(f"{stack.platform_url}/runtimes/{name}").json()


def fire(stack: Settings, alertname: str, gateway: str, severity: str, summary: str) -> str:
    labels = {"gateway": gateway, "subsystem": gateway, "service": "gateway", "severity": severity}
    response = post_alert(stack, alertmanager_body(alertname, labels, summary, gateway))
    assert response.status_code == 202, response.text
    [incident] = response.json()["incidents"]
    assert incident["action"] == "started"
    return str(incident["workflow_id"])


def test_memory_alert_restarts_the_gateway_through_the_safe_path(stack: Settings) -> None:
    name = new_gateway(
        stack,
        memory_mb=1300,
        high_watermark_mb=1536,
        scheduled_runs={"digest": "alive", "cron-x": "dead"},
        files=["a.jsonl", "b.jsonl.corrupt"],
        unhealthy_checks_after_restart=0,
    )
    workflow_id = fire(stack, "GatewayMemoryHigh", name, "warning", f"{name} memory at 85% of high watermark")

    result = result_of(stack, workflow_id)

    assert result.runbook == "gateway_safe_restart"
    assert result.final_state == "restarted"
    state = runtime(stack, name)
    assert (state["restarts"], state["memory_mb"], state["files"]) == (1, 520, ["a.jsonl"])
    assert state["scheduled_runs"] == {"digest": "alive"}
    assert applied(stack, f"/runtimes/{name}/safe-restart") == 1
    assert [row["step_key"] for row in audit_rows(stack, workflow_id)] == [
        "diagnose",
        "guardrail",
        "clean-scheduled-runs",
        "remove-junk-files",
        "announce",
        "safe-restart",
        "health",
        "memory-compare",
        "restarted",
        "closed",
    ]


def test_zombie_gateway_hands_off_after_the_trail_and_cli_approval_restarts_it(stack: Settings) -> None:
    name = new_gateway(stack, healthy=False, zombie=True, log_lines=["heartbeat missed for 300 s"])
    workflow_id = fire(stack, "GatewayZombie", name, "critical", f"{name} sends no heartbeats")
    eventually(lambda: brief_state(stack, workflow_id) == "awaiting_approval", "the hand-off")

    audit_settled(stack, workflow_id)
    rows = audit_rows(stack, workflow_id)
    assert [row["step_key"] for row in rows] == [
        "alert-direct",
        "collect-logs",
        "collect-state",
        "event-trail",
        "handoff",
        "gate1-requested",
    ]
    assert runtime(stack, name)["restarts"] == 0

    approved = subprocess.run(
        [
            str(BIN / "stanch"),
            "approve",
            workflow_id,
            "safe-restart",
            "--as",
            "alice",
            "--comment",
            "logs read",
        ],
        env=child_environment(stack),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert approved.returncode == 0, approved.stderr

    result = result_of(stack, workflow_id)
    assert result.final_state == "restarted"
    state = runtime(stack, name)
    assert (state["restarts"], state["zombie"]) == (1, False)
    tail = [(row["step_key"], row["actor"]) for row in audit_rows(stack, workflow_id)][-4:]
    # Between the approval and the restart, the gateway's guardrail (armed, window empty) let it run.
    assert tail == [
        ("gate1-decision", "alice"),
        ("guardrail-safe-restart", "stanch"),
        ("safe-restart", "alice"),
        ("closed", "stanch"),
    ]
