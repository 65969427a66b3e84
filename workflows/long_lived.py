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

import functools
from typing import Any

from temporalio import workflow
from temporalio.common import VersioningBehavior
from temporalio.workflow import _Definition as WorkflowDefinition

from workflows.daily_cockpit_report import DailyCockpitReport
from workflows.dead_mans_switch import DeadMansSwitch
from workflows.guardrail import Guardrail
from workflows.postmortem import PostmortemWorkflow
from workflows.triage import Triage


def auto_upgrade_copy(cls: type, copy_name: str, module: str = __name__) -> type:
    """A subclass of the workflow `cls` under its workflow type, AUTO_UPGRADE, whose run is `cls`'s: set
    it as the attribute `copy_name` of `module`, where the workflow sandbox looks for it again (a team's
    pack makes its copies in a module of its own and lists them as its `long_lived`, stanch/packs.py).

    `@workflow.defn` wants the run method defined on the class it decorates: the copy's run is a new
    function that calls `cls`'s (`functools.wraps` keeps the signature and type hints the SDK reads for the
    payload types). It is set after the class is made, not written in its body: `IncidentWorkflow`'s
    `__init_subclass__` wraps a subclass's own run to drain its audit rows, and would wrap a run that
    already calls a wrapped one, so a triage, dead man's switch or post-mortem copy would start its
    response-target watch twice and not replay the original's fresh histories (tests/workers/test_long_lived.py)."""
    base_run = cls.run  # type: ignore[attr-defined]

    @functools.wraps(base_run)
    async def run(self: Any, *args: Any) -> Any:
        return await base_run(self, *args)

    run.__module__ = module
    run.__qualname__ = f"{copy_name}.run"
    copy = type(copy_name, (cls,), {"__module__": module, "__qualname__": copy_name, "__doc__": cls.__doc__})
    copy.run = run  # type: ignore[attr-defined]
    workflow_type = WorkflowDefinition.must_from_class(cls).name
    return workflow.defn(name=workflow_type, versioning_behavior=VersioningBehavior.AUTO_UPGRADE)(copy)


# Module attributes, so the workflow sandbox finds each copy again by its module and name.
GuardrailAutoUpgrade = auto_upgrade_copy(Guardrail, "GuardrailAutoUpgrade")
DailyCockpitReportAutoUpgrade = auto_upgrade_copy(DailyCockpitReport, "DailyCockpitReportAutoUpgrade")
DeadMansSwitchAutoUpgrade = auto_upgrade_copy(DeadMansSwitch, "DeadMansSwitchAutoUpgrade")
TriageAutoUpgrade = auto_upgrade_copy(Triage, "TriageAutoUpgrade")
PostmortemAutoUpgrade = auto_upgrade_copy(PostmortemWorkflow, "PostmortemAutoUpgrade")


# Stanch's long-lived workflows (its pack's `long_lived`): each one a versioned worker registers → its
# AUTO_UPGRADE copy.
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
