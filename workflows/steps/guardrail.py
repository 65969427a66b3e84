"""Asking the subsystem's guardrail before an automatic action, from inside a runbook workflow.

    check = action_check("restart-gateway", action="restart gateway", kind="restart", risk=Risk.high,
                         reason="memory at 92% of the cgroup high watermark")
    verdict = await ask_guardrail("gateway", check, limits)
    if verdict.ruling is Ruling.needs_approval: ... go through the approval gate ...

or, in one step that also audits the answer and asks the runbook's gate when the guardrail holds it back:

    cleared = await clear_with_guardrail(self, "gateway", check, ApprovalRequest(...))
    if not cleared.go: ... the safe default ...

It fails closed: if the guardrail cannot be reached the answer is `needs_approval`, never `allow`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.guardrail import GuardrailActivities
    from schemas.approvals import ApprovalOutcome, ApprovalRequest
    from schemas.guardrail import ActionCheck, GuardrailLimits, GuardrailRequest, Risk, Ruling, Verdict

if TYPE_CHECKING:
    from workflows.steps.incident import IncidentWorkflow

# An ask is one update round trip; a guardrail that stays unreachable for a minute means a human decides.
GUARDRAIL_TIMEOUT = timedelta(seconds=20)
GUARDRAIL_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=10),
    maximum_attempts=5,
    non_retryable_error_types=["GuardrailRefused"],
)


def action_check(
    step: str, *, action: str, kind: str, risk: Risk, reason: str = "", destructive: bool = False
) -> ActionCheck:
    """An ask whose idempotency key is this run's step: a retry of the same step is counted once."""
    info = workflow.info()
    return ActionCheck(
        requested_by=info.workflow_id,
        idempotency_key=f"{info.workflow_id}/{info.run_id}/guardrail-{step}",
        action=action,
        kind=kind,
        risk=risk,
        reason=reason,
        destructive=destructive,
    )


async def ask_guardrail(subsystem: str, check: ActionCheck, limits: GuardrailLimits) -> Verdict:
    """The guardrail's verdict on one automatic action; starts the subsystem's guardrail if needed."""
    problem = check.problem()
    if problem:
        # A runbook bug, not an outage: fail loudly rather than act, or ask a human about nonsense.
        raise ApplicationError(
            f"malformed guardrail ask: {problem}", type="GuardrailAskInvalid", non_retryable=True
        )
    try:
        return await workflow.execute_activity_method(
            GuardrailActivities.ask,
            GuardrailRequest(subsystem=subsystem, check=check, limits=limits),
            start_to_close_timeout=GUARDRAIL_TIMEOUT,
            retry_policy=GUARDRAIL_RETRY,
            summary=f"Guardrail {subsystem}: may I {check.action}?",
        )
    except ActivityError as error:
        return Verdict(
            ruling=Ruling.needs_approval,
            subsystem=subsystem,
            idempotency_key=check.idempotency_key,
            reason=f"guardrail unavailable, a human decides: {error.cause or error}",
            decided_at=workflow.now(),
        )


@dataclass
class Clearance:
    """May the runbook carry out the action now, and on whose word."""

    go: bool
    verdict: Verdict
    decision: ApprovalOutcome | None = None  # set when the guardrail held it back and a human was asked

    @property
    def by(self) -> str:
        """Who the action is carried out for: the approver, or Stanch itself when the guardrail allowed it."""
        return self.decision.decided_by if self.decision else "stanch"

    @property
    def timed_out(self) -> bool:
        return self.decision is not None and self.decision.timed_out


async def clear_with_guardrail(
    incident: IncidentWorkflow, subsystem: str, check: ActionCheck, approval: ApprovalRequest
) -> Clearance:
    """Ask `subsystem`'s guardrail about `check` right before carrying it out, audit its answer under the
    ask's own step (`guardrail-<step>` of `action_check`), and when it holds the action back (the kill switch is engaged, the
    critical window is full, a rate limit, or the guardrail is unreachable) ask `approval` through the
    runbook's gate, its recommendation naming why."""
    verdict = await ask_guardrail(subsystem, check, incident.incident.policy.guardrail_limits(subsystem))
    await incident.audit(
        check.idempotency_key.rsplit("/", 1)[-1],
        action=f"ask guardrail {subsystem}: {check.action}",
        outcome=verdict.ruling.value,
        reason=verdict.reason,
        details={"kind": check.kind, "risk": check.risk.value, "destructive": str(check.destructive)},
    )
    if verdict.allowed:
        return Clearance(go=True, verdict=verdict)
    incident.note(
        "note", f"guardrail {subsystem} says {verdict.ruling.value} to {check.action}: {verdict.reason}"
    )
    decision = await incident.gate.ask(
        approval.model_copy(
            update={
                "recommendation": f"{approval.recommendation}. The guardrail of {subsystem} held it back: "
                f"{verdict.reason}"
            }
        )
    )
    return Clearance(go=decision.approved, verdict=verdict, decision=decision)
