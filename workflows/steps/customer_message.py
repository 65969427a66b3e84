"""Customer messages reviewed before they go out, when the policy says `customer_messages = "review"`.

A runbook tells its customer with `self.notify(step, channel="customer", ...)`. Under review that call
returns at once and the draft waits at a gate of its own, beside the runbook, so containment and the
runbook's main approval never wait for it:

1. Ask for `send-customer-message`, with the draft in the recommendation (audited `<step>-review-requested`).
2. Approved: send the draft, or the text the approver gave in the answer's `text` instead; the decision row
   (`<step>-review-decision`) says who approved and whether the text was replaced, the message itself is
   the usual notification row `<step>`. Rejected: nothing is sent, audited the same way.
3. Unanswered: nothing is sent and the escalation ladder is paged level by level, as the main gate does;
   after the last level the review closes unsent (`<step>-review-unanswered`) with a page saying so
   (`<step>-review-unsent`). Nothing unsafe is in force while a message is unsent, so unlike the main
   gate there are no repeat pages and no `unattended` state.

Answers are routed by their `action`: `send-customer-message` comes here (to the oldest pending review when
several wait), anything else to the runbook's main gate. `finish()` waits for every review to close before
the incident closes, and `cancel_pending` stands them down (a `resolve`): nothing is sent, audited
`<step>-review-cancelled`. Runs recorded before reviews existed, and inputs whose policy says "send", send
at once as before (`CUSTOMER_REVIEW_PATCH`).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from schemas.approvals import ApprovalAnswer, ApprovalOutcome, ApprovalRequest, Decision, DecisionOutcome
    from schemas.signatures import ToSign
    from workflows.steps.approval import ApprovalGate
    from workflows.steps.escalation import level_waits
    from workflows.steps.failures import page_failure
    from workflows.steps.patches import patched
    from workflows.steps.signatures import signature_details

if TYPE_CHECKING:
    from workflows.steps.incident import IncidentWorkflow

SEND_CUSTOMER_MESSAGE = "send-customer-message"

# A customer message under review no longer goes out from inside the runbook's own `notify` call. The
# marker is set where old and new runs part: the first customer message of an incident whose policy says
# "review" (inputs recorded before the key decode as "send" and never reach it).
CUSTOMER_REVIEW_PATCH = "customer-messages-reviewed-beside-the-runbook"


class CustomerMessageReview(ApprovalGate):
    """The gate of one draft. It keeps the approval gate's rules (who may decide, nothing but the
    recommended action) and its way of recording answers; the wait is its own, since it must not touch the
    incident's state or brief and ends differently when nobody answers."""

    def __init__(
        self, incident: IncidentWorkflow, step: str, *, title: str, draft: str, recipient: str | None
    ) -> None:
        super().__init__(incident)
        self.step, self.title, self.draft, self.recipient = step, title, draft, recipient
        self.escalated_to: str | None = None
        self.task: asyncio.Task[None] | None = None
        self._cancelled_by: tuple[str, str] | None = None
        self.request = ApprovalRequest(
            action=SEND_CUSTOMER_MESSAGE,
            recommendation=f'Send to {self.audience} — "{title}": {draft}',
            risk=f"{self.audience} hears nothing from us about this incident until a message is approved",
            safe_default=f"send nothing to {self.audience}",
        )

    @property
    def audience(self) -> str:
        return self.recipient or "the customer"

    @property
    def unsettled(self) -> bool:
        """Not yet closed (sent, refused, unanswered or cancelled); see `pending()` for "may be answered"."""
        return self.outcome is None

    @property
    def answerable(self) -> bool:
        """Pending and not yet answered (an answer may be recorded but not acted on yet)."""
        return self.outcome is None and not self._closed()

    def line(self) -> str:
        """The brief's line for this review while it waits."""
        where = f"; escalated to {self.escalated_to}" if self.escalated_to else ""
        return f'{self.title!r} to {self.audience}: approve or reject {SEND_CUSTOMER_MESSAGE}{where}. Draft: "{self.draft}"'

    @property
    def gate_id(self) -> str:
        return f"review-{self.step}"

    def refusal(self, answer: ApprovalAnswer, *, approved: bool) -> str | None:
        if self.outcome is not None:
            return "no customer message awaits review"
        refusal = super().refusal(answer, approved=approved)
        if refusal is None and approved and answer.text is not None and not answer.text.strip():
            return "the replacement text is empty; leave `text` out to send the draft"
        return refusal

    def accept(self, answer: ApprovalAnswer, *, approved: bool) -> None:
        """Record an answer `refusal` let through (a signal's; the update records its own)."""
        self._record(answer, approved=approved)

    def cancel(self, *, by: str, reason: str) -> None:
        if self.task is not None and self.unsettled and self._cancelled_by is None:
            self._cancelled_by = (by, reason)
            self.task.cancel()

    # ---- the wait ---------------------------------------------------------------------------------

    async def run(self, desk: CustomerMessages) -> None:
        incident = self._incident
        policy = incident.incident.policy
        assert self.request is not None
        incident.note(
            "decision", f"customer message {self.title!r} to {self.audience} held for review: {self.draft}"
        )
        await incident.audit(
            f"{self.step}-review-requested",
            action=f"ask approval for {SEND_CUSTOMER_MESSAGE}",
            outcome="pending",
            reason=self.request.recommendation,
            details={"recipient": self.audience, "title": self.title},
        )
        try:
            for level_index, wait in enumerate(level_waits(policy)):
                chain = policy.escalation
                next_step = (
                    f"escalate to {chain[level_index].name}" if level_index < len(chain) else "close unsent"
                )
                if await self._clock.wait(
                    self._closed, wait, f"{next_step} if nobody reviews the customer message"
                ):
                    await self._decided(desk)
                    return
                if level_index < len(chain):
                    level = chain[level_index]
                    self.escalated_to = level.name
                    desk.publish()
                    incident.note(
                        "escalation",
                        f"nobody reviewed the customer message {self.title!r}; escalated to {level.name}",
                    )
                    await incident.page_level(
                        f"{self.step}-review-escalate-{level_index + 1}",
                        level,
                        title=f"Review the customer message: {incident.incident.summary}",
                        text=f'Nobody has reviewed the message to {self.audience} ("{self.title}"): '
                        f'"{self.draft}". Nothing is sent until someone approves {SEND_CUSTOMER_MESSAGE} '
                        "(an approval may give a replacement text) or rejects it.",
                    )
                    self._clock.restart()
            await self._unanswered()
        except asyncio.CancelledError:
            await self._stood_down()
        finally:
            desk.publish()

    async def _decided(self, desk: CustomerMessages) -> None:
        incident = self._incident
        approved = self._rejection is None
        answer = self._rejection or next(iter(self._approvals.values()))
        replaced = approved and answer.text is not None and answer.text != self.draft
        text = answer.text if replaced and answer.text is not None else self.draft
        self.outcome = ApprovalOutcome(
            action=SEND_CUSTOMER_MESSAGE,
            approved=approved,
            decided_by=answer.approver,
            comment=answer.comment,
            decided_at=workflow.now(),
            escalated=self.escalated_to is not None,
        )
        details = {"recipient": self.audience, "title": self.title} | signature_details([answer.signed])
        if approved:
            details |= {"text": "replaced" if replaced else "as drafted", "sent_text": text}
        await incident.audit(
            f"{self.step}-review-decision",
            action=SEND_CUSTOMER_MESSAGE,
            outcome="approved" if approved else "rejected",
            actor=answer.approver,
            reason=answer.comment,
            details=details,
        )
        if not approved:
            incident.note(
                "decision", f"customer message {self.title!r} rejected by {answer.approver}: not sent"
            )
            return
        desk.release(self.step)
        sent = await incident.notify(
            self.step, channel="customer", recipient=self.recipient, title=self.title, text=text
        )
        if not sent:
            await page_failure(
                incident,
                f"{self.step}-review-send-failed",
                what=f"sending the customer message {self.title!r} that {answer.approver} approved",
                state_left=f"{self.audience} has not been told; send it by hand",
            )

    async def _unanswered(self) -> None:
        incident = self._incident
        policy = incident.incident.policy
        self.outcome = ApprovalOutcome(
            action=SEND_CUSTOMER_MESSAGE,
            approved=False,
            decided_by="stanch",
            comment=f"nobody reviewed it; {self.request.safe_default if self.request else 'not sent'}",
            decided_at=workflow.now(),
            escalated=bool(policy.escalation),
            timed_out=True,
        )
        await incident.audit(
            f"{self.step}-review-unanswered",
            action=SEND_CUSTOMER_MESSAGE,
            outcome="not sent",
            reason="nobody reviewed it along the escalation ladder",
            details={"recipient": self.audience, "title": self.title},
        )
        # The last level hears how it ended; nothing else waits on the message, so this is the last page.
        await self._page_last_level(
            f"{self.step}-review-unsent",
            title=f"Customer message not sent: {incident.incident.summary}",
            text=f'Nobody reviewed the message to {self.audience} ("{self.title}"): "{self.draft}". It was '
            "not sent and the review is closed; tell the customer yourself if they still need to hear it.",
        )

    async def _stood_down(self) -> None:
        by, reason = self._cancelled_by or ("stanch", "the incident stood down")
        self.outcome = ApprovalOutcome(
            action=SEND_CUSTOMER_MESSAGE,
            approved=False,
            decided_by=by,
            comment=reason,
            decided_at=workflow.now(),
            escalated=self.escalated_to is not None,
        )
        self._incident.note(
            "decision", f"review of the customer message {self.title!r} cancelled: {reason}", by
        )
        await self._incident.audit(
            f"{self.step}-review-cancelled",
            action=SEND_CUSTOMER_MESSAGE,
            outcome="not sent",
            actor=by,
            reason=reason,
            details={"recipient": self.audience, "title": self.title},
        )


class CustomerMessages:
    """Every customer message of one incident: held for review or sent at once, and the answers to them."""

    def __init__(self, incident: IncidentWorkflow) -> None:
        self._incident = incident
        self._reviews: list[CustomerMessageReview] = []
        # Steps whose review approved them: their `notify` call is the send itself, not a new review.
        self._released: set[str] = set()
        self._refused = 0

    # ---- the hook in IncidentWorkflow.notify ------------------------------------------------------

    def held_for_review(self, step: str, *, title: str, text: str, recipient: str | None) -> bool:
        """True when this customer message now waits for its review (started here) instead of going out."""
        if step in self._released:
            return False
        if self._incident.incident.policy.customer_messages != "review":
            return False
        if not patched(CUSTOMER_REVIEW_PATCH):
            return False
        review = CustomerMessageReview(self._incident, step, title=title, draft=text, recipient=recipient)
        self._reviews.append(review)
        # A workflow task, not a thread: deterministic, and the runbook goes on at once.
        review.task = asyncio.create_task(review.run(self))
        self.publish()
        return True

    def release(self, step: str) -> None:
        self._released.add(step)

    # ---- answers (routed here by IncidentWorkflow when their action is send-customer-message) ---------

    @staticmethod
    def takes(answer: ApprovalAnswer) -> bool:
        return answer.action == SEND_CUSTOMER_MESSAGE

    def _next(self) -> CustomerMessageReview | None:
        return next((review for review in self._reviews if review.answerable), None)

    def to_sign(self) -> ToSign | None:
        """The review an answer would reach now, for the brief's list of decisions to sign."""
        review = self._next()
        return review.to_sign() if review is not None else None

    def refusal(self, answer: ApprovalAnswer, *, approved: bool) -> str | None:
        """Why this answer must not count, or None. Pure: the `decide` validator uses it too."""
        review = self._next()
        return review.refusal(answer, approved=approved) if review else "no customer message awaits review"

    async def answer_by_signal(self, answer: ApprovalAnswer, *, approved: bool) -> None:
        review = self._next()
        refusal = self.refusal(answer, approved=approved)
        if refusal or review is None:
            self._refused += 1
            verb = "approval" if approved else "rejection"
            self._incident.note(
                "refused",
                f"{verb} of {SEND_CUSTOMER_MESSAGE} from {answer.approver} refused: {refusal}",
                answer.approver,
            )
            await self._incident.audit(
                f"customer-review-refused-{self._refused}",
                action=f"{verb} of {SEND_CUSTOMER_MESSAGE}",
                outcome="refused",
                actor=answer.approver,
                reason=refusal or "no customer message awaits review",
            )
            return
        review.accept(answer, approved=approved)

    async def answer_by_update(self, decision: Decision) -> DecisionOutcome:
        # The validator ran against the same state in the same activation: there is a pending review.
        review = self._next()
        assert review is not None
        return await review.answer_by_update(decision)

    # ---- the end of the incident ------------------------------------------------------------------

    def cancel_pending(self, *, by: str, reason: str) -> None:
        """Stand every pending review down: nothing more is sent, each audited `<step>-review-cancelled`.
        Then `await settled()` (finish() does) for the rows to be queued."""
        for review in self._reviews:
            review.cancel(by=by, reason=reason)

    async def settled(self) -> None:
        """Wait until every review has closed: answered, unanswered to the end of the ladder, or cancelled."""
        if not self._reviews:
            return
        waiting = [review for review in self._reviews if review.unsettled]
        if waiting:
            self._incident.set_state(
                "awaiting_approval",
                awaiting=f"review of {len(waiting)} customer message(s) before the incident closes",
            )
        # Not `gather`: a `resolve` that cancels the waiting runbook must not cancel the reviews with it;
        # they stand down through `cancel_pending`, which audits each one.
        await workflow.wait_condition(
            lambda: all(review.task is None or review.task.done() for review in self._reviews)
        )

    def publish(self) -> None:
        self._incident.brief.pending_reviews = [review.line() for review in self._reviews if review.unsettled]
        self._incident.publish_brief()
