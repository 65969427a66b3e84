"""Approve, then act: the one step where a human's yes becomes an effect, carried out in their name.

    rolled = await approve_then_act(
        self,
        ApprovalRequest(action="rollback-deploy", recommendation=..., risk=..., allowed_roles=APPROVERS, ...),
        "rollback-deploy",
        DeployActivities.rollback_service,
        lambda decision: self.service_request(service, reason=decision.comment),
        summary=f"Roll back {service} from {live.version}",
        if_failed=FailurePage(
            "rollback-code-rollback-failure-pages",
            "rollback-deploy-failed",
            what=f"rolling {service} back from {live.version}",
            state_left=f"{service} still runs {live.version}; roll it back by hand",
        ),
    )
    if not rolled.approved:
        return await self.declined(rolled.decision)
    return await self.finish("rolled_back" if rolled.done else "action_failed")

The runbook says what is asked, what is done once approved, and what on-call is told if it fails; how the
question ends when nobody says yes (escalated, declined, a runbook's own word) stays with the runbook. The
commands are exactly those of the hand-written form it replaced: the gate's, then the effect's (`act`,
audited, under the approver's name), then — only when the effect failed — the runbook's own
`workflow.patched` marker and the page, so histories recorded before keep replaying.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from pydantic import BaseModel
from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from schemas.approvals import ApprovalOutcome, ApprovalRequest
    from workflows.steps.failures import page_failure
    from workflows.steps.patches import patched

if TYPE_CHECKING:
    from workflows.steps.incident import IncidentWorkflow

Result = TypeVar("Result", bound=BaseModel)


@dataclass(frozen=True)
class FailurePage:
    """The page on-call gets when the approved effect fails (`page_failure`, under `step`).

    `patch` is the runbook's own `workflow.patched` id for the page: runs recorded before it existed ended
    without one. `what` names the effect; the page adds who approved it.
    """

    patch: str
    step: str
    what: str
    state_left: str


@dataclass(frozen=True)
class ApprovedAction(Generic[Result]):
    """How the question closed and, once approved, what the effect answered (None: it failed)."""

    decision: ApprovalOutcome
    result: Result | None = None

    @property
    def approved(self) -> bool:
        return self.decision.approved

    @property
    def timed_out(self) -> bool:
        """Nobody decided: the gate closed on its safe default."""
        return self.decision.timed_out

    @property
    def done(self) -> bool:
        """Approved and carried out."""
        return self.result is not None

    @property
    def failed(self) -> bool:
        """Approved, but the effect failed (and was paged, when the step was given a page)."""
        return self.decision.approved and self.result is None


async def approve_then_act(
    incident: IncidentWorkflow,
    question: ApprovalRequest,
    step: str,
    effect: Callable[[Any, Any], Awaitable[Result]],
    request: BaseModel | Callable[[ApprovalOutcome], BaseModel],
    *,
    summary: str,
    if_failed: FailurePage | None = None,
    ask: Callable[[ApprovalRequest], Awaitable[ApprovalOutcome]] | None = None,
) -> ApprovedAction[Result]:
    """Ask `question` at the incident's gate; once approved, carry out `step` as the approver (`act`);
    if it fails, page `if_failed`. `request` may be built from the decision (its comment, say).
    `ask` replaces the gate's own ask for a runbook that does something around every question."""
    decision = await (ask or incident.gate.ask)(question)
    if not decision.approved:
        return ApprovedAction(decision)
    result = await incident.act(
        step,
        effect,
        request(decision) if callable(request) else request,
        summary=summary,
        actor=decision.decided_by,
    )
    if result is None and if_failed is not None and patched(if_failed.patch):
        await page_failure(
            incident,
            if_failed.step,
            what=f"{if_failed.what} (approved by {decision.decided_by})",
            state_left=if_failed.state_left,
        )
    return ApprovedAction(decision, result)
