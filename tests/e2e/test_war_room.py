"""End to end on the real stack for the war-room seed: an Alertmanager `ProductionDown` goes in over HTTP,
the war room assembles and triages, a human approves the rollback with the `temporal` CLI and later sends the
post-incident learning with `stanch learning`; the sandbox shows the rollback, the QA run, the post-incident
report and the stories."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pytest

from stanch.ops.samples import sample
from stanch.settings import Settings
from tests.helpers import audit_rows, http_client
from tests.stack import brief_state, eventually, post_alert, result_of, stanch_cli, temporal_signal

pytestmark = pytest.mark.e2e

BIN = Path(sys.executable).parent


def test_production_down_alert_is_rolled_back_verified_and_written_up(stack: Settings) -> None:
    platform = stack.platform_url
    name = f"shop-{uuid.uuid4().hex[:6]}"  # the sample's service is "<name>-api"
    service = f"{name}-api"
    http_client.put(
        f"{platform}/deploys/services/{service}", json={"versions": ["1.0.0", "1.1.0"]}
    ).raise_for_status()

    response = post_alert(stack, sample("war-room", agent=name))
    assert response.status_code == 202, response.text
    [incident] = response.json()["incidents"]
    assert (incident["runbook"], incident["action"]) == ("war_room", "started")
    workflow_id = incident["workflow_id"]

    eventually(lambda: brief_state(stack, workflow_id) == "awaiting_approval", "the rollback approval")
    temporal_signal(
        stack, workflow_id, "approve", {"approver": "alice", "action": "rollback", "comment": "1.1.0 broke"}
    )
    result = result_of(stack, workflow_id)
    assert result.final_state == "resolved" and result.resolved_by == "qa-gate"
    postmortem_id = f"postmortem-{workflow_id}"
    eventually(lambda: brief_state(stack, postmortem_id) == "awaiting_learning", "the post-mortem")

    deploys = [d for d in http_client.get(f"{platform}/deploys").json() if d["service"] == service]
    assert [d["status"] for d in deploys] == ["rolled_back", "live"]
    [qa] = http_client.get(f"{platform}/qa/runs", params={"service": service}).json()
    assert qa["verdict"] == "PASS"

    sent = stanch_cli(
        stack,
        "learning",
        workflow_id,
        "--by",
        "carol",
        "--root-cause",
        "1.1.0 shipped a broken cart query",
        "--impact",
        "checkout failed for most users",
        "--prevention",
        "Canary every deploy of the API",
    )
    assert sent.returncode == 0, sent.stderr
    assert f"{postmortem_id}: learning by carol taken; report pm-" in sent.stdout
    assert result_of(stack, postmortem_id).final_state == "learned"

    [postmortem] = http_client.get(f"{platform}/postmortems", params={"incident_id": workflow_id}).json()
    assert postmortem["root_cause"] == "1.1.0 shipped a broken cart query" and postmortem["timeline"]
    assert "latest deploy" in postmortem["markdown"]  # what the room itself found
    stories = http_client.get(f"{platform}/backlog/stories", params={"incident_id": workflow_id}).json()
    assert [s["title"] for s in stories] == ["Canary every deploy of the API"]
    keys = [row["step_key"] for row in audit_rows(stack, workflow_id)]
    assert keys[:3] == ["assemble-devops", "assemble-dev", "assemble-qa"]
    assert sorted(keys[3:6]) == ["triage-deploys", "triage-external", "triage-infra"]
    assert keys[6:] == [
        "gate1-requested",
        "gate1-decision",
        "contain-rollback",
        "verify-rollback",
        "resolved",
        "closed",
    ]
    assert [row["step_key"] for row in audit_rows(stack, postmortem_id)] == [
        "opened",
        "ask",
        "report",
        "story-1",
        "closed",
    ]
