"""Triage: an alert Stanch could not act on by itself goes to a human, at once, and stays in view.

The intake opens one (id `incident-triage-<key>`) for an alert a route matched but could not act on (a
target label missing, too long, or not valid for the runbook's target model), an alert no route matched,
and an item whose fields could not be read. It acts on nothing; it makes sure a person knows.

1. Open the brief: what the alert says, the route it matched and what is missing; what a human should do.
2. Page on-call at once, by the incident's severity, with the same facts; audit the triage.
3. Wait for a human: `run_runbook` hands the incident to a runbook with the target it lacked, `resolve`
   closes it, `acknowledge` holds the escalation clock for a while. Nobody answers: escalate along the
   policy's ladder on timers, like the approval gate (the same incident-wide ladder, which a missed
   response target moves up too); after the last level stay open as `unattended`, paging the last level
   again every `repeat_every` until a human takes it.
4. End `handed_over` (the runbook now runs as its own incident, which outlives this one) or `resolved`.
"""

from __future__ import annotations

import asyncio

from temporalio import workflow
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from pydantic import ValidationError

    from schemas.approvals import Acknowledgement, EscalationRequest
    from schemas.incidents import IncidentInput, IncidentResult
    from schemas.signatures import ToSign
    from schemas.targets import required_fields, runbook_names, target_model_for
    from schemas.triage import TRIAGE_WORKFLOW, RunbookStarted, RunRunbook, TriageInput
    from stanch.signing import handover_shown
    from workers.intake.routing import id_part
    from workflows.steps.escalation import Ladder, LevelClock
    from workflows.steps.incident import IncidentWorkflow
    from workflows.steps.patches import patched
    from workflows.steps.policies import NEVER_SILENT_PATCH
    from workflows.steps.signatures import how_to_sign

# The service becomes the StanchService search attribute of the runbook's incident (see the intake).
MAX_SERVICE_CHARS = 200


@workflow.defn(name=TRIAGE_WORKFLOW)
class Triage(IncidentWorkflow):
    uses_roles = ("oncall",)  # the worker checks [roles]
    owns_resolve = True  # `resolve` is one of the two ways its wait for a human ends

    @workflow.init
    def __init__(self, incident: TriageInput) -> None:
        super().__init__(incident)
        self.triage = incident
        self.handed_over: RunbookStarted | None = None
        self._handing_over = False
        self._hand_over_lock = asyncio.Lock()
        self._clock = LevelClock()

    @workflow.run
    async def run(self, incident: TriageInput) -> IncidentResult:
        # 1. The brief says what happened and what a human should do about it.
        self.brief.summary = self.what_happened()
        self.open(recommendation=self.recommendation(), risk_if_no_action=self.risk())

        # 2. Page on-call now, whatever the hour: nothing else will act on this alert.
        await self.notify(
            "page",
            channel="on-call",
            title=f"Needs a human: {incident.alert.name}",
            text=f"{self.what_happened()} Recommendation: {self.recommendation()}",
        )
        await self.audit(
            "triaged",
            action=f"triage alert {incident.alert.name}",
            outcome="needs a human",
            actor=incident.alert.source,
            reason=self.missing() or "no route matched",
            details={
                "route": incident.route or "",
                "suggested_runbook": incident.suggested_runbook or "",
                "fingerprint": incident.alert.fingerprint,
            },
        )
        self.set_state("awaiting_triage", awaiting=self.awaiting())

        # 3. Wait for a human, escalating along the ladder; never give up and never close by itself.
        await self.wait_for_a_human()

        # 4. Closed by a human: handed to a runbook, or resolved.
        return await self.finish("handed_over" if self.handed_over else "resolved")

    # ---- what the brief and the pages say ------------------------------------------------------------

    def missing(self) -> str:
        return "; ".join(f"{p.field}: {p.problem}" for p in self.triage.problems)

    def what_happened(self) -> str:
        incident = self.triage
        says = f"{incident.alert.name} ({incident.alert.status.value}): {incident.summary}."
        if incident.route:
            matched = f" Route {incident.route!r} (runbook {incident.suggested_runbook}) matched it"
            matched += f" but cannot act: {self.missing()}." if incident.problems else "."
        else:
            matched = " No route matched it."
            if incident.problems:
                matched += f" Problems: {self.missing()}."
        return says + matched

    def recommendation(self) -> str:
        incident = self.triage
        suggested = incident.suggested_runbook
        model = target_model_for(suggested) if suggested else None
        if suggested and model is not None:
            command = " ".join(
                [f"stanch triage {incident.incident_id} --runbook {suggested}"]
                + [f"--target {field}=..." for field in required_fields(model)]
            )
            fields = ", ".join(p.field for p in incident.problems) or "target labels"
            return f"Fix the alert rule's {fields}, or hand it to {suggested} with `{command}`"
        return (
            f"Add a route for {incident.alert.name} to the policy, hand this incident to a runbook with "
            f"`stanch triage {incident.incident_id} --runbook <runbook> --target <field>=<value>`, "
            "or resolve it if it needs no action"
        )

    def risk(self) -> str:
        return (
            f"Nothing acts on {self.triage.alert.name}: what it reports goes on until a human takes it; "
            "later alerts like it join this incident and still start no runbook"
        )

    @staticmethod
    def awaiting() -> str:
        return "a human to hand it to a runbook (run_runbook / stanch triage) or resolve it"

    # ---- the wait ----------------------------------------------------------------------------------

    def _closed(self) -> bool:
        # A resolve that arrives during a hand-over loses to it: the runbook has been started.
        return self.handed_over is not None or (self.resolution is not None and not self._handing_over)

    async def wait_for_a_human(self) -> None:
        policy = self.incident.policy
        ladder = policy.escalation
        # New runs climb the incident's one ladder, which its response target moves up too; runs recorded
        # before climbed one of their own.
        levels = self.ladder if self.shared_ladder else Ladder()

        def summary(step: int) -> str:
            next_step = f"escalate to {ladder[step].name}" if step < len(ladder) else "mark unattended"
            return f"{next_step} if nobody takes it"

        async def ran_out(step: int) -> None:
            level = ladder[step]
            self.set_state("escalated", awaiting=f"{self.awaiting()}; escalated to {level.name}")
            self.note("escalation", f"nobody took the triage; escalated to {level.name}")
            await self.page_level(
                f"escalate-{step + 1}",
                level,
                title=f"Escalation: needs a human: {self.triage.alert.name}",
                text=f"{self._clock.lapsed_text()}Nobody has taken this alert. {self.what_happened()} "
                f"Recommendation: {self.recommendation()}",
            )

        def moved(step: int) -> None:
            if 0 < step <= len(ladder):
                self.set_state(
                    "escalated", awaiting=f"{self.awaiting()}; escalated to {ladder[step - 1].name}"
                )

        if await levels.climb(
            self._clock, policy, self._closed, summary=summary, ran_out=ran_out, moved=moved
        ):
            return

        # The whole ladder is silent. Stay open and visible, and say so once more, loudly.
        self.set_state("unattended", awaiting=f"{self.awaiting()}; nobody answered the escalation ladder")
        await self.notify(
            "unattended",
            channel="on-call",
            title=f"Unattended: {self.triage.alert.name}",
            text=f"{self._clock.lapsed_text()}Nobody along the escalation ladder has taken this alert; it stays open. "
            f"{self.what_happened()} Recommendation: {self.recommendation()}",
        )
        if not patched(NEVER_SILENT_PATCH):
            # Runs recorded before: one page, then silence until a human closes it.
            await workflow.wait_condition(self._closed)
            return
        # Never silent: the last level again every `repeat_every` until a human takes it. A triage acts
        # on nothing, so there is no safe default to close on: it stays open (no give-up).
        last = ladder[-1] if ladder else None
        repeat = 0
        while not await self._clock.wait(
            self._closed,
            policy.repeat_every,
            "page again if nobody takes it",
            hold=policy.acknowledge_holds,
        ):
            repeat += 1
            await self.page_level(
                f"unattended-repeat-{repeat}",
                last,
                title=f"Still unattended: {self.triage.alert.name}",
                text=f"{self._clock.lapsed_text()}Nobody has taken this alert; it stays open. "
                f"{self.what_happened()} Recommendation: {self.recommendation()}",
            )
            self._clock.restart()

    # ---- what humans send --------------------------------------------------------------------------

    @workflow.signal(name="acknowledge")
    def on_acknowledge(self, ack: Acknowledgement) -> None:
        super().on_acknowledge(ack)
        self._clock.acknowledge(ack.by)

    @workflow.signal(name="escalate")
    def on_escalate(self, request: EscalationRequest) -> None:
        super().on_escalate(request)
        self._clock.escalate_now = True

    @workflow.update(name="run_runbook")
    async def run_runbook(self, request: RunRunbook) -> RunbookStarted:
        async with self._hand_over_lock:
            # Two updates accepted in one activation both passed the validator; only the first hands over.
            if self.handed_over is not None:
                raise ApplicationError(f"already handed over to {self.handed_over.workflow_id}")
            self._handing_over = True
            self.signing.accept(request.signed)
            try:
                return await self._hand_over(request)
            finally:
                self._handing_over = False

    @run_runbook.validator
    def validate_run_runbook(self, request: RunRunbook) -> None:
        if self.handed_over is not None:
            raise ValueError(f"already handed over to {self.handed_over.workflow_id}")
        if self._handing_over:
            raise ValueError("a hand-over is already under way")
        if self.resolution is not None:
            raise ValueError(f"already resolved by {self.resolution.by}")
        problem = target_problem(request)
        if problem:
            raise ValueError(problem)
        refusal = self.signing.refusal(
            request.signed,
            gate="triage",
            verdict="run_runbook",
            approver=request.by,
            shown=handover_shown(self.recommendation(), request.runbook, request.target),
            destructive=False,
            how_to_sign=how_to_sign("triage", self.triage.incident_id, "run_runbook"),
        )
        if refusal:
            raise ValueError(refusal)

    def to_sign(self) -> list[ToSign]:
        """Besides resolve, the hand-over: the client signs it with the runbook and target it sends
        (`handover_shown(shown.recommendation, runbook, target)`)."""
        decisions = super().to_sign()
        if self.handed_over is None and self.resolution is None:
            shown = handover_shown(self.recommendation(), self.triage.suggested_runbook or "", {})
            decisions.append(self.signing.to_sign("triage", ["run_runbook"], shown, destructive=False))
        return decisions

    async def _hand_over(self, request: RunRunbook) -> RunbookStarted:
        model = target_model_for(request.runbook)
        assert model is not None  # the validator refused any other runbook
        # The validated values, as the strings every runbook reads from `incident.target`.
        target: dict[str, str] = model.model_validate(request.target).model_dump(exclude_none=True)
        incident_id = self.triage.runbook_incident_ids.get(request.runbook) or (
            f"incident-{request.runbook}-{id_part(self.triage.alert.fingerprint)}"
        )
        alert = self.triage.alert
        service = alert.labels.get("service") or next(iter(target.values()), self.triage.service)
        child = IncidentInput(
            incident_id=incident_id,
            runbook=request.runbook,
            severity=self.triage.severity,
            service=service[:MAX_SERVICE_CHARS],
            summary=self.triage.summary,
            alert=alert,
            target=target,
            policy=self.triage.policy,
        )
        try:
            # ABANDON: the runbook is an incident of its own and must outlive this triage incident.
            handle = await workflow.start_child_workflow(
                request.runbook,
                child,
                id=incident_id,
                parent_close_policy=ParentClosePolicy.ABANDON,
                # Only names Stanch made: alert text is not markup-safe in the UI's static summary.
                static_summary=f"{request.runbook}, handed over from {workflow.info().workflow_id}",
            )
            # A child gets no start signal; the runbook counts and notes its alerts from `alert` signals.
            await handle.signal("alert", alert)
            outcome = "started"
        except WorkflowAlreadyStartedError:
            # The incident is open already (the alert rule was fixed, or someone started it): join it.
            await workflow.get_external_workflow_handle(incident_id).signal("alert", alert)
            outcome = "joined"
        detail = ", ".join(f"{field}={value}" for field, value in target.items())
        self.note(
            "decision", f"{request.by} handed it to {request.runbook} as {incident_id} ({detail})", request.by
        )
        await self.audit(
            "handed-over",
            action=f"hand over to {request.runbook}",
            outcome=outcome,
            actor=request.by,
            details={"workflow_id": incident_id, **{f"target.{k}": v for k, v in target.items()}},
        )
        self.handed_over = RunbookStarted(workflow_id=incident_id, runbook=request.runbook)
        # Where this cause's alerts go from now on, readable from outside (describe) after it closed: a
        # later alert with the same triage key belongs to the runbook's incident, not to a new triage.
        workflow.upsert_memo({"handed_over_to": incident_id, "handed_over_runbook": request.runbook})
        self.brief.recommendation = f"Follow the incident {incident_id} ({request.runbook})"
        return self.handed_over


def target_problem(request: RunRunbook) -> str | None:
    """Why a hand-over cannot work, naming the field; None when the runbook can run on this target."""
    # The catalogue's runbooks and the installed packs', registered before the worker started.
    known = runbook_names()
    if request.runbook not in known:
        return f"runbook: unknown runbook {request.runbook!r}; known: {', '.join(known)}"
    model = target_model_for(request.runbook)
    assert model is not None
    try:
        model.model_validate(request.target)
    except ValidationError as error:
        return "; ".join(
            f"target.{'.'.join(str(part) for part in e['loc'])}: {e['msg']}" for e in error.errors()
        )
    return None
