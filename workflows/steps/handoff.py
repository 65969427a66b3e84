"""Handing a decision to a human from inside any runbook: start `escalation_to_human` as a child and wait.

    result = await hand_off(self, Handoff(trigger=Trigger.persistent_doubt, subject=agent_id, context=...,
                                          tried=[...], options=[...], recommendation="...",
                                          priority=Severity.P1))
    if result.carried_out and result.chosen_option == "...": ...

The child's id is `<parent id>-handoff-<n>` (n counts this parent's handoffs from 1), so it shows up next
to its parent in `temporal workflow list` and `stanch list`, and a person can answer it by that id with
the usual `approve` / `reject` / `decide`. It inherits the parent's policy (approvers, escalation chain).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from schemas.handoff import Handoff, HandoffInput, HandoffResult

if TYPE_CHECKING:
    from workflows.steps.incident import IncidentWorkflow

HANDOFF_WORKFLOW = "escalation_to_human"
# Kept on the parent object, so the count survives for the whole run (and replays identically).
_COUNTER = "_stanch_handoffs"


def handoff_id(parent_workflow_id: str, n: int) -> str:
    return f"{parent_workflow_id}-handoff-{n}"


async def hand_off(parent: IncidentWorkflow, handoff: Handoff) -> HandoffResult:
    """Start the handoff child, show the parent as waiting on it, and return the human's decision."""
    n = getattr(parent, _COUNTER, 0) + 1
    setattr(parent, _COUNTER, n)
    child_id = handoff_id(workflow.info().workflow_id, n)
    child_input = HandoffInput.model_validate(
        {
            **parent.incident.model_dump(),
            "incident_id": child_id,
            "runbook": HANDOFF_WORKFLOW,
            "severity": handoff.priority,
            "summary": f"Decision needed on {handoff.subject}: {handoff.context}",
            "handoff": handoff,
        }
    )
    previous_state = parent.state
    parent.note("escalation", f"decision handed to a human in {child_id} ({handoff.trigger.value})")
    parent.set_state("awaiting_human", awaiting=f"a human's decision in {child_id}")
    result: HandoffResult = await workflow.execute_child_workflow(
        HANDOFF_WORKFLOW,
        child_input,
        id=child_id,
        result_type=HandoffResult,
        static_summary=f"Handoff {n}: {handoff.subject}",
    )
    chosen = result.chosen_option or "nothing"
    parent.note("decision", f"{child_id} ended {result.final_state}: {chosen} by {result.decided_by or '-'}")
    parent.set_state(previous_state)
    return result
