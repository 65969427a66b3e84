"""Retry storm: tasks on a gateway keep failing and retrying, each failure setting off the next in a chain.

Break the chain first: freeze chained execution on the gateway for a fixed window (30 minutes), so retries
stop feeding each other, and put the incident in the review queue where someone looks at the failing work.
The freeze is a durable timer: when the window is over it is lifted, whether or not the worker restarted in
between. Freezing is protective, not destructive, so it is taken at once without asking the guardrail —
a freeze held back because another action ran ten minutes earlier would let the storm run on.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.gateway import GatewayActivities
    from schemas.gateway import ChainFreeze, GatewayEffect, ReviewOpening
    from schemas.incidents import IncidentInput, IncidentResult
    from schemas.targets import GatewayTarget
    from workflows.steps.incident import IncidentWorkflow
    from workflows.steps.system_state import observe

FREEZE_WINDOW = timedelta(minutes=30)


@workflow.defn(name="retry_storm")
class RetryStorm(IncidentWorkflow):
    target_model = GatewayTarget  # what it acts on: schemas/targets.py
    uses_roles = ("oncall",)  # the worker checks [roles]

    @workflow.run
    async def run(self, incident: IncidentInput) -> IncidentResult:
        gateway = incident.target["gateway"]
        minutes = int(FREEZE_WINDOW.total_seconds() // 60)
        lift_at = workflow.now() + FREEZE_WINDOW
        self.open(
            recommendation=f"Freeze chained execution on gateway {gateway} for {minutes} min and review "
            "the failing tasks",
            risk_if_no_action=f"Retries on gateway {gateway} keep triggering each other, burning budget "
            "and crowding out healthy work",
        )

        # 1. Stop the chain reaction.
        frozen = await self.act(
            "freeze",
            GatewayActivities.freeze_chain,
            ChainFreeze(
                gateway=gateway,
                reason=incident.summary,
                minutes=minutes,
                until=lift_at.isoformat(),
            ),
            summary=f"Freeze chained execution on gateway {gateway} for {minutes} min",
        )
        if frozen is not None:
            observe(self, "chained execution", chain_text(frozen.chain_frozen, frozen.chain_frozen_until))
        if frozen is None:
            await self.notify(
                "freeze-failed",
                channel="on-call",
                title=f"Could not freeze chained execution on {gateway}",
                text=f"{incident.summary}. The freeze failed; stop the retrying tasks by hand.",
            )
            return await self.finish("action_failed")
        self.set_state("frozen", awaiting=f"the freeze to lift at {lift_at:%H:%M:%S} UTC")

        # 2. Put it in front of a reviewer, and tell the people on call.
        await self.act(
            "review",
            GatewayActivities.open_review,
            ReviewOpening(
                gateway=gateway,
                kind="retry_storm",
                title=f"Retry storm on {gateway}",
                detail=f"{incident.summary}. Chained execution frozen until {lift_at:%H:%M:%S} UTC.",
            ),
            summary=f"Open a review of the retry storm on gateway {gateway}",
        )
        await self.notify(
            "tell-oncall",
            channel="on-call",
            title=f"Retry storm on {gateway}: chain frozen for {minutes} min",
            text=f"{incident.summary}. Chained execution is frozen until {lift_at:%H:%M:%S} UTC; "
            "the failing tasks are in the review queue.",
        )

        # 3. Hold the window on a durable timer, then lift the freeze.
        await workflow.sleep(FREEZE_WINDOW, summary=f"chained execution frozen for {minutes} min")
        lifted = await self.act(
            "unfreeze",
            GatewayActivities.unfreeze_chain,
            GatewayEffect(
                gateway=gateway,
                reason=f"{minutes}-minute freeze window over",
            ),
            summary=f"Lift the chained-execution freeze on gateway {gateway}",
        )
        if lifted is not None:
            observe(self, "chained execution", chain_text(lifted.chain_frozen, lifted.chain_frozen_until))
        if lifted is None:
            await self.notify(
                "unfreeze-failed",
                channel="on-call",
                title=f"Chained execution on {gateway} is still frozen",
                text="The freeze window is over but lifting it failed; lift it by hand once the storm is understood.",
            )
            return await self.finish("action_failed")
        await self.notify(
            "tell-lifted",
            channel="on-call",
            title=f"Chained execution on {gateway} resumed",
            text=f"The {minutes}-minute freeze is over. Watch for the storm coming back.",
        )
        return await self.finish("lifted")


def chain_text(frozen: bool, until: str | None) -> str:
    return ("frozen" + (f" until {until}" if until else "")) if frozen else "running"
