"""The war room's shapes: the hotfix cycle's own input and output, and what the deploy system answers.

`HotfixInput` and `HotfixResult` extend the incident models rather than replace them, so the hotfix cycle
keeps every human message of an incident (approve, escalate, brief, timeline …) and a route could start it
on its own; the war room starts it as a child with the extra fields filled in.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from schemas.actions import SET_BY_ACT
from schemas.briefs import TimelineEntry
from schemas.incidents import IncidentInput, IncidentResult

# ---- the hotfix cycle ---------------------------------------------------------------------------------


class Verdict(StrEnum):
    """What a QA gate run says about a build or a mitigation."""

    passed = "PASS"
    concerns = "CONCERNS"
    failed = "FAIL"
    blocked = "BLOCKED"

    @property
    def releasable(self) -> bool:
        # Concerns are written down but do not hold back a fix for a production outage.
        return self in (Verdict.passed, Verdict.concerns)


class EscalationTrigger(StrEnum):
    max_iterations_reached = "max_iterations_reached"
    verdict_blocked = "verdict_blocked"
    fix_failure = "fix_failure"
    manual_escalate = "manual_escalate"


class HotfixInput(IncidentInput):
    issue: str = Field("", description="short name of the problem; the decision log is named after it")
    max_iterations: int = Field(5, ge=1, description="fix → QA rounds before the loop escalates")
    fix_attempts: int = Field(3, ge=1, description="builds tried per round before the fix is a failure")
    parent_workflow_id: str | None = Field(None, description="the war room that started this cycle")


class HotfixResult(IncidentResult):
    outcome: str = Field(description="fixed or escalated")
    iterations: int = 0
    build_id: str | None = None
    deployed_version: str | None = None
    escalation_trigger: EscalationTrigger | None = None
    escalated_to: str | None = None
    decision_log: list[TimelineEntry] = Field(default_factory=list)


class StopRequest(BaseModel):
    """Payload of the `stop` signal: pause the loop, keep what it has done."""

    by: str
    reason: str = ""


class ResumeRequest(BaseModel):
    """Payload of the `resume` signal: carry on from the saved point."""

    by: str
    note: str = ""


class SavedLoop(BaseModel):
    """Where a stopped loop stands; the `saved_loop` query returns it."""

    iteration: int
    phase: str = Field(description="the step the loop resumes with: build or qa")
    build_id: str | None = None
    last_verdict: Verdict | None = None
    stopped: bool
    stopped_by: str | None = None


# ---- requests to the deploy system --------------------------------------------------------------------


class ServiceRequest(BaseModel):
    service: str
    idempotency_key: str = Field("", description=SET_BY_ACT)
    reason: str = ""


class DeployRecord(BaseModel):
    id: str
    service: str
    version: str
    at: str
    status: str
    replayed: bool = False


class RecentDeploys(BaseModel):
    service: str
    deploys: list[DeployRecord] = Field(default_factory=list, description="newest first")

    @property
    def live(self) -> DeployRecord | None:
        return next((deploy for deploy in self.deploys if deploy.status == "live"), None)

    @property
    def rollback_possible(self) -> bool:
        """A rollback needs a live deploy and an earlier one to go back to."""
        live = [deploy for deploy in self.deploys if deploy.status == "live"]
        return len(live) >= 2


class ServiceRollback(DeployRecord):
    restored_version: str


class InfraStatus(BaseModel):
    service: str
    status: str = Field(description="healthy, degraded or down")
    detail: str = ""
    config_version: str
    previous_config_version: str | None = None
    replayed: bool = False


class ExternalStatus(BaseModel):
    service: str
    dependencies: dict[str, str] = Field(default_factory=dict, description="name → up, degraded or down")

    @property
    def unhealthy(self) -> list[str]:
        return sorted(name for name, status in self.dependencies.items() if status != "up")


class FlagChange(BaseModel):
    name: str
    enabled: bool
    idempotency_key: str = Field("", description=SET_BY_ACT)


class FlagState(BaseModel):
    name: str
    enabled: bool
    replayed: bool = False


class QaRunRequest(BaseModel):
    service: str
    subject: str = Field(description="what is checked: a rollback, a flag, a hotfix build id")
    idempotency_key: str = Field("", description=SET_BY_ACT)


class QaRun(BaseModel):
    id: str
    service: str
    subject: str
    verdict: Verdict
    replayed: bool = False


class HotfixBuildRequest(BaseModel):
    service: str
    issue: str
    iteration: int
    attempt: int
    idempotency_key: str = Field("", description=SET_BY_ACT)


class HotfixBuild(BaseModel):
    id: str
    service: str
    version: str
    status: str = Field(description="succeeded or failed")
    replayed: bool = False


class ShipRequest(BaseModel):
    build_id: str
    idempotency_key: str = Field("", description=SET_BY_ACT)


# ---- database and infrastructure rollback -------------------------------------------------------------


class DatabaseState(BaseModel):
    service: str
    migrations: list[str] = Field(description="applied migrations, oldest first")
    rows: int
    backups: list[str] = Field(default_factory=list)
    verified_backups: list[str] = Field(default_factory=list)
    replayed: bool = False


class DatabaseBackup(BaseModel):
    id: str
    service: str
    migration: str
    rows: int
    verified: bool = False
    replayed: bool = False


class BackupRef(BaseModel):
    service: str
    backup_id: str
    idempotency_key: str = Field("", description=SET_BY_ACT)


class MigrateDown(BaseModel):
    service: str
    backup_id: str = Field(description="a verified backup of the data as it is now")
    migration: str = Field(description="the migration to reverse; must be the latest applied")
    idempotency_key: str = Field("", description=SET_BY_ACT)


class IntegrityReport(BaseModel):
    service: str
    ok: bool
    detail: str = ""
    replayed: bool = False


# ---- after the incident -------------------------------------------------------------------------------


class Postmortem(BaseModel):
    incident_id: str
    service: str
    severity: str
    title: str
    timeline: list[TimelineEntry]
    root_cause: str
    impact: str
    response: str
    prevention: list[str]
    written_at: datetime


class PostmortemRequest(BaseModel):
    postmortem: Postmortem
    idempotency_key: str = Field("", description=SET_BY_ACT)


class PostmortemReceipt(BaseModel):
    id: str
    incident_id: str
    replayed: bool = False


class StoryRequest(BaseModel):
    incident_id: str
    title: str
    idempotency_key: str = Field("", description=SET_BY_ACT)


class StoryReceipt(BaseModel):
    id: str
    incident_id: str
    title: str
    replayed: bool = False


class ReportFiled(BaseModel):
    """Payload of the war room's `report_filed` signal: the incident report was shared."""

    by: str
    url: str = ""
    stories: list[str] = Field(
        default_factory=list, description="preventive stories to file; empty: the post-mortem's own list"
    )
