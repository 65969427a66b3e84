"""The approval gate: one named action, decided by humans, escalated on timers when nobody answers.

The golden rule holds here: a human approves what the runbook recommends and nothing else. Refusals never
change the gate; they are kept in the timeline and the audit log so an auditor sees who tried what.

An incident may hold more than one gate (each registers with it, so `acknowledge` and `escalate` reach
all of them); they climb the incident's one escalation ladder (`IncidentWorkflow.ladder`), so a gate asked
later starts at the level the incident has reached. While a question is open the incident's
`StanchAwaiting` search attribute lists the people who may decide it now.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from schemas.approvals import ApprovalAnswer, ApprovalOutcome, ApprovalRequest, Decision, DecisionOutcome
    from schemas.severity import Severity
    from schemas.signatures import GateShown, ToSign, Verdict
    from workflows.steps.escalation import Ladder, LevelClock
    from workflows.steps.patches import patched
    from workflows.steps.policies import NEVER_SILENT_PATCH
    from workflows.steps.signatures import how_to_sign, signature_details, who

if TYPE_CHECKING:
    from workflows.steps.incident import IncidentWorkflow


class ApprovalGate:
    def __init__(self, incident: IncidentWorkflow) -> None:
        self._incident = incident
        self.request: ApprovalRequest | None = None
        self.outcome: ApprovalOutcome | None = None
        self._approvals: dict[str, ApprovalAnswer] = {}
        self._rejection: ApprovalAnswer | None = None
        self._clock = LevelClock()
        self._asked = 0
        self._refused = 0
        # True once a gate closed on its safe default after `give_up_after` unattended (new runs only): the
        # incident then ends `closed_unattended` rather than `escalated` (see IncidentWorkflow.finish).
        self.gave_up = False
        incident.gates.append(self)

    # ---- rules ------------------------------------------------------------------------------------

    def refusal(self, answer: ApprovalAnswer, *, approved: bool) -> str | None:
        """Why this answer must not count, or None. Pure: used by the `decide` validator too.

        A signed answer, or one naming the digest of an older question, is judged by what it was made
        over first, as `check_decision` judges a signature before the fields it covers: one made over an
        older question is refused as stale (read the brief again), a signed answer sent twice as a replay —
        not by whatever the payload's own fields happen to trip over first. Only the sentence differs
        (either order refuses the same answers), and answers recorded before signatures carry neither, so
        they are judged in the order they always were."""
        request = self.request
        if request is None or self._closed():
            return "no approval is pending"
        stale = self._incident.signing.stale(answer.digest, self.shown(request))
        if answer.signed is not None or stale:
            return self._signature_refusal(answer, request, approved=approved) or self._rule_refusal(
                answer, request, approved=approved
            )
        return self._rule_refusal(answer, request, approved=approved) or self._signature_refusal(
            answer, request, approved=approved
        )

    def _rule_refusal(
        self, answer: ApprovalAnswer, request: ApprovalRequest, *, approved: bool
    ) -> str | None:
        """The golden rule and who may decide."""
        if answer.action and answer.action != request.action:
            return f"{answer.action!r} was not recommended; the pending action is {request.action!r}"
        if not self._may_decide(answer.approver, request):
            roles = ", ".join(request.allowed_roles) or "any approver role"
            return f"{answer.approver} may not decide {request.action!r} (needs {roles})"
        if approved and request.destructive and answer.approver == request.requested_by:
            return f"{answer.approver} requested the destructive action {request.action!r} and may not approve it"
        if approved and answer.approver in self._approvals:
            return f"{answer.approver} already approved; a different approver is needed"
        return None

    def _signature_refusal(
        self, answer: ApprovalAnswer, request: ApprovalRequest, *, approved: bool
    ) -> str | None:
        """The signature the policy needs here, or the one given, checked against this question."""
        incident = self._incident
        verdict: Verdict = "approve" if approved else "reject"
        return incident.signing.refusal(
            answer.signed,
            gate=self.gate_id,
            verdict=verdict,
            approver=answer.approver,
            shown=self.shown(request),
            destructive=approved and self.destroys(request),
            claimed_digest=answer.digest,
            how_to_sign=how_to_sign(verdict, incident.incident.incident_id, request.action),
        )

    # ---- what the question shows, and what signs it ----------------------------------------------------

    @property
    def gate_id(self) -> str:
        """The question's id in a signed statement: a new question is a new id, so an old signature is stale."""
        return f"gate{self._asked}"

    def shown(self, request: ApprovalRequest) -> GateShown:
        """The structured fields a signature binds to: what the brief shows of this question."""
        return GateShown(
            action=request.action,
            recommendation=request.recommendation,
            risk=request.risk,
            target=dict(self._incident.incident.target),
            required_approvers=list(request.allowed_roles),
            required_approvals=request.required_approvals,
        )

    def destroys(self, request: ApprovalRequest) -> bool:
        """Approving it destroys something: the runbook says so, or it needs two people on P0."""
        two_people_on_p0 = self._incident.incident.severity is Severity.P0 and request.required_approvals > 1
        return request.destructive or two_people_on_p0

    def to_sign(self) -> ToSign | None:
        request = self.request
        if request is None or not self.pending():
            return None
        return self._incident.signing.to_sign(
            self.gate_id, ["approve", "reject"], self.shown(request), destructive=self.destroys(request)
        )

    def _may_decide(self, approver: str, request: ApprovalRequest) -> bool:
        roles = self._incident.incident.policy.roles
        if not roles:
            return True
        wanted = request.allowed_roles or list(roles)
        return any(approver in roles.get(role, []) for role in wanted)

    def _closed(self) -> bool:
        return self._rejection is not None or (
            self.request is not None and len(self._approvals) >= self.request.required_approvals
        )

    # ---- answers ----------------------------------------------------------------------------------

    async def answer_by_signal(self, answer: ApprovalAnswer, *, approved: bool) -> None:
        refusal = self.refusal(answer, approved=approved)
        if refusal:
            self._refused += 1
            verb = "approval" if approved else "rejection"
            self._incident.note(
                "refused", f"{verb} from {answer.approver} refused: {refusal}", answer.approver
            )
            await self._incident.audit(
                f"refused-{self._refused}",
                action=f"{verb} of {answer.action or '?'}",
                outcome="refused",
                actor=answer.approver,
                reason=refusal,
            )
            return
        self._record(answer, approved=approved)

    async def answer_by_update(self, decision: Decision) -> DecisionOutcome:
        # The validator ran against the same state in the same activation, so this cannot be refused now.
        assert self.request is not None
        self._record(decision, approved=decision.approved)
        await workflow.wait_condition(lambda: self.outcome is not None or not self._closed())
        pending = self.request.required_approvals - len(self._approvals)
        detail = (
            f"{self.request.action} {'approved' if decision.approved else 'rejected'}"
            if self._closed()
            else f"recorded; {pending} more approver(s) needed"
        )
        return DecisionOutcome(
            accepted=True,
            action=self.request.action,
            approved=decision.approved,
            approver=decision.approver,
            detail=detail,
        )

    def _record(self, answer: ApprovalAnswer, *, approved: bool) -> None:
        assert self.request is not None
        verb = "approved" if approved else "rejected"
        comment = f": {answer.comment}" if answer.comment else ""
        self._incident.signing.accept(answer.signed)
        self._incident.note(
            "decision",
            f"{who(answer.approver, answer.signed)} {verb} {self.request.action}{comment}",
            answer.approver,
        )
        self._incident.ladder.respond(answer.approver)
        if approved:
            self._approvals[answer.approver] = answer
        else:
            self._rejection = answer
        self._incident.publish_awaiting()

    def pending(self) -> bool:
        return self.request is not None and self.outcome is None and not self._closed()

    def deciders(self) -> list[str]:
        """The people who may decide the open question now (for StanchAwaiting); [] when none is open, or
        when the policy has no roles (then anyone may, and nobody in particular is waited for)."""
        request = self.request
        if request is None or not self.pending():
            return []
        roles = self._incident.incident.policy.roles
        wanted = request.allowed_roles or list(roles)
        people = {person for role in wanted for person in roles.get(role, [])}
        people -= set(self._approvals)  # they have approved; the gate waits for someone else
        if request.destructive:
            people.discard(request.requested_by)
        return sorted(people)

    def acknowledge(self, by: str) -> None:
        if self.request is not None and not self._closed():
            self._clock.acknowledge(by)

    def escalate_now(self) -> None:
        if self.request is not None and not self._closed():
            self._clock.escalate_now = True

    # ---- the wait ---------------------------------------------------------------------------------

    async def ask(self, request: ApprovalRequest) -> ApprovalOutcome:
        """Wait for a decision; walk the escalation chain on timers; end on the safe default."""
        self._asked += 1
        gate = f"gate{self._asked}"
        self._clock.restart()
        if request.destructive and self._incident.incident.severity is Severity.P0:
            # Two-person rule: nobody alone destroys anything during the worst incidents.
            request = request.model_copy(update={"required_approvals": max(2, request.required_approvals)})
        self.request, self.outcome = request, None
        self._approvals, self._rejection = {}, None
        incident = self._incident
        policy = incident.incident.policy
        incident.brief.recommendation = request.recommendation
        incident.brief.risk_if_no_action = request.risk
        incident.set_state("awaiting_approval", awaiting=self._awaiting_text(request))
        await incident.audit(
            f"{gate}-requested",
            action=f"ask approval for {request.action}",
            outcome="pending",
            reason=request.recommendation,
            details={"risk": request.risk, "roles": ",".join(request.allowed_roles)},
        )

        asked_at = workflow.now()
        incident.publish_awaiting()
        try:
            if await self._climb(gate, request):
                return await self._close(gate)
        except asyncio.CancelledError:
            await self._withdraw(gate)
            raise

        # Nobody answered anywhere along the chain. Old runs took the safe default and closed here; new
        # ones keep the question open, unattended and paging, until they give up.
        if patched(NEVER_SILENT_PATCH):
            try:
                decided = await self._unattended(gate, request, give_up_at=asked_at + policy.give_up_after)
            except asyncio.CancelledError:
                await self._withdraw(gate)
                raise
            if decided:
                return await self._close(gate)
            self.gave_up = True

        # The safe default, never the destructive action.
        self.outcome = ApprovalOutcome(
            action=request.action,
            approved=False,
            decided_by="stanch",
            comment=request.safe_default,
            decided_at=workflow.now(),
            escalated=bool(policy.escalation),
            timed_out=True,
        )
        incident.note("decision", f"no decision on {request.action}; safe default: {request.safe_default}")
        incident.publish_awaiting()
        await incident.audit(
            f"{gate}-safe-default", action=request.action, outcome="not taken", reason=request.safe_default
        )
        if self.gave_up:
            await self._page_last_level(
                f"{gate}-give-up",
                title=f"Closed unattended: {incident.incident.summary}",
                text=f"Nobody decided on {request.action!r} in {_hours(policy.give_up_after)}; the incident "
                f"closes unattended. Still in its safe state: {request.safe_default}.",
            )
        return self.outcome

    async def _climb(self, gate: str, request: ApprovalRequest) -> bool:
        """Climb the escalation ladder until a decision (True) or past its last level (False).

        New runs climb the incident's ladder, from the level it has reached, moved up as well by the
        response target or another gate; runs recorded before climbed one of their own from zero."""
        incident = self._incident
        policy = incident.incident.policy
        ladder = incident.ladder if incident.shared_ladder else Ladder()
        chain = policy.escalation

        async def ran_out(level: int) -> None:
            step = chain[level]
            incident.set_state(
                "escalated", awaiting=f"{self._awaiting_text(request)}; escalated to {step.name}"
            )
            incident.note("escalation", f"no decision on {request.action}; escalated to {step.name}")
            await incident.page_level(
                f"{gate}-escalate-{level + 1}",
                step,
                title=f"Escalation: {incident.incident.summary}",
                text=f"{self._clock.lapsed_text()}Nobody has decided on {request.action!r}. "
                f"Recommendation: {request.recommendation}. Risk if no action: {request.risk}.",
            )

        def moved(level: int) -> None:
            # The response target (or another gate) moved the incident up and paged; say where it stands.
            if 0 < level <= len(chain):
                incident.set_state(
                    "escalated",
                    awaiting=f"{self._awaiting_text(request)}; escalated to {chain[level - 1].name}",
                )

        # A new question starts where the incident stands, but never unattended at once: past the last
        # level it waits that level's interval first (another question may still be unattended).
        ladder.level = min(ladder.level, len(chain))
        if ladder.level:
            moved(ladder.level)  # asked after the incident had moved up: it is escalated already
        return await ladder.climb(
            self._clock,
            policy,
            self._closed,
            summary=lambda level: f"{self._next_if_silent(level)} if no decision",
            ran_out=ran_out,
            moved=moved,
        )

    async def _withdraw(self, gate: str) -> None:
        """The question is cancelled (its incident was resolved, or cancelled): nobody is waited for any
        more. Only an incident that stands down for `resolve` writes it down; others close as before."""
        incident = self._incident
        assert self.request is not None
        action = self.request.action
        self.request = None
        incident.publish_awaiting()
        if incident.standing_down:
            incident.note("decision", f"question on {action} withdrawn: the incident was resolved")
            await incident.audit(
                f"{gate}-withdrawn",
                action=f"ask approval for {action}",
                outcome="withdrawn",
                actor=incident.resolution.by if incident.resolution else "stanch",
                reason="the incident was resolved",
            )

    async def _unattended(self, gate: str, request: ApprovalRequest, *, give_up_at: datetime) -> bool:
        """The safe default in force, the question still open: re-page the last level every `repeat_every`
        until a decision (True) or `give_up_at` (False)."""
        incident = self._incident
        policy = incident.incident.policy
        incident.set_state(
            "unattended",
            awaiting=f"{self._awaiting_text(request)}; nobody answered the escalation ladder; "
            f"in force meanwhile: {request.safe_default}",
        )
        incident.note(
            "escalation", f"no decision on {request.action} anywhere on the ladder; unattended, still paging"
        )
        repeat = 0
        while True:
            if self._clock.lapsed_ack:
                repeat += 1
                await self._page_repeat(gate, request, repeat)
                self._clock.restart()
            left = give_up_at - workflow.now()
            if left <= timedelta(0):
                return self._closed()
            wait = min(policy.repeat_every, left)
            summary = "page again" if wait < left else "close unattended"
            if await self._clock.wait(
                self._closed, wait, f"{summary} if no decision", hold=policy.acknowledge_holds
            ):
                return True
            if self._clock.lapsed_ack or workflow.now() >= give_up_at:
                continue
            repeat += 1
            await self._page_repeat(gate, request, repeat)
            self._clock.restart()

    async def _page_repeat(self, gate: str, request: ApprovalRequest, repeat: int) -> None:
        incident = self._incident
        await self._page_last_level(
            f"{gate}-repeat-{repeat}",
            title=f"Still unattended: {incident.incident.summary}",
            text=f"{self._clock.lapsed_text()}Nobody has decided on {request.action!r}; in force meanwhile: "
            f"{request.safe_default}. Recommendation: {request.recommendation}. Risk if no action: "
            f"{request.risk}.",
        )

    async def _page_last_level(self, step: str, *, title: str, text: str) -> None:
        chain = self._incident.incident.policy.escalation
        level = chain[-1] if chain else None
        self._incident.note("escalation", title)
        await self._incident.page_level(
            step,
            level,
            title=title,
            text=text,
        )

    async def _close(self, gate: str) -> ApprovalOutcome:
        assert self.request is not None
        approved = self._rejection is None
        deciders = [self._rejection] if self._rejection else list(self._approvals.values())
        self.outcome = ApprovalOutcome(
            action=self.request.action,
            approved=approved,
            decided_by=", ".join(answer.approver for answer in deciders),
            comment="; ".join(answer.comment for answer in deciders if answer.comment),
            decided_at=workflow.now(),
            escalated=self._incident.state in ("escalated", "unattended"),
        )
        self._incident.publish_awaiting()
        await self._incident.audit(
            f"{gate}-decision",
            action=self.request.action,
            outcome="approved" if approved else "rejected",
            actor=self.outcome.decided_by,
            reason=self.outcome.comment,
            details=signature_details(answer.signed for answer in deciders) or None,
        )
        return self.outcome

    def _next_if_silent(self, step: int) -> str:
        chain = self._incident.incident.policy.escalation
        return f"escalate to {chain[step].name}" if step < len(chain) else "take the safe default"

    @staticmethod
    def _awaiting_text(request: ApprovalRequest) -> str:
        roles = " or ".join(request.allowed_roles) or "an approver"
        count = f"{request.required_approvals} approvers" if request.required_approvals > 1 else roles
        return f"approval of {request.action!r} by {count}"


def _hours(span: timedelta) -> str:
    hours = span.total_seconds() / 3600
    return f"{hours:g} hours" if hours != 1 else "1 hour"
