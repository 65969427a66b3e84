"""A minimal runbook that only asks the approval gate, so its rules can be tested one by one.

Its effects are the real ones (audit rows in Postgres, notifications to the sandbox); only the
procedure is a test's own.
"""

from __future__ import annotations

from pydantic import BaseModel
from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from schemas.approvals import ApprovalOutcome, ApprovalRequest
    from schemas.incidents import IncidentInput
    from workflows.steps.incident import IncidentWorkflow


class ProbeResult(BaseModel):
    outcome: ApprovalOutcome
    final_state: str


@workflow.defn(name="gate_probe")
class GateProbe(IncidentWorkflow):
    owns_resolve = True  # with `linger` it waits for `resolve` itself

    @workflow.run
    async def run(self, incident: IncidentInput) -> ProbeResult:
        self.open(recommendation="purge the queue", risk_if_no_action="the queue keeps growing")
        if "customer_message" in incident.target:
            await self.notify(
                "tell-customer",
                channel="customer",
                recipient="acme",
                title="Queue delays",
                text=incident.target["customer_message"],
            )
        outcome = await self.gate.ask(
            ApprovalRequest(
                action=incident.target.get("action", "purge"),
                recommendation="purge the queue",
                risk="the queue keeps growing",
                requested_by=incident.target.get("requested_by", "stanch"),
                destructive=incident.target.get("destructive") == "yes",
                safe_default="leave the queue as it is",
            )
        )
        if incident.target.get("linger") == "yes":
            # Stay open after the decision, so late answers to the closed gate can be observed.
            self.set_state("decided")
            await workflow.wait_condition(lambda: self.resolution is not None)
            if self.resolution is not None:
                # What `resolve` does to a review still pending: stand it down, nothing is sent.
                self.customer_messages.cancel_pending(by=self.resolution.by, reason=self.resolution.note)
        result = await self.finish("done" if outcome.approved else "left_alone")
        return ProbeResult(outcome=outcome, final_state=result.final_state)
