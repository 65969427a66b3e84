"""Hotfix cycle: the smallest code change that brings a service back, built and checked in a bounded loop.

It runs on its own, without asking anyone (the war room already decided a hotfix is the way), and writes
every decision into its timeline, which is the hotfix's decision log. Each round builds a fix (a failed
build is tried again a few times), puts it through the QA gate and, on a releasable verdict, ships it on
the expedited path. It stops trying and hands the problem to a person when:

- the QA loop used up its rounds (5 by default) → the engineering lead;
- the QA gate answers BLOCKED → the engineering lead;
- the fix still does not build after its retries, or will not ship → the architect;
- someone sends `escalate` → the engineering lead.

`stop` parks the loop where it is — everything it did so far stays in the workflow's durable state — and
`resume` carries on from that very step (a build already made is tested, not rebuilt).
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.deploys import DeployActivities
    from schemas.approvals import EscalationRequest
    from schemas.deploys import HotfixBuild, HotfixBuildRequest, QaRunRequest, ShipRequest, Verdict
    from schemas.hotfix import (
        EscalationTrigger,
        HotfixInput,
        HotfixResult,
        ResumeRequest,
        SavedLoop,
        StopRequest,
    )
    from schemas.incidents import IncidentResult
    from workflows.steps.incident import IncidentWorkflow
    from workflows.steps.system_state import observe, observe_alert_figures, observe_qa

# Who takes over, by what made the loop give up.
LEAD = "engineering-lead"
ARCHITECT = "architect"
ESCALATE_TO = {
    EscalationTrigger.max_iterations_reached: LEAD,
    EscalationTrigger.verdict_blocked: LEAD,
    EscalationTrigger.manual_escalate: LEAD,
    EscalationTrigger.fix_failure: ARCHITECT,
}


@workflow.defn(name="hotfix_cycle")
class HotfixCycle(IncidentWorkflow):
    uses_roles = ("oncall", "engineering-lead", "architect")  # the worker checks [roles]
    response_target_applies = False  # a machine loop under its war room, whose own target covers it

    @workflow.init
    def __init__(self, request: HotfixInput) -> None:
        super().__init__(request)
        self.iteration = 0
        self.phase = "build"
        self.build: HotfixBuild | None = None
        self.last_verdict: Verdict | None = None
        self.stopped_by: str | None = None
        self.resumed_by: str | None = None
        self.stops = 0
        self.manual_escalation: EscalationRequest | None = None

    @workflow.run
    async def run(self, request: HotfixInput) -> HotfixResult:
        service = request.target.get("service") or request.service
        issue = request.issue or request.alert.name
        self.open(
            recommendation=f"Build, check and ship the smallest fix that restores {service}",
            risk_if_no_action=f"{service} stays broken until someone fixes it by hand",
        )
        self.decide(f"decision log of hotfix-{issue}: fix only the immediate problem, nothing else")
        observe_alert_figures(self, request.alert)
        self.set_state("fixing")

        for iteration in range(1, request.max_iterations + 1):
            self.iteration, self.phase, self.build = iteration, "build", None
            if await self.checkpoint():
                return await self.escalate(EscalationTrigger.manual_escalate, service)

            # 1. Build a fix; a build that fails is retried, a fix that never builds goes to the architect.
            build = await self.build_fix(service, issue, iteration, request.fix_attempts)
            if build is None:
                return await self.escalate(EscalationTrigger.fix_failure, service)
            self.build, self.phase = build, "qa"
            if await self.checkpoint():
                return await self.escalate(EscalationTrigger.manual_escalate, service)

            # 2. The QA gate: does it fix the problem, without regressions, core functions intact?
            qa = await self.act(
                f"qa-{iteration}",
                DeployActivities.qa_run,
                QaRunRequest(service=service, subject=build.id),
                summary=f"QA gate on {build.id} (round {iteration})",
            )
            observe_qa(self, qa, build.id)
            # A QA gate that cannot run at all is as good as blocked: nobody can vouch for the fix.
            self.last_verdict = qa.verdict if qa else Verdict.blocked
            self.decide(f"round {iteration}: QA says {self.last_verdict.value} for {build.id}")
            if self.last_verdict is Verdict.blocked:
                return await self.escalate(EscalationTrigger.verdict_blocked, service)
            if not self.last_verdict.releasable:
                continue

            # 3. Ship it on the expedited path: no full review cycle, merged at once.
            shipped = await self.act(
                "ship",
                DeployActivities.ship_hotfix,
                ShipRequest(build_id=build.id),
                summary=f"Expedited deploy of {build.id} ({build.version})",
            )
            if shipped is None:
                return await self.escalate(EscalationTrigger.fix_failure, service)
            observe(self, f"deploy of {service}", f"{shipped.version} {shipped.status} since {shipped.at}")
            self.decide(f"shipped {build.version} to {service}")
            return await self.close("fixed", deployed_version=shipped.version)

        return await self.escalate(EscalationTrigger.max_iterations_reached, service)

    # ---- the steps ----------------------------------------------------------------------------------

    def decide(self, text: str) -> None:
        self.note("decision", text)

    async def build_fix(self, service: str, issue: str, iteration: int, attempts: int) -> HotfixBuild | None:
        for attempt in range(1, attempts + 1):
            step = f"build-{iteration}-{attempt}"
            build = await self.act(
                step,
                DeployActivities.build_hotfix,
                HotfixBuildRequest(
                    service=service,
                    issue=issue,
                    iteration=iteration,
                    attempt=attempt,
                ),
                summary=f"Build hotfix for {service} (round {iteration}, try {attempt})",
            )
            observe(
                self,
                "hotfix build",
                f"{build.id} {build.status} (round {iteration}, try {attempt})"
                if build
                else f"try {attempt} of round {iteration} did not run",
            )
            if build is not None and build.status == "succeeded":
                self.decide(f"round {iteration}: built {build.id} ({build.version}) on try {attempt}")
                return build
            self.decide(f"round {iteration}: build try {attempt} failed")
        return None

    async def checkpoint(self) -> bool:
        """Between steps: wait here while stopped. True when someone asked to escalate."""
        if self.stopped_by is not None and self.manual_escalation is None:
            stop = self.stops
            saved = self.saved_loop()
            self.set_state(
                "stopped", awaiting=f"`resume` (loop saved before {self.phase} of round {self.iteration})"
            )
            await self.audit(
                f"stop-{stop}",
                action="stop hotfix loop",
                outcome="saved",
                actor=self.stopped_by,
                details={key: str(value) for key, value in saved.model_dump().items() if value is not None},
            )
            await workflow.wait_condition(
                lambda: self.stopped_by is None or self.manual_escalation is not None
            )
            if self.manual_escalation is None:
                await self.audit(
                    f"resume-{stop}",
                    action="resume hotfix loop",
                    outcome=f"{self.phase} of round {self.iteration}",
                    actor=self.resumed_by or "unknown",
                )
                self.set_state("fixing")
        return self.manual_escalation is not None

    async def escalate(self, trigger: EscalationTrigger, service: str) -> HotfixResult:
        target = ESCALATE_TO[trigger]
        why = {
            EscalationTrigger.max_iterations_reached: f"no releasable fix after {self.iteration} QA rounds",
            EscalationTrigger.verdict_blocked: f"the QA gate blocked {self.build.id if self.build else 'the fix'}",
            EscalationTrigger.fix_failure: "the fix does not build or ship after its retries",
            EscalationTrigger.manual_escalate: "escalation asked by "
            + (self.manual_escalation.by if self.manual_escalation else "someone"),
        }[trigger]
        self.decide(f"escalating to {target}: {why} ({trigger.value})")
        await self.notify(
            f"escalate-{trigger.value}",
            channel=target,
            title=f"Hotfix for {service} needs you: {trigger.value}",
            text=f"{self.incident.summary}. {why}. The decision log is in this workflow's timeline.",
        )
        return await self.close("escalated", trigger=trigger, escalated_to=target)

    async def close(
        self,
        state: str,
        *,
        deployed_version: str | None = None,
        trigger: EscalationTrigger | None = None,
        escalated_to: str | None = None,
    ) -> HotfixResult:
        result = await self.finish(state)
        return HotfixResult(
            **result.model_dump(),
            outcome=state,
            iterations=self.iteration,
            build_id=self.build.id if self.build else None,
            deployed_version=deployed_version,
            escalation_trigger=trigger,
            escalated_to=escalated_to,
            decision_log=list(self.timeline.entries),
        )

    def resolved_result(self, result: IncidentResult) -> HotfixResult:
        # A `resolve` sent to the cycle itself stood it down: its room reads that as no fix.
        return HotfixResult(
            **result.model_dump(),
            outcome="resolved",
            iterations=self.iteration,
            build_id=self.build.id if self.build else None,
            decision_log=list(self.timeline.entries),
        )

    def saved_loop(self) -> SavedLoop:
        return SavedLoop(
            iteration=self.iteration,
            phase=self.phase,
            build_id=self.build.id if self.build else None,
            last_verdict=self.last_verdict,
            stopped=self.stopped_by is not None,
            stopped_by=self.stopped_by,
        )

    # ---- what people send ---------------------------------------------------------------------------

    @workflow.signal(name="stop")
    def on_stop(self, request: StopRequest) -> None:
        if self.stopped_by is None:
            self.stopped_by, self.stops = request.by, self.stops + 1
            self.note("decision", f"loop stop asked by {request.by}: {request.reason}", request.by)

    @workflow.signal(name="resume")
    def on_resume(self, request: ResumeRequest) -> None:
        if self.stopped_by is not None:
            self.stopped_by, self.resumed_by = None, request.by
            self.note("decision", f"loop resumed by {request.by} {request.note}".rstrip(), request.by)

    @workflow.signal(name="escalate")
    def on_escalate(self, request: EscalationRequest) -> None:
        super().on_escalate(request)
        if self.manual_escalation is None:
            self.manual_escalation = request

    @workflow.query(name="saved_loop")
    def get_saved_loop(self) -> SavedLoop:
        return self.saved_loop()
