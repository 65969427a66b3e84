"""Resource pressure: CPU, memory, GPU or IO on a gateway host is running hot.

Mark the pressure on the gateway so every other process sees it, then stop new risky sub-agent spawns from
adding to it, tell the people on call and open a review so someone confirms or undoes what was done.

Blocking spawns is an automatic action, so the gateway's guardrail is asked first, at the risk the alert
states (label `risk`, medium unless told): low risk only diagnoses — pressure marked, people told, nothing
blocked; medium risk blocks at most once per 10 minutes per subsystem. Past that, the review is still opened
at once and a human is asked whether to block spawns; nobody answering leaves spawns open.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.gateway import GatewayActivities
    from schemas.approvals import ApprovalRequest
    from schemas.gateway import GatewayEffect, GatewayRead, ReviewOpening
    from schemas.guardrail import Risk, Ruling
    from schemas.incidents import IncidentInput, IncidentResult
    from schemas.targets import ResourcePressureTarget
    from workflows.steps.approve_then_act import FailurePage, approve_then_act
    from workflows.steps.failures import page_failure
    from workflows.steps.guardrail import action_check, ask_guardrail
    from workflows.steps.incident import IncidentWorkflow
    from workflows.steps.patches import patched
    from workflows.steps.system_state import observe_flags, observe_memory

# The seed allows only these two for resource pressure; anything else in the label is treated as medium.
RISKS = {"low": Risk.low, "medium": Risk.medium}


@workflow.defn(name="resource_pressure")
class ResourcePressure(IncidentWorkflow):
    target_model = ResourcePressureTarget  # what it acts on: schemas/targets.py
    uses_roles = ("oncall", "lead")  # the worker checks [roles]

    @workflow.run
    async def run(self, incident: IncidentInput) -> IncidentResult:
        gateway = incident.target["gateway"]
        subsystem = incident.target.get("subsystem", "gateway")
        risk = RISKS.get(incident.target.get("risk", "medium"), Risk.medium)
        self.open(
            recommendation=f"Block new risky spawns on gateway {gateway} until the pressure is reviewed",
            risk_if_no_action=f"New sub-agents keep landing on gateway {gateway} and push it into "
            "throttling or the OOM killer",
        )

        # 1. Mark the pressure: a flag, not a change in behaviour, so it is set whatever the risk.
        status = await self.act(
            "diagnose",
            GatewayActivities.status,
            GatewayRead(gateway=gateway),
            summary=f"Read resource usage of gateway {gateway}",
        )
        observe_memory(self, status)
        if status is not None:
            observe_flags(self, status)
        usage = f"memory at {status.memory_ratio:.0%} of its high watermark" if status else "usage unknown"
        marked = await self.act(
            "mark-pressure",
            GatewayActivities.mark_pressure,
            GatewayEffect(gateway=gateway, reason=incident.summary),
            summary=f"Mark resource pressure on gateway {gateway}",
        )
        if marked is not None:
            observe_flags(self, marked)
        if marked is None:
            await self.notify(
                "mark-failed",
                channel="on-call",
                title=f"Resource pressure on {gateway}: could not mark it",
                text=f"{incident.summary} ({usage}). Marking the pressure failed; check the gateway by hand.",
            )
            return await self.finish("action_failed")

        # 2. Block risky spawns, if the guardrail lets an automatic action through at this risk.
        verdict = await ask_guardrail(
            subsystem,
            action_check(
                "block-spawns",
                action=f"block risky spawns on gateway {gateway}",
                kind="block_spawns",
                risk=risk,
                reason=f"{incident.summary} ({usage})",
            ),
            incident.policy.guardrail_limits(subsystem),
        )
        await self.audit(
            "guardrail",
            action="ask guardrail to block risky spawns",
            outcome=verdict.ruling.value,
            reason=verdict.reason,
        )
        blocked = verdict.ruling is Ruling.allow and await self.block_spawns(gateway, "stanch")
        if verdict.ruling is Ruling.diagnose_only:
            self.brief.recommendation = f"None automatic at {risk.value} risk: watch gateway {gateway}"

        # 3. Tell the people on call, and open the review that confirms (or undoes) what was done.
        done = "risky spawns blocked" if blocked else "spawns left open"
        await self.notify(
            "tell-oncall",
            channel="on-call",
            title=f"Resource pressure on gateway {gateway}",
            text=f"{incident.summary} ({usage}). Pressure marked; {done}. Guardrail: {verdict.reason}.",
        )
        await self.act(
            "review",
            GatewayActivities.open_review,
            ReviewOpening(
                gateway=gateway,
                kind="resource_pressure",
                title=f"Resource pressure on {gateway}: {done}",
                detail=f"{incident.summary} ({usage}). Confirm the action or lift it once the load is down.",
            ),
            summary=f"Open a resource-pressure review for gateway {gateway}",
        )
        if verdict.ruling is Ruling.diagnose_only:
            return await self.finish("diagnosed")
        if blocked:
            return await self.finish("spawns_blocked")
        if verdict.ruling is Ruling.allow:  # allowed, but the block itself failed
            if patched("resource_pressure-block-spawns-failure-pages"):
                await page_failure(
                    self,
                    "block-spawns-failed",
                    what=f"blocking risky spawns on gateway {gateway} (allowed by the guardrail)",
                    state_left=f"spawns on gateway {gateway} stay open under pressure ({usage}); the pressure "
                    "is marked and in review. Block them by hand",
                )
            return await self.finish("action_failed")

        # 4. Held back by the guardrail: a human decides whether to block now.
        blocking = await approve_then_act(
            self,
            ApprovalRequest(
                action="block-risky-spawns",
                recommendation=f"Block new risky spawns on gateway {gateway} ({usage}); the guardrail held "
                f"the automatic block back: {verdict.reason}",
                risk=f"New sub-agents keep adding load to gateway {gateway}",
                allowed_roles=["oncall", "lead"],
                safe_default=f"leave spawns open on gateway {gateway}; the pressure stays marked and in review",
            ),
            "block-spawns",
            GatewayActivities.block_risky_spawns,
            self.block_request(gateway),
            summary=self.block_summary(gateway),
            if_failed=FailurePage(
                "resource_pressure-approved-block-spawns-failure-pages",
                "block-spawns-failed",
                what=f"blocking risky spawns on gateway {gateway}",
                state_left=f"spawns on gateway {gateway} stay open under pressure ({usage}); the pressure "
                "is marked and in review. Block them by hand",
            ),
        )
        if not blocking.approved:
            return await self.finish("escalated" if blocking.timed_out else "left_open")
        if blocking.result is not None:
            observe_flags(self, blocking.result)
        return await self.finish("spawns_blocked" if blocking.done else "action_failed")

    async def block_spawns(self, gateway: str, actor: str) -> bool:
        result = await self.act(
            "block-spawns",
            GatewayActivities.block_risky_spawns,
            self.block_request(gateway),
            summary=self.block_summary(gateway),
            actor=actor,
        )
        if result is not None:
            observe_flags(self, result)
        return result is not None

    def block_request(self, gateway: str) -> GatewayEffect:
        return GatewayEffect(gateway=gateway, reason=self.incident.summary)

    def block_summary(self, gateway: str) -> str:
        return f"Block risky spawns on gateway {gateway}"
