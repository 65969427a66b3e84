"""Agent emergency stop: an AI agent is saying things it must not (hallucinating, insulting, promising).

First stanch the bleeding — pause the agent so humans take over its conversations — then tell the customer
and the on-call channel, and ask a human to approve rolling the agent back to its previous stable version.
Nobody answers: escalate, and keep the agent paused. Investigation of the conversation logs follows.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.agents import AgentActivities
    from schemas.agents import AgentAction, AgentRollback
    from schemas.approvals import ApprovalRequest
    from schemas.incidents import IncidentInput, IncidentResult
    from schemas.targets import AgentStopTarget
    from workflows.steps.approve_then_act import approve_then_act
    from workflows.steps.incident import IncidentWorkflow
    from workflows.steps.patches import patched
    from workflows.steps.system_state import observe_agent

CUSTOMER_MESSAGE = (
    "We detected unstable answers from our assistant and paused it as a precaution. "
    "A person from our team is handling your conversation now."
)


@workflow.defn(name="agent_emergency_stop")
class AgentEmergencyStop(IncidentWorkflow):
    target_model = AgentStopTarget  # what it acts on: schemas/targets.py
    uses_roles = ("oncall", "lead")  # the worker checks [roles]

    @workflow.run
    async def run(self, incident: IncidentInput) -> IncidentResult:
        agent_id = incident.target["agent_id"]
        customer = incident.target.get("customer", "the customer")
        self.open(
            recommendation=f"Roll agent {agent_id} back to its previous stable version",
            risk_if_no_action=f"Agent {agent_id} stays paused; its conversations stay manual until someone acts",
        )

        # 1. Stop the agent answering at once; no approval is needed to stop harm.
        paused = await self.act(
            "pause",
            AgentActivities.pause_agent,
            AgentAction(agent_id=agent_id, reason=incident.summary),
            summary=f"Pause agent {agent_id}",
        )
        if paused is not None:
            observe_agent(self, paused)
        if paused is None:
            await self.notify(
                "pause-failed",
                channel="on-call",
                title=f"Could not pause agent {agent_id}",
                text=f"{incident.summary}. The pause failed; stop the agent by hand.",
            )
            return await self.finish("action_failed")
        self.set_state("contained")

        # 2. Tell the customer, then the people on call.
        await self.notify(
            "tell-customer",
            channel="customer",
            recipient=customer,
            title="Assistant paused",
            text=CUSTOMER_MESSAGE,
        )
        await self.notify(
            "tell-oncall",
            channel="on-call",
            title=f"Agent {agent_id} paused",
            text=f"{incident.summary}. Agent {agent_id} ({paused.version}) is paused. "
            f"Approve a rollback to {paused.previous_version or 'the previous version'} when ready.",
        )

        # 3. Roll back to the previous stable version, once a human says so.
        rollback = await approve_then_act(
            self,
            ApprovalRequest(
                action="rollback",
                recommendation=f"Roll agent {agent_id} back from {paused.version} "
                f"to {paused.previous_version or 'the previous version'}",
                risk=f"Agent {agent_id} stays paused and every conversation stays manual",
                allowed_roles=["oncall", "lead"],
                safe_default=f"keep agent {agent_id} paused",
            ),
            "rollback",
            AgentActivities.rollback_agent,
            lambda decision: AgentRollback(agent_id=agent_id, reason=decision.comment),
            summary=f"Roll back agent {agent_id}",
        )
        if not rollback.approved:
            return await self.finish("escalated" if rollback.timed_out else "contained")
        if rollback.result is not None:
            observe_agent(self, rollback.result)
        if rollback.failed and patched("rollback-failure-tells-oncall"):
            # The agent stays paused, which is safe, but the approved fix did not happen: someone must know,
            # or the incident ends quietly with its conversations manual for good. (Its own words, older
            # than `page_failure`.)
            approver = rollback.decision.decided_by
            await self.notify(
                "rollback-failed",
                channel="on-call",
                title=f"Rollback of agent {agent_id} failed",
                text=f"{incident.summary}. {approver} approved rolling agent {agent_id} back; the "
                "platform refused it. The agent stays paused: roll it back or resume it by hand.",
            )
        return await self.finish("rolled_back" if rollback.done else "action_failed")
