"""Asking the subsystem's guardrail before an automatic action, from inside a runbook workflow.

    check = action_check("restart-gateway", action="restart gateway", kind="restart", risk=Risk.high,
                         reason="memory at 92% of the cgroup high watermark")
    verdict = await ask_guardrail("gateway", check, limits)
    if verdict.ruling is Ruling.needs_approval: ... go through the approval gate ...

It fails closed: if the guardrail cannot be reached the answer is `needs_approval`, never `allow`.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.guardrail import GuardrailActivities
    from schemas.guardrail import ActionCheck, GuardrailLimits, GuardrailRequest, Risk, Ruling, Verdict

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
