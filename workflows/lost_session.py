"""Lost session: a gateway session died while its tasks were still running or queued.

Nothing may keep running as if the session were alive: move its unfinished tasks to review, and record which
session was lost and which tasks it held, in the audit log and in the brief, so they can be traced later.
Then decide how those tasks may be retried, from how often this session's work has failed before: a clean
history retries a few times quickly, some failures retry fewer times with a long backoff, and a history of
repeated failures allows no automatic retry at all — a person picks the tasks up from review.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.gateway import GatewayActivities
    from schemas.gateway import RetryMode, RetryPolicyChoice, SessionEffect, SessionRead
    from schemas.incidents import IncidentInput, IncidentResult
    from schemas.targets import SessionTarget
    from workflows.steps.incident import IncidentWorkflow
    from workflows.steps.system_state import UNREADABLE, observe

# past failures → (mode, max attempts, backoff in seconds); the first row whose bound is not exceeded wins.
RETRY_POLICIES: list[tuple[int, RetryMode, int, int]] = [
    (0, "retry", 3, 60),
    (2, "retry_with_backoff", 2, 600),
]
NO_AUTOMATIC_RETRY: tuple[RetryMode, int, int] = ("manual_only", 0, 0)


def retry_policy_for(past_failures: int | None) -> tuple[RetryMode, int, int]:
    """No history to go on is treated like a bad one: a human decides."""
    if past_failures is None:
        return NO_AUTOMATIC_RETRY
    for most, mode, attempts, backoff in RETRY_POLICIES:
        if past_failures <= most:
            return mode, attempts, backoff
    return NO_AUTOMATIC_RETRY


@workflow.defn(name="lost_session")
class LostSession(IncidentWorkflow):
    target_model = SessionTarget  # what it acts on: schemas/targets.py
    uses_roles = ("oncall",)  # the worker checks [roles]

    @workflow.run
    async def run(self, incident: IncidentInput) -> IncidentResult:
        gateway = incident.target["gateway"]
        session_id = incident.target["session"]
        self.open(
            recommendation=f"Move the tasks of lost session {session_id} to review and retry them by their "
            "failure history",
            risk_if_no_action=f"Tasks of session {session_id} stay marked running on gateway {gateway} and "
            "are never finished nor retried",
        )

        # 1. Take the session's unfinished tasks out of the running state.
        moved = await self.act(
            "tasks-to-review",
            GatewayActivities.move_tasks_to_review,
            SessionEffect(
                gateway=gateway,
                session_id=session_id,
                reason=incident.summary,
            ),
            summary=f"Move tasks of session {session_id} to review",
        )
        if moved is None:
            await self.notify(
                "move-failed",
                channel="on-call",
                title=f"Lost session {session_id}: tasks not moved",
                text=f"{incident.summary}. Moving the session's tasks to review failed; do it by hand.",
            )
            return await self.finish("action_failed")

        # 2. Record the lost session and its task ids where people and auditors will look.
        tasks = ", ".join(moved.task_ids) or "none"
        observe(self, f"tasks of session {session_id} in review", f"{len(moved.task_ids)}: {tasks}")
        self.brief.summary = f"{incident.summary} — lost session {session_id}; tasks in review: {tasks}"
        self.note("note", f"lost session {session_id} on {gateway}; tasks moved to review: {tasks}")
        self.publish_brief()
        await self.audit(
            "lost-session",
            action=f"record lost session {session_id}",
            outcome="recorded",
            reason=f"tasks moved to review: {tasks}",
            details={"gateway": gateway, "session_id": session_id, "task_ids": ",".join(moved.task_ids)},
        )

        # 3. Decide how they may be retried, from the session's failure history.
        history = await self.act(
            "failure-history",
            GatewayActivities.failure_history,
            SessionRead(gateway=gateway, session_id=session_id),
            summary=f"Read failure history of session {session_id}",
        )
        past = history.past_failures if history else None
        observe(
            self,
            f"past failures of session {session_id}",
            UNREADABLE if past is None else str(past),
            limit=f"automatic retries up to {RETRY_POLICIES[-1][0]}",
        )
        mode, attempts, backoff = retry_policy_for(past)
        policy = await self.act(
            "retry-policy",
            GatewayActivities.set_retry_policy,
            RetryPolicyChoice(
                gateway=gateway,
                session_id=session_id,
                task_ids=moved.task_ids,
                mode=mode,
                max_attempts=attempts,
                backoff_s=backoff,
                reason=f"{'unknown' if past is None else past} past failure(s)",
            ),
            summary=f"Set retry policy {mode} for tasks of session {session_id}",
        )
        retry_text = f"{mode} (max {attempts} attempt(s), backoff {backoff} s)"
        if policy is not None:
            observe(
                self,
                "retry policy",
                f"{policy.mode}, {policy.max_attempts} attempt(s), backoff {policy.backoff_s} s",
            )
        await self.notify(
            "tell-oncall",
            channel="on-call",
            title=f"Lost session {session_id} on {gateway}",
            text=f"{incident.summary}. Tasks in review: {tasks}. Retry policy: {retry_text}"
            + ("" if policy else " — setting it failed; set it by hand")
            + ".",
        )
        if policy is None:
            return await self.finish("action_failed")
        if mode == "manual_only":
            self.brief.recommendation = f"Pick the tasks of session {session_id} up from review by hand"
        return await self.finish("in_review")
