"""The long-lived workflows, AUTO_UPGRADE on a versioned worker (docs/deployment.md, "What is pinned, what
moves"): each moves to the deployment's current version at its next workflow task after a promote.

Incidents are PINNED (the versioned worker's default): an old version's workers run until its last incident
closes, `give_up_after_hours` at most. The workflows in `LONG_LIVED` would keep an old version running far
longer, or for ever, and never take a fix without a person moving them. Moving means replaying their history
on the new code, so a change to one still goes behind `workflow.patched`, exactly as before versioning.

The behaviour is on a subclass here, not on the classes' own `@workflow.defn`: a server refuses every task
of a workflow that names a behaviour from an unversioned worker ("versioning behavior cannot be specified
without deployment options being set with versioned mode"), and `make dev` and the tests run unversioned.
So only a versioned worker registers these, each in its original's place (`workers/worker.py`,
`build_worker`). A subclass has the original's workflow type name, signals, queries, updates and code: its
histories are the original's, the Replayer replays them with the original. They live in a module rather
than being made in `build_worker` because the workflow sandbox re-imports a registered class by its module
and name, and takes the behaviour from the definition it finds there.

Not a runbook: no procedure here. Imported by the sandbox, so no side effects at import.
"""

from __future__ import annotations

from temporalio import workflow
from temporalio.common import VersioningBehavior

with workflow.unsafe.imports_passed_through():
    from schemas.guardrail import GUARDRAIL_WORKFLOW, GuardrailInput, GuardrailState
    from schemas.incidents import IncidentResult
    from schemas.learning import POSTMORTEM_WORKFLOW, PostmortemInput, PostmortemResult
    from schemas.report import CockpitReport, ReportRequest
    from schemas.triage import TRIAGE_WORKFLOW, TriageInput
    from schemas.watchdog import DeadMansSwitchInput
    from workflows.daily_cockpit_report import REPORT_WORKFLOW, DailyCockpitReport
    from workflows.dead_mans_switch import DeadMansSwitch
    from workflows.guardrail import Guardrail
    from workflows.postmortem import PostmortemWorkflow
    from workflows.triage import Triage

AUTO_UPGRADE = VersioningBehavior.AUTO_UPGRADE

# The SDK requires a subclass's definition to name its own `@workflow.run` (the rest is inherited).


@workflow.defn(name=GUARDRAIL_WORKFLOW, versioning_behavior=AUTO_UPGRADE)
class GuardrailAutoUpgrade(Guardrail):
    @workflow.run
    async def run(self, params: GuardrailInput) -> GuardrailState:
        return await super().run(params)


@workflow.defn(name=REPORT_WORKFLOW, versioning_behavior=AUTO_UPGRADE)
class DailyCockpitReportAutoUpgrade(DailyCockpitReport):
    @workflow.run
    async def run(self, request: ReportRequest) -> CockpitReport:
        return await super().run(request)


@workflow.defn(name="dead_mans_switch", versioning_behavior=AUTO_UPGRADE)
class DeadMansSwitchAutoUpgrade(DeadMansSwitch):
    @workflow.run
    async def run(self, incident: DeadMansSwitchInput) -> IncidentResult:
        return await super().run(incident)


@workflow.defn(name=TRIAGE_WORKFLOW, versioning_behavior=AUTO_UPGRADE)
class TriageAutoUpgrade(Triage):
    @workflow.run
    async def run(self, incident: TriageInput) -> IncidentResult:
        return await super().run(incident)


@workflow.defn(name=POSTMORTEM_WORKFLOW, versioning_behavior=AUTO_UPGRADE)
class PostmortemAutoUpgrade(PostmortemWorkflow):
    @workflow.run
    async def run(self, incident: PostmortemInput) -> PostmortemResult:
        return await super().run(incident)


# The one list of long-lived workflows: each one a versioned worker registers → its AUTO_UPGRADE copy.
LONG_LIVED: dict[type, type] = {
    # One per subsystem, never ends: it continues-as-new to bound its history.
    Guardrail: GuardrailAutoUpgrade,
    # Started by a schedule every day: each run is short, but the schedule's runs should take the current
    # code, and one still running (its audit summary retrying) should not hold an old version.
    DailyCockpitReport: DailyCockpitReportAutoUpgrade,
    # Watches a heartbeat alert for as long as it is sent: it continues-as-new after each batch of beats.
    DeadMansSwitch: DeadMansSwitchAutoUpgrade,
    # Waits for a human to hand it to a runbook or resolve it, and never gives up: it keeps paging.
    Triage: TriageAutoUpgrade,
    # Follows a resolved incident for its learning: 24 h to ask, 48 h before it closes unanswered.
    PostmortemWorkflow: PostmortemAutoUpgrade,
}
