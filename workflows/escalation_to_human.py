"""Escalation to a human: a decision the fleet must not take alone goes to a person, with everything needed.

Why a human: a quality score under 70 %, a decision outside the agent's remit, cost or risk over the
agreed ceiling, doubt that does not go away, or someone simply asking. Started by an alert (scenario
`escalate-to-human`) or, more often, as a child of another runbook (`workflows/steps/handoff.py`).

1. Write the handoff document — context, what was tried, the options, the recommendation, the urgency —
   and store it on the platform's handoff desk.
2. Notify by the handoff's priority: P0 the instant channel now, P1 cockpit and instant, P2/P3 cockpit.
3. Wait for the decision through the approval gate, which asks for one action: the recommended option
   (or the first one when there is no recommendation).
   - Approved: that option is chosen.
   - Rejected with a comment naming another option (its name as a word, e.g. "pause-agent: too risky"):
     that option is chosen by the person who rejected. A destructive alternative is not taken on one
     person's rejection: it goes through the gate once more, where its proposer may not approve it.
   - Rejected naming no other option: nothing is carried out (`declined`).
   - Nobody answers along the escalation chain: nothing is carried out (`escalated`), the safe default.
4. Carry out the chosen option on the platform and log it (audit row with who chose and why).
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.documents import DocumentActivities
    from schemas.approvals import ApprovalOutcome, ApprovalRequest
    from schemas.documents import HandoffDocument, HandoffExecution
    from schemas.handoff import (
        QUALITY_THRESHOLD,
        Handoff,
        HandoffInput,
        HandoffOption,
        HandoffResult,
        handoff_from_alert,
    )
    from schemas.targets import HandoffTarget
    from workflows.steps.failures import page_failure
    from workflows.steps.incident import IncidentWorkflow
    from workflows.steps.patches import patched
    from workflows.steps.roles import owner_or
    from workflows.steps.system_state import observe


@workflow.defn(name="escalation_to_human")
class EscalationToHuman(IncidentWorkflow):
    target_model = HandoffTarget  # what it acts on: schemas/targets.py
    uses_roles = ("owner", "oncall")  # the worker checks [roles]

    @workflow.init
    def __init__(self, incident: HandoffInput) -> None:
        handoff = incident.handoff or handoff_from_alert(incident)
        # The handoff's urgency is the incident's priority: it picks the channels and the search attribute.
        super().__init__(incident.model_copy(update={"severity": handoff.priority, "handoff": handoff}))
        self.handoff: Handoff = handoff

    @workflow.run
    async def run(self, incident: HandoffInput) -> HandoffResult:
        handoff = self.handoff
        proposed = handoff.proposed
        self.open(
            recommendation=f"{proposed.name}: {proposed.description}",
            risk_if_no_action=f"{handoff.subject} stays as it is; the decision ({handoff.trigger.value}) "
            "is left undone",
        )
        if handoff.quality_score is not None:
            score = f"{handoff.quality_score:.0%}"
            observe(self, "quality score", score, limit=f"a human decides below {QUALITY_THRESHOLD:.0%}")

        # 1. The handoff document, where the human reads it.
        handoff_id = workflow.info().workflow_id
        stored = await self.act(
            "handoff-document",
            DocumentActivities.store_handoff,
            HandoffDocument(
                handoff_id=handoff_id,
                incident_id=self.incident.incident_id,
                priority=handoff.priority.value,
                subject=handoff.subject,
                markdown=handoff.as_markdown(),
                handoff=handoff,
            ),
            summary=f"Write handoff for {handoff.subject}",
        )
        if stored is not None:
            observe(self, "handoff", f"{stored.handoff_id} {stored.status}")
        if stored is None:
            await self.notify(
                "handoff-failed",
                channel="owner",
                title=f"Handoff for {handoff.subject} could not be stored",
                text=f"{handoff.context} The handoff desk refused it; decide from the incident {handoff_id}.",
            )
            return await self._done("action_failed")

        # 2. Tell the human, on the channels the priority calls for.
        options = ", ".join(option.name for option in handoff.options)
        await self.notify(
            "notify-human",
            channel="owner",
            title=f"{handoff.priority.value} decision needed: {handoff.subject}",
            text=f"{handoff.context} Options: {options}. Recommended: {proposed.name}. "
            f"Approve it, or reject naming another option. Handoff {handoff_id}.",
        )

        # 3. The decision.
        decision = await self.gate.ask(self._request(proposed, requested_by=handoff.requested_by))
        chosen, decided_by, timed_out = await self._chosen(decision, proposed)
        if chosen is None:
            return await self._done("escalated" if timed_out else "declined")

        # 4. Carry it out, under the name of whoever chose it.
        carried = await self.act(
            "carry-out",
            DocumentActivities.execute_handoff,
            HandoffExecution(
                handoff_id=handoff_id,
                option=chosen.name,
                decided_by=decided_by,
                comment=decision.comment,
            ),
            summary=f"Carry out {chosen.name} for {handoff.subject}",
            actor=decided_by,
        )
        if carried is not None:
            observe(self, "handoff", f"{carried.handoff_id} {carried.status}: {carried.executed_option}")
        if carried is None:
            if patched("escalation_to_human-carry-out-failure-pages"):
                await page_failure(
                    self,
                    "carry-out-failed",
                    what=f"carrying out {chosen.name} for {handoff.subject} (chosen by {decided_by})",
                    state_left=f"{chosen.name} was not carried out; {handoff.subject} stays as it is. Carry "
                    f"it out by hand (handoff {handoff_id})",
                )
            return await self._done("action_failed", chosen.name, decided_by)
        return await self._done("decided", chosen.name, decided_by, carried_out=True)

    def _request(self, option: HandoffOption, *, requested_by: str) -> ApprovalRequest:
        return ApprovalRequest(
            action=option.name,
            recommendation=f"{option.name}: {option.description}",
            risk=f"{self.handoff.subject} stays as it is until someone decides",
            requested_by=requested_by,
            # Seed 004: the CEO decides what the fleet escalates (any role did before the owner existed).
            allowed_roles=owner_or(self.incident.policy, []),
            destructive=option.destructive,
            safe_default=f"carry out nothing; {self.handoff.subject} stays as it is",
        )

    async def _chosen(
        self, decision: ApprovalOutcome, proposed: HandoffOption
    ) -> tuple[HandoffOption | None, str, bool]:
        """The option to carry out (None: nothing), who chose it, and whether nobody answered."""
        if decision.approved or decision.timed_out:
            return (proposed if decision.approved else None), decision.decided_by, decision.timed_out
        alternative = self.handoff.alternative_in(decision.comment)
        if alternative is None:
            return None, decision.decided_by, False
        self.note("decision", f"{decision.decided_by} chose {alternative.name} instead", decision.decided_by)
        if not alternative.destructive:
            return alternative, decision.decided_by, False
        # One person's rejection must not be enough to destroy something: ask for the alternative itself.
        second = await self.gate.ask(self._request(alternative, requested_by=decision.decided_by))
        return (alternative if second.approved else None), second.decided_by, second.timed_out

    async def _done(
        self, state: str, option: str | None = None, decided_by: str | None = None, carried_out: bool = False
    ) -> HandoffResult:
        result = await self.finish(state)
        return HandoffResult(
            **result.model_dump(), chosen_option=option, decided_by=decided_by, carried_out=carried_out
        )
