"""The war room's pure parts, without a server: who is called, what triage says, which mitigations are
offered in which order, and what the post-mortem draft says."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from schemas.alerts import Alert
from schemas.approvals import Resolution
from schemas.briefs import TimelineEntry
from schemas.deploys import DeployRecord, ExternalStatus, InfraStatus, RecentDeploys
from schemas.incidents import IncidentInput
from schemas.severity import Severity
from workflows.war_room.assembly import roles_for, status_cadence
from workflows.war_room.containment import FEATURE_FLAG, HOTFIX, ROLLBACK, containment_options
from workflows.war_room.postmortem import build_postmortem
from workflows.war_room.triage import triage_findings

OPENED = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


def deploys(*statuses: str) -> RecentDeploys:
    return RecentDeploys(
        service="checkout",
        deploys=[
            DeployRecord(id=f"d{n}", service="checkout", version=f"1.{n}.0", at=f"10:0{n}", status=status)
            for n, status in enumerate(statuses)
        ],
    )


def incident(severity: Severity = Severity.P1) -> IncidentInput:
    alert = Alert(source="alertmanager", name="ProductionDown", fingerprint="fp")
    return IncidentInput(
        incident_id="incident-checkout",
        runbook="war_room",
        severity=severity,
        service="checkout",
        summary="checkout answers 500",
        alert=alert,
    )


def test_the_architect_joins_on_a_p0_only_and_p2_has_no_status_cadence() -> None:
    assert roles_for(Severity.P0) == ["devops", "dev", "qa", "architect"]
    assert roles_for(Severity.P1) == roles_for(Severity.P2) == ["devops", "dev", "qa"]
    assert status_cadence(Severity.P0) == timedelta(minutes=15)
    assert status_cadence(Severity.P1) == timedelta(minutes=30)
    assert status_cadence(Severity.P2) is None


def test_triage_says_unknown_for_a_failed_lookup_and_names_what_is_unhealthy() -> None:
    live = deploys("live", "live")
    infra = InfraStatus(service="checkout", status="degraded", detail="disk 95%", config_version="c2")
    external = ExternalStatus(service="checkout", dependencies={"payments": "down", "mail": "up"})
    assert triage_findings("checkout", live, infra, external) == [
        "last deploy 1.0.0 at 10:00",
        "infrastructure degraded (disk 95%)",
        "external trouble: payments",
    ]
    assert triage_findings("checkout", None, None, None) == [
        "recent deploys unknown (lookup failed)",
        "infrastructure status unknown (lookup failed)",
        "external services unknown (lookup failed)",
    ]
    assert triage_findings("checkout", deploys(), None, ExternalStatus(service="checkout"))[0] == (
        "no recent deploy of checkout"
    )


def test_containment_is_offered_fastest_first_and_only_what_can_work() -> None:
    assert containment_options(deploys("live", "live"), "new-cart") == [ROLLBACK, FEATURE_FLAG, HOTFIX]
    # One deploy: nothing earlier to go back to. An unknown history offers no rollback either.
    assert containment_options(deploys("live"), "new-cart") == [FEATURE_FLAG, HOTFIX]
    assert containment_options(None, None) == [HOTFIX]
    assert containment_options(deploys("live", "rolled_back", "live"), None) == [ROLLBACK, HOTFIX]


def test_the_post_mortem_draft_names_the_cause_from_what_contained_it_and_the_missing_safety_nets() -> None:
    timeline = [
        TimelineEntry(at=OPENED, kind="alert", text="ProductionDown firing", actor="alertmanager"),
        TimelineEntry(at=OPENED + timedelta(minutes=2), kind="action", text="Roll back: done", actor="alice"),
        TimelineEntry(at=OPENED + timedelta(minutes=3), kind="decision", text="QA passed", actor="qa-gate"),
    ]
    draft = build_postmortem(
        incident(),
        service="checkout",
        timeline=timeline,
        findings=["last deploy 1.1.0 at 10:00", "external services up"],
        contained_by="rollback",
        resolution=Resolution(by="qa-gate", note="QA passed after rollback"),
        opened_at=OPENED,
        resolved_at=OPENED + timedelta(minutes=42),
        has_flag=False,
        could_roll_back=True,
    )
    assert draft.root_cause.startswith("Most likely the latest deploy") and "1.1.0" in draft.root_cause
    assert "42 min" in draft.impact
    assert "2 actions and decisions; first action at 10:02:00 UTC" in draft.response
    assert "resolved by qa-gate (QA passed after rollback)" in draft.response
    assert draft.prevention == [
        "Add a regression test for: checkout answers 500",
        "Put checkout's risky features behind feature flags",
        "Update alerts and dashboards for checkout to catch this earlier",
    ]
    unknown = build_postmortem(
        incident(Severity.P0),
        service="checkout",
        timeline=[],
        findings=[],
        contained_by=None,
        resolution=None,
        opened_at=OPENED,
        resolved_at=OPENED - timedelta(minutes=1),  # a clock that went backwards is never negative
        has_flag=True,
        could_roll_back=False,
    )
    assert "not established by the runbook" in unknown.root_cause and "0 min" in unknown.impact
    assert "Keep a previous stable deploy of checkout ready to roll back to" in unknown.prevention
    assert not any("feature flags" in step for step in unknown.prevention)
    assert unknown.title == "P0 checkout: checkout answers 500"
