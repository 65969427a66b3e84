"""Agent upgrade: move one agent to a new version (a new skill, another model, more capabilities).

First find out what changes: the platform's diff between the running version and the target. Then, before
anything is touched, snapshot the agent's config and memory. Apply the new version and run the full gold
set. A score under the threshold is a regression, and so is a failed apply or a gold set that could not run:
the snapshot is restored automatically — that compensation runs whatever happened, cancellation included —
and the owner is told. A clean run goes to the owner to validate; a rejection restores the snapshot too,
while no answer keeps the version that passed and leaves the validation open. The audit log is the
upgrade's log, closed by one row that sums it up.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple

from pydantic import BaseModel
from temporalio import workflow
from temporalio.exceptions import FailureError

with workflow.unsafe.imports_passed_through():
    from activities.agents import AgentActivities
    from schemas.agents import (
        AgentAction,
        ConfigRequest,
        DiffRequest,
        RestoreRequest,
        SnapshotResult,
        VersionDiff,
    )
    from schemas.approvals import ApprovalRequest
    from schemas.incidents import IncidentInput, IncidentResult
    from schemas.targets import AgentUpgradeTarget
    from workflows.steps.failures import page_failure
    from workflows.steps.incident import IncidentWorkflow
    from workflows.steps.patches import patched
    from workflows.steps.roles import owner_or
    from workflows.steps.system_state import observe, observe_gold_set

# The owner (the person the agent works for) validates an upgrade.
OWNER_ROLES_BEFORE = ["lead"]  # who decided before the owner role existed (owner_or)


class Regression(Exception):
    """The new version must not stay: raised inside the upgrade, answered by the compensations."""


class Compensation(NamedTuple):
    """One effect that undoes an earlier one, registered as soon as there is something to undo."""

    step: str
    effect: Callable[[Any, Any], Awaitable[BaseModel]]
    request: BaseModel
    summary: str


@workflow.defn(name="agent_upgrade")
class AgentUpgrade(IncidentWorkflow):
    target_model = AgentUpgradeTarget  # what it acts on: schemas/targets.py
    uses_roles = ("owner", "oncall")  # the worker checks [roles]

    @workflow.run
    async def run(self, incident: IncidentInput) -> IncidentResult:
        agent_id = incident.target["agent_id"]
        target = incident.target["to_version"]
        self.open(
            recommendation=f"Upgrade agent {agent_id} to {target}; keep it only if its gold set passes",
            risk_if_no_action=f"Agent {agent_id} keeps its current version and misses what {target} brings",
        )

        # 1. What changes, and so what may behave differently.
        diff = await self.act(
            "identify-changes",
            AgentActivities.version_diff,
            DiffRequest(agent_id=agent_id, to_version=target),
            summary=f"Diff agent {agent_id} against {target}",
        )
        if diff is None:
            # Unknown agent or version: nothing was touched, so there is nothing to undo.
            if patched("agent_upgrade-identify-changes-failure-pages"):
                await page_failure(
                    self,
                    "identify-changes-failed",
                    what=f"diffing agent {agent_id} against {target}",
                    state_left=f"nothing was snapshotted or applied; agent {agent_id} stays on its current "
                    "version",
                )
            return await self.finish("action_failed")
        observe(self, f"version of agent {agent_id}", diff.from_version, limit=f"upgrade to {target}")
        if diff.from_version == target:
            return await self.finish("unchanged")
        self.note("action", "changes: " + "; ".join(str(change) for change in diff.changes))

        # 2. Backup before anything else: config and memory, with the version they belong to.
        snapshot = await self.act(
            "snapshot",
            AgentActivities.snapshot_state,
            AgentAction(
                agent_id=agent_id,
                reason=f"before the upgrade to {target}",
            ),
            summary=f"Snapshot config and memory of agent {agent_id}",
        )
        if snapshot is not None:
            observe(
                self,
                "snapshot",
                f"{snapshot.snapshot_id} of {snapshot.version} ({snapshot.memory_items} memories)",
            )
        if snapshot is None:
            await self.notify(
                "snapshot-failed",
                channel="on-call",
                title=f"Upgrade of agent {agent_id} not started",
                text=f"No snapshot of agent {agent_id} could be taken, so {target} was not applied.",
            )
            return await self.finish("action_failed")

        # From here on something can change, so the way back is registered before the first change.
        undo = [
            Compensation(
                "restore-snapshot",
                AgentActivities.restore_snapshot,
                RestoreRequest(
                    agent_id=agent_id,
                    snapshot_id=snapshot.snapshot_id,
                    reason=f"upgrade to {target} undone",
                ),
                f"Restore agent {agent_id} to snapshot {snapshot.snapshot_id} ({snapshot.version})",
            )
        ]
        try:
            final_state = await self.apply_and_validate(agent_id, diff, snapshot)
            undo.clear()  # kept: nothing to undo any more
        except Regression as regression:
            final_state = await self.compensate(undo, agent_id, str(regression))
        except (asyncio.CancelledError, FailureError):
            # Cancelled from the UI (while waiting, or while an activity ran) or failed on purpose mid-way:
            # the agent still gets its snapshot back before the run ends.
            await self.compensate(undo, agent_id, "the upgrade was interrupted")
            raise

        # 5. Log the upgrade as one row, whatever its outcome.
        await self.audit(
            "upgrade-log",
            action=f"upgrade agent {agent_id} {diff.from_version} → {target}",
            outcome=final_state,
            reason="; ".join(str(change) for change in diff.changes),
            details={"snapshot": snapshot.snapshot_id},
        )
        return await self.finish(final_state)

    async def apply_and_validate(self, agent_id: str, diff: VersionDiff, snapshot: SnapshotResult) -> str:
        target = diff.to_version
        # 3. Apply: the target version with the config it runs with.
        applied = await self.act(
            "apply",
            AgentActivities.inject_config,
            ConfigRequest(
                agent_id=agent_id,
                version=target,
                config=diff.target_config,
                reason=f"upgrade from {diff.from_version}",
            ),
            summary=f"Upgrade agent {agent_id} {diff.from_version} → {target}",
        )
        if applied is not None:
            observe(
                self,
                f"version of agent {agent_id}",
                applied.version,
                limit=f"snapshot of {snapshot.version} kept",
            )
        if applied is None:
            raise Regression(f"applying {target} failed; the platform may hold a half-applied version")

        # 4. The full gold set on the new version; under the threshold is a regression.
        gold = await self.act(
            "gold-set",
            AgentActivities.run_gold_set,
            AgentAction(agent_id=agent_id, reason=f"upgrade to {target}"),
            summary=f"Run the gold set on agent {agent_id} {target}",
        )
        observe_gold_set(self, gold)
        if gold is None:
            raise Regression(f"the gold set could not run on {target}, so it is unproven")
        if not gold.passed:
            raise Regression(
                f"the gold set scored {gold.score:.0%} on {gold.version}, under the {gold.threshold:.0%} threshold"
            )
        self.set_state("tested")
        await self.notify(
            "tested",
            channel="owner",
            title=f"Agent {agent_id} upgraded to {target}, awaiting your validation",
            text=f"Gold set {gold.score:.0%} (threshold {gold.threshold:.0%}). Snapshot {snapshot.snapshot_id} "
            f"of {snapshot.version} is kept if you want it back.",
        )

        # 5. The owner validates; a rejection is undone like a regression.
        decision = await self.gate.ask(
            ApprovalRequest(
                action="validate-upgrade",
                recommendation=f"Keep agent {agent_id} on {target}: its gold set scored {gold.score:.0%}",
                risk=f"Agent {agent_id} runs {target} without the owner's validation",
                allowed_roles=owner_or(self.incident.policy, OWNER_ROLES_BEFORE),
                safe_default=f"keep {target}, which passed its gold set, and leave the validation open",
            )
        )
        if decision.timed_out:
            return "escalated"
        if not decision.approved:
            raise Regression(
                f"{decision.decided_by} rejected {target}: {decision.comment or 'no reason given'}"
            )
        return "upgraded"

    async def compensate(self, undo: list[Compensation], agent_id: str, reason: str) -> str:
        """Run every registered compensation, newest first; each is tried even if one before failed."""
        self.set_state("rolling_back")
        self.note("action", f"undoing the upgrade of {agent_id}: {reason}")
        failed = [
            step.summary
            for step in reversed(undo)
            if await self.act(step.step, step.effect, step.request, summary=step.summary) is None
        ]
        undo.clear()
        observe(self, f"version of agent {agent_id}", "restore FAILED" if failed else "back on its snapshot")
        if failed:
            await self.notify(
                "rollback-failed",
                channel="on-call",
                title=f"Agent {agent_id}: the upgrade could not be undone",
                text=f"{reason}. These steps failed and need a person now: {'; '.join(failed)}.",
            )
            return "action_failed"
        await self.notify(
            "rolled-back",
            channel="owner",
            title=f"Upgrade of agent {agent_id} rolled back",
            text=f"{reason}. The agent is back on its snapshot, config and memory included.",
        )
        return "rolled_back"
