"""Post-mortem: what a resolved incident teaches (seed 003 step 7, seed 001's post-mortem and its deadlines).

Opened as `postmortem-<incident id>` when an incident closes `resolved` at P0 or P1, and for every war
room (workflows/steps/postmortem.py); it carries the incident's brief and timeline.

1. Ask the people who handled it for the learning — root cause, impact, prevention, alert changes,
   automation — by signal or update `learning` (`stanch learning <incident> ...`). A learning that cannot
   be taken is refused, naming the field; the first good one is kept.
2. No learning within 24 hours: remind on-call.
3. Write the post-incident report from the incident's timeline and the learning — without a learning by
   48 hours, from what the runbook itself could tell — and store it with the platform's post-mortems.
4. File the preventive stories in the backlog (the learning's, else the runbook's draft), by 48 hours.
5. No learning at all: page the first escalation level that the report went out without one. Never silent.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.documents import DocumentActivities
    from schemas.briefs import PostmortemLink
    from schemas.documents import StoryRequest
    from schemas.learning import (
        LEARNING,
        POSTMORTEM_WORKFLOW,
        Learning,
        LearningAnswer,
        PostmortemInput,
        PostmortemReport,
        PostmortemResult,
    )
    from workflows.steps.failures import page_failure
    from workflows.steps.incident import IncidentWorkflow


@workflow.defn(name=POSTMORTEM_WORKFLOW)
class PostmortemWorkflow(IncidentWorkflow):
    uses_roles = ("oncall",)  # the worker checks [roles]
    # The incident it follows was responded to; the learning has its own 24 h / 48 h clock.
    response_target_applies = False

    @workflow.init
    def __init__(self, incident: PostmortemInput) -> None:
        super().__init__(incident)
        self.postmortem = incident
        # One record from detection to learning: the incident's own timeline first, then this one's.
        self.timeline.entries[:0] = incident.incident_timeline
        self.brief.started_at = incident.resolved_at
        self.learning: Learning | None = None
        self.refused = 0
        # Set once the report is being written: a learning after that cannot change it any more.
        self.writing = False
        self.answer: LearningAnswer | None = None

    @workflow.run
    async def run(self, incident: PostmortemInput) -> PostmortemResult:
        of, service = incident.of_incident, incident.service
        # 1. Ask for the learning.
        self.brief.summary = f"Post-incident learning for {of}: {incident.summary}"
        self.open(
            recommendation=f"Send the learning: `stanch learning {of} --by <you> --root-cause ... "
            "--impact ... --prevention ...` (or signal/update `learning`)",
            risk_if_no_action="the same failure comes back: nobody wrote down why it happened or what "
            "stops it, and only the runbook's guesses go into the backlog",
        )
        await self.audit(
            "opened",
            action=f"open the post-mortem of {of}",
            outcome="awaiting learning",
            actor=of,
            details={
                "incident_runbook": incident.incident_runbook,
                "resolved_by": incident.resolved_by or "",
            },
        )
        due_hours = int(incident.learning_due.total_seconds() // 3600)
        self.set_state("awaiting_learning", awaiting=f"`learning` within {due_hours} h")
        await self.notify(
            "ask",
            channel="on-call",
            title=f"Post-incident learning wanted: {service}",
            text=f"{of} was resolved by {incident.resolved_by or 'unknown'}. Within {due_hours} hours, send "
            f"what it taught: `stanch learning {of} --by <you> --root-cause ... --impact ... --prevention ...`.",
        )

        # 2. Remind at 24 h.
        if not await self.wait_for_learning(incident.learning_due, "remind if no learning"):
            self.set_state("learning_overdue", awaiting="`learning`; the report goes out without it at 48 h")
            await self.notify(
                "reminder",
                channel="on-call",
                title=f"Post-incident learning for {service} is overdue",
                text=f"Nobody has sent the learning of {of} in {due_hours} hours. Send it now; at 48 hours "
                "the report is stored and the preventive stories filed with what the runbook saw.",
            )
            await self.wait_for_learning(
                incident.stories_due - incident.learning_due, "report and stories due without a learning"
            )

        # 3. The report, from the timeline and the learning (or what the runbook could tell).
        self.writing = True
        learning = self.learning
        self.set_state("writing_report")
        report = compose_report(incident, learning, written_at=workflow.now())
        stored = await self.act(
            "report",
            DocumentActivities.postmortem_store_report,
            report.request(),
            summary=f"Store the post-incident report of {of}",
        )
        if stored is None:
            await page_failure(
                self,
                "report-failed",
                what=f"storing the post-incident report of {of}",
                state_left="the report is not stored; its learning and timeline are in this workflow's "
                "`timeline` query. Preventive stories are still filed",
            )
        else:
            self.brief.postmortem = PostmortemLink(workflow_id=workflow.info().workflow_id, report=stored.id)

        # 4. The preventive stories, in the incident's backlog.
        filed = []
        for number, title in enumerate(report.stories, start=1):
            story = await self.act(
                f"story-{number}",
                DocumentActivities.file_story,
                StoryRequest(incident_id=of, title=title),
                summary=f"File preventive story {number}: {title}",
            )
            if story is not None:
                filed.append(title)
        if len(filed) < len(report.stories):
            await page_failure(
                self,
                "stories-failed",
                what=f"filing {len(report.stories) - len(filed)} of the preventive stories of {of}",
                state_left=f"filed: {len(filed)} of {len(report.stories)}; file the others by hand",
            )

        # 5. Nobody sent a learning: say so to the escalation ladder, the report names what it has.
        if learning is None:
            level = incident.policy.escalation[0] if incident.policy.escalation else None
            await self.page_level(
                "no-learning",
                level,
                title=f"No post-incident learning for {service}",
                text=f"Nobody sent the learning of {of} within 48 hours. The report "
                f"{stored.id if stored else '(not stored)'} went out with the runbook's own account and "
                f"{len(filed)} preventive stories from it; root cause still unknown.",
            )
        self.answer = LearningAnswer(
            workflow_id=workflow.info().workflow_id,
            by=learning.by if learning else "",
            report_id=stored.id if stored else None,
            stories=filed,
        )
        result = await self.finish("learned" if learning else "closed_without_learning")
        return PostmortemResult(
            **result.model_dump(),
            of_incident=of,
            learned_by=learning.by if learning else None,
            report=self.brief.postmortem,
            stories=filed,
        )

    async def wait_for_learning(self, wait: timedelta, summary: str) -> bool:
        try:
            await workflow.wait_condition(
                lambda: self.learning is not None,
                timeout=wait,
                timeout_summary=summary,
            )
        except TimeoutError:
            return False
        return True

    # ---- what people send --------------------------------------------------------------------------

    def refusal(self, learning: Learning) -> str | None:
        if self.learning is not None:
            return f"learning: already given by {self.learning.by}"
        if self.writing:
            return "learning: too late, the report has been written without one"
        problems = learning.problems()
        return "; ".join(problems) if problems else None

    def take(self, learning: Learning, via: str) -> None:
        self.learning = learning
        self.note("decision", f"learning from {learning.by} ({via}): {learning.root_cause}", learning.by)

    @workflow.signal(name=LEARNING)
    async def on_learning_signal(self, learning: Learning) -> None:
        refusal = self.refusal(learning)
        if refusal is None:
            self.take(learning, "signal")
            return
        # A signal cannot answer: the refusal goes to the timeline and the audit log for the sender to see.
        self.refused += 1
        who = learning.by or "someone"
        self.note("refused", f"learning from {who} refused: {refusal}", who)
        await self.audit(
            f"learning-refused-{self.refused}",
            action="learning",
            outcome="refused",
            actor=who,
            reason=refusal,
        )

    @workflow.update(name=LEARNING)
    async def on_learning_update(self, learning: Learning) -> LearningAnswer:
        # Two updates accepted in one activation both passed the validator: only the first is taken.
        refusal = self.refusal(learning)
        if refusal is not None:
            raise ApplicationError(refusal)
        self.take(learning, "update")
        # Answered once the report is stored and the stories filed, so the sender learns where they are.
        await workflow.wait_condition(lambda: self.answer is not None)
        assert self.answer is not None
        return self.answer

    @on_learning_update.validator
    def validate_learning(self, learning: Learning) -> None:
        refusal = self.refusal(learning)
        if refusal is not None:
            raise ValueError(refusal)


def compose_report(
    incident: PostmortemInput, learning: Learning | None, *, written_at: datetime
) -> PostmortemReport:
    """The report: the incident's brief and timeline, the learning if one came, the runbook's draft for the
    rest. Pure, so what a report says is unit-tested without a server."""
    stories = learning.stories() if learning else incident.draft.prevention
    brief = incident.incident_brief
    return PostmortemReport(
        incident_id=incident.of_incident,
        runbook=incident.incident_runbook,
        severity=incident.severity.value,
        service=incident.service,
        summary=incident.summary,
        opened_at=brief.started_at,
        resolved_at=incident.resolved_at,
        resolved_by=incident.resolved_by,
        resolution_note=incident.resolution_note,
        automatic_actions=brief.automatic_actions,
        timeline=incident.incident_timeline,
        learning=learning,
        draft=incident.draft,
        stories=stories,
        written_at=written_at,
    )
