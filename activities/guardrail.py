"""Asking a subsystem's guardrail from inside a runbook: workflows cannot call the client, this activity can.

One update-with-start call both starts the guardrail if it is not running and asks it; a retried attempt
carries the same idempotency key, which the guardrail answers from memory without counting it again.

A guardrail started here takes the worker's policy's signature rules and keyring (issue 13): turning its kill
switch off or disengaging it is checked against those keys, and `stanch keys sync` replaces them later.
A guardrail already running keeps its own (update-with-start joins it unchanged).
"""

from __future__ import annotations

from typing import Any, TypeVar

from temporalio import activity
from temporalio.client import Client, WithStartWorkflowOperation, WorkflowUpdateFailedError
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.exceptions import ApplicationError

from activities.heartbeat import heartbeating
from schemas.guardrail import (
    CHECK_UPDATE,
    GUARDRAIL_WORKFLOW,
    GuardrailInput,
    GuardrailLimits,
    GuardrailRequest,
    Verdict,
    guardrail_workflow_id,
)
from schemas.signatures import Keyring, SignatureMode

R = TypeVar("R")


async def update_guardrail(
    client: Client,
    task_queue: str,
    subsystem: str,
    limits: GuardrailLimits,
    update: str,
    arg: Any,
    *,
    result_type: type[R],
    refused: str,
    update_id: str | None = None,
    signatures: SignatureMode = "optional",
    keyring: Keyring | None = None,
) -> R:
    """Send `update` to the subsystem's guardrail in one update-with-start call, starting it with `limits`,
    `signatures` and `keyring` if it is not running. A refused update fails the activity without retrying:
    asking again cannot change that; `refused` names what was refused in that error."""
    workflow_id = guardrail_workflow_id(subsystem)
    start: WithStartWorkflowOperation[Any, Any] = WithStartWorkflowOperation(
        GUARDRAIL_WORKFLOW,
        GuardrailInput(
            subsystem=subsystem, limits=limits, signatures=signatures, keyring=keyring or Keyring()
        ),
        id=workflow_id,
        task_queue=task_queue,
        # The guardrail is the subsystem's single counter: join the running one, never start a second.
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        static_summary=f"Guardrail for {subsystem}",
    )
    try:
        result: R = await client.execute_update_with_start_workflow(
            update, arg, start_workflow_operation=start, id=update_id, result_type=result_type
        )
    except WorkflowUpdateFailedError as error:
        raise ApplicationError(
            f"guardrail {workflow_id} refused {refused}: {error.cause}",
            type="GuardrailRefused",
            non_retryable=True,
        ) from error
    return result


class GuardrailActivities:
    """Built once in the worker with its Temporal client, the task queue the guardrails run on, and the
    policy's `[approvals] signatures` and keyring for the guardrails it starts."""

    def __init__(
        self,
        client: Client,
        task_queue: str,
        signatures: SignatureMode = "optional",
        keyring: Keyring | None = None,
    ) -> None:
        self._client = client
        self._task_queue = task_queue
        self._signatures: SignatureMode = signatures
        self._keyring = keyring or Keyring()

    @activity.defn(name="ask_guardrail")
    @heartbeating
    async def ask(self, request: GuardrailRequest) -> Verdict:
        return await update_guardrail(
            self._client,
            self._task_queue,
            request.subsystem,
            request.limits,
            CHECK_UPDATE,
            request.check,
            result_type=Verdict,
            refused="the ask",
            signatures=self._signatures,
            keyring=self._keyring,
        )
