"""Asking a subsystem's guardrail from inside a runbook: workflows cannot call the client, this activity can.

One update-with-start call both starts the guardrail if it is not running and asks it; a retried attempt
carries the same idempotency key, which the guardrail answers from memory without counting it again.
"""

from __future__ import annotations

from typing import Any

from temporalio import activity
from temporalio.client import Client, WithStartWorkflowOperation, WorkflowUpdateFailedError
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.exceptions import ApplicationError

from schemas.guardrail import (
    CHECK_UPDATE,
    GUARDRAIL_WORKFLOW,
    GuardrailInput,
    GuardrailRequest,
    Verdict,
    guardrail_workflow_id,
)


class GuardrailActivities:
    """Built once in the worker with its Temporal client and the task queue the guardrails run on."""

    def __init__(self, client: Client, task_queue: str) -> None:
        self._client = client
        self._task_queue = task_queue

    @activity.defn(name="ask_guardrail")
    async def ask(self, request: GuardrailRequest) -> Verdict:
        workflow_id = guardrail_workflow_id(request.subsystem)
        start: WithStartWorkflowOperation[Any, Any] = WithStartWorkflowOperation(
            GUARDRAIL_WORKFLOW,
            GuardrailInput(subsystem=request.subsystem, limits=request.limits),
            id=workflow_id,
            task_queue=self._task_queue,
            # The guardrail is the subsystem's single counter: join the running one, never start a second.
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            static_summary=f"Guardrail for {request.subsystem}",
        )
        try:
            verdict: Verdict = await self._client.execute_update_with_start_workflow(
                CHECK_UPDATE,
                request.check,
                start_workflow_operation=start,
                result_type=Verdict,
            )
        except WorkflowUpdateFailedError as error:
            # The validator refused the ask: asking again cannot change that.
            raise ApplicationError(
                f"guardrail {workflow_id} refused the ask: {error.cause}",
                type="GuardrailRefused",
                non_retryable=True,
            ) from error
        return verdict
