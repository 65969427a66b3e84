"""The rollback runbook (code, database, infrastructure) on the time-skipping server, with the sandbox's
deploys, databases and infrastructure configs over HTTP and the audit log in Postgres."""

from __future__ import annotations

from typing import Any

import pytest
from temporalio.client import WorkflowHandle

from schemas.approvals import ApprovalAnswer
from schemas.briefs import Brief
from schemas.incidents import IncidentResult
from schemas.severity import Severity
from tests.helpers import (
    SHIPPED_LADDER_REPEATS,
    Incidents,
    Running,
    audit_rows,
    chat_messages,
    deploys_of,
    get,
    http_client,
    new_service,
    put,
    repeat_pages,
    until_state,
)
from tests.helpers_keys import demo_signed


async def open_rollback(
    incidents: Incidents, service: str, kind: str, severity: Severity = Severity.P1
) -> WorkflowHandle[Any, IncidentResult]:
    return await incidents.open(
        "rollback",
        alertname="RollbackRequested",
        annotations={"summary": f"roll back {service} ({kind})"},
        severity=severity,
        service=service,
        target={"service": service, "kind": kind},
    )


def new_database(sandbox: str, **spec: Any) -> str:
    service = new_service(sandbox)
    put(sandbox, f"/databases/{service}", {"migrations": ["0001_init", "0002_add_totals"], **spec})
    return service


def effect_paths(sandbox: str, service: str) -> list[str]:
    """The effects applied on the platform for this service, in order (not the scenario set-up)."""
    calls = http_client.get(f"{sandbox}/calls").json()
    return [
        call["path"].split(service, 1)[1]
        for call in calls
        if call["method"] == "POST"
        and service in call["path"]
        and not call["replayed"]
        and call["status_code"] < 300
    ]


def inject_fault(sandbox: str, path_prefix: str, status: int) -> None:
    http_client.post(
        f"{sandbox}/faults", json={"path_prefix": path_prefix, "status": status}
    ).raise_for_status()


def keys(stanch: Running, workflow_id: str) -> list[str]:
    return [row["step_key"] for row in audit_rows(stanch.settings, workflow_id)]


async def test_code_rollback_on_approval(stanch: Running, incidents: Incidents) -> None:
    sandbox = stanch.settings.platform_url
    service = new_service(sandbox, ["7.0.0", "7.1.0"])
    handle = await open_rollback(incidents, service, "code")
    brief = await until_state(handle, "awaiting_approval")
    assert "7.1.0" in brief.recommendation

    await handle.signal("approve", ApprovalAnswer(approver="alice", action="rollback-deploy", comment="go"))
    result = await handle.result()

    assert result.final_state == "rolled_back"
    assert [d["status"] for d in deploys_of(sandbox, service)] == ["rolled_back", "live"]
    rows = audit_rows(stanch.settings, handle.id)
    assert [r["step_key"] for r in rows] == [
        "find-deploy",
        "gate1-requested",
        "gate1-decision",
        "rollback-deploy",
        "closed",
    ]
    assert rows[3]["actor"] == "alice"


async def test_code_rollback_rejected_leaves_the_deploy_live(stanch: Running, incidents: Incidents) -> None:
    sandbox = stanch.settings.platform_url
    service = new_service(sandbox, ["7.0.0", "7.1.0"])
    handle = await open_rollback(incidents, service, "code")
    await until_state(handle, "awaiting_approval")
    await handle.signal("reject", ApprovalAnswer(approver="bob", action="rollback-deploy"))
    result = await handle.result()

    assert result.final_state == "declined"
    assert [d["status"] for d in deploys_of(sandbox, service)] == ["live", "live"]
    assert keys(stanch, handle.id) == ["find-deploy", "gate1-requested", "gate1-decision", "closed"]


async def test_database_p0_backup_verified_two_approvers_then_integrity(
    stanch: Running, incidents: Incidents
) -> None:
    sandbox = stanch.settings.platform_url
    service = new_database(sandbox)
    handle = await open_rollback(incidents, service, "database", Severity.P0)
    brief = await until_state(handle, "awaiting_approval")
    assert brief.awaiting is not None and "2 approvers" in brief.awaiting
    # The backup exists and is verified before anyone is even asked.
    database = get(sandbox, f"/databases/{service}")
    assert database["verified_backups"] == [f"backup-{service}-1"]

    await handle.signal(
        "approve", await demo_signed(handle, ApprovalAnswer(approver="alice", action="migrate-down"))
    )
    await handle.signal(
        "approve", await demo_signed(handle, ApprovalAnswer(approver="alice", action="migrate-down"))
    )  # refused: twice
    await _until_refused(handle)
    assert get(sandbox, f"/databases/{service}")["migrations"] == ["0001_init", "0002_add_totals"]
    await handle.signal(
        "approve", await demo_signed(handle, ApprovalAnswer(approver="carol", action="migrate-down"))
    )
    result = await handle.result()

    assert result.final_state == "rolled_back"
    database = get(sandbox, f"/databases/{service}")
    assert database["migrations"] == ["0001_init"]
    # One reverse migration and one integrity check, each applied once (replays are not counted).
    assert effect_paths(sandbox, service) == [
        "/backups",
        f"/backups/backup-{service}-1/verify",
        "/migrate-down",
        "/integrity-check",
    ]
    rows = audit_rows(stanch.settings, handle.id)
    assert [r["step_key"] for r in rows] == [
        "find-migration",
        "backup",
        "verify-backup",
        "gate1-requested",
        "refused-1",
        "gate1-decision",
        "guardrail-migrate-down",  # the service's guardrail (armed, window empty) lets it run
        "migrate-down",
        "integrity-check",
        "closed",
    ]
    assert rows[5]["actor"] == "alice, carol"


async def test_database_backup_that_fails_verification_blocks_everything(
    stanch: Running, incidents: Incidents
) -> None:
    sandbox = stanch.settings.platform_url
    service = new_database(sandbox, backup_verifies=False)
    handle = await open_rollback(incidents, service, "database")
    result = await handle.result()

    assert result.final_state == "blocked_no_backup" and result.approval is None
    assert get(sandbox, f"/databases/{service}")["migrations"] == ["0001_init", "0002_add_totals"]
    assert "/migrate-down" not in effect_paths(sandbox, service)
    assert keys(stanch, handle.id) == ["find-migration", "backup", "verify-backup", "no-backup", "closed"]
    [page] = chat_messages(sandbox, handle.id)
    assert "no verified backup" in page["title"]


async def test_database_backup_refused_by_the_platform_blocks_everything(
    stanch: Running, incidents: Incidents
) -> None:
    sandbox = stanch.settings.platform_url
    service = new_database(sandbox)
    inject_fault(sandbox, f"/databases/{service}/backups", status=409)
    handle = await open_rollback(incidents, service, "database")
    result = await handle.result()

    assert result.final_state == "blocked_no_backup"
    assert get(sandbox, f"/databases/{service}")["backups"] == []
    rows = audit_rows(stanch.settings, handle.id)
    assert [(r["step_key"], r["outcome"]) for r in rows] == [
        ("find-migration", "done"),
        ("backup", "failed"),
        ("no-backup", "done"),
        ("closed", "blocked_no_backup"),
    ]


async def test_database_integrity_failure_is_reported_with_the_backup(
    stanch: Running, incidents: Incidents
) -> None:
    sandbox = stanch.settings.platform_url
    service = new_database(sandbox, integrity_ok=False)
    handle = await open_rollback(incidents, service, "database")
    await until_state(handle, "awaiting_approval")
    await handle.signal(
        "approve", await demo_signed(handle, ApprovalAnswer(approver="bob", action="migrate-down"))
    )
    result = await handle.result()

    assert result.final_state == "integrity_failed"
    assert get(sandbox, f"/databases/{service}")["migrations"] == ["0001_init"]
    [page] = chat_messages(sandbox, handle.id)
    assert f"backup-{service}-1" in page["text"] and "orphaned rows" in page["text"]
    assert keys(stanch, handle.id)[-3:] == ["integrity-check", "integrity-failed", "closed"]


async def test_infrastructure_revert_on_approval(stanch: Running, incidents: Incidents) -> None:
    sandbox = stanch.settings.platform_url
    service = new_service(sandbox)
    put(sandbox, f"/infra/{service}", {"status": "degraded", "config_versions": ["cfg-1", "cfg-2"]})
    handle = await open_rollback(incidents, service, "infrastructure")
    brief = await until_state(handle, "awaiting_approval")
    assert "cfg-2" in brief.recommendation and "cfg-1" in brief.recommendation
    await handle.signal("approve", ApprovalAnswer(approver="carol", action="revert-config"))
    result = await handle.result()

    assert result.final_state == "rolled_back"
    infra = get(sandbox, f"/infra/{service}")
    assert (infra["config_version"], infra["status"]) == ("cfg-1", "healthy")
    assert keys(stanch, handle.id) == [
        "find-config",
        "gate1-requested",
        "gate1-decision",
        "revert-config",
        "closed",
    ]


@pytest.mark.slow  # nobody answers: the whole ladder to its safe default, dozens of pages (3-14 s)
async def test_infrastructure_unanswered_escalates_and_keeps_the_config(
    stanch: Running, incidents: Incidents
) -> None:
    sandbox = stanch.settings.platform_url
    service = new_service(sandbox)
    put(sandbox, f"/infra/{service}", {"config_versions": ["cfg-1", "cfg-2"]})
    handle = await open_rollback(incidents, service, "infra")
    await until_state(handle, "awaiting_approval")
    result = await handle.result()  # nobody answers on-call nor the team lead, for 24 hours

    assert result.final_state == "closed_unattended"
    assert get(sandbox, f"/infra/{service}")["config_version"] == "cfg-2"
    assert [m["channel"] for m in chat_messages(sandbox, handle.id)] == ["team-lead"] * (
        1 + SHIPPED_LADDER_REPEATS + 1
    )
    assert keys(stanch, handle.id) == [
        "find-config",
        "gate1-requested",
        "gate1-escalate-1",
        *repeat_pages(),
        "gate1-safe-default",
        "gate1-give-up",
        "closed",
    ]


async def _until_refused(handle: WorkflowHandle[Any, Any]) -> None:
    for _ in range(200):
        brief = await handle.query("brief", result_type=Brief)
        timeline = await handle.query("timeline")
        if any(entry["kind"] == "refused" for entry in timeline["entries"]):
            return
        assert brief.state == "awaiting_approval"
    raise AssertionError("the second approval from the same person was never refused")
