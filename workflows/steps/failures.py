"""Failures are loud: a runbook that stops on a failure pages on-call with what failed and what it left.

An incident that ends `action_failed` (or any failed state) without a page ends quietly: the audit log has
a `failed` row, but nobody reads the audit log at 3 a.m. Every such path calls `page_failure` first, so the
person on call learns three things in one message: what Stanch tried, why it did not happen (the
platform's own answer), and the state the system was left in — the part they must act on by hand.

    if rolled is None and patched("rollback-code-rollback-failure-pages"):
        await page_failure(self, "rollback-deploy-failed", what=f"rolling {service} back (approved by alice)",
                           state_left=f"{service} still runs 7.1.0; roll it back by hand")

Each call sits behind its own `workflow.patched` id in the runbook (histories recorded before it replay
without the page). The page is an ordinary `notify`: audited once under its step, idempotent on retry, and
routed by the incident's severity like every on-call message.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from workflows.steps.incident import IncidentWorkflow


def failure_text(incident: IncidentWorkflow, *, what: str, state_left: str, cause: str | None = None) -> str:
    """The page's body: the incident, what failed and why, and the state a person now has to deal with."""
    why = cause if cause is not None else incident.last_failure
    reason = f" ({why})" if why else ""
    return f"{incident.incident.summary}. Failed: {what}{reason}. State left: {state_left}"


async def page_failure(
    incident: IncidentWorkflow, step: str, *, what: str, state_left: str, cause: str | None = None
) -> bool:
    """Page on-call that `what` failed and the system stays in `state_left`; True once a channel took it.

    `cause` defaults to the platform's answer to the last failed effect; pass it when the failure was not an
    effect (a read that came back empty, a child that failed).
    """
    return await incident.notify(
        step,
        channel="on-call",
        title=f"Failed: {what}",
        text=failure_text(incident, what=what, state_left=state_left, cause=cause),
    )
