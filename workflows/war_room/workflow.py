"""War room: a production crisis (outage, data loss, a critical function down, cascading failures).

The severity sets the pace: P0 is answered within minutes, P1 within an hour, P2 within four hours (an
expedited room without the status cadence), and P3 waits for the next sprint as a backlog story. For P0 to P2:

1. Assemble the people who act — devops (infrastructure, deploys), dev (code), QA (verification), and the
   architect too on a P0 — and, for P0/P1, post a status update every 15 (P0) or 30 (P1) minutes until the
   incident is resolved.
2. Triage at the same time: recent deploys, infrastructure status, external services. What it finds goes
   into the brief.
3. Contain with the fastest mitigation, each one behind a human approval, in this order: roll back to the
   last stable deploy; else switch the feature flag off; else run the hotfix cycle as a child workflow.
   A rejected option moves to the next one.
4. Verify with the QA gate. A pass resolves the incident; so does a human's `resolve` at any time.
5. Draft the post-mortem (timeline, root cause, impact, response, prevention) from this workflow's own
   timeline and hand it to the post-mortem workflow `postmortem-<incident id>` (workflows/postmortem.py),
   which asks for the learning, reminds at 24 hours, stores the report and files the preventive stories
   by 48 hours; the brief links it. Rooms opened before it (LEARNING_PATCH) store the post-mortem
   themselves and wait for `report_filed` (kept for them).
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.exceptions import ChildWorkflowError, is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    from activities.deploys import DeployActivities
    from activities.documents import DocumentActivities
    from activities.flags import FlagActivities
    from schemas.approvals import ApprovalOutcome, ApprovalRequest, Resolution
    from schemas.briefs import PostmortemLink
    from schemas.deploys import QaRunRequest, RecentDeploys, ServiceRequest
    from schemas.documents import StoryRequest
    from schemas.flags import FlagChange
    from schemas.hotfix import HotfixInput, HotfixResult, ReportFiled
    from schemas.incidents import IncidentInput, IncidentResult
    from schemas.severity import Severity
    from schemas.targets import WarRoomTarget
    from workflows.steps.approve_then_act import FailurePage, approve_then_act
    from workflows.steps.failures import page_failure
    from workflows.steps.incident import IncidentWorkflow
    from workflows.steps.patches import patched
    from workflows.steps.postmortem import open_postmortem
    from workflows.steps.system_state import observe_alert_figures, observe_qa, observe_triage
    from workflows.war_room.assembly import (
        MAX_STATUS_UPDATES,
        RESPONSE_TARGET,
        ROLES,
        roles_for,
        status_cadence,
    )
    from workflows.war_room.containment import FEATURE_FLAG, ROLLBACK, containment_options
    from workflows.war_room.postmortem import build_postmortem, draft_of
    from workflows.war_room.triage import triage_findings

# New rooms hand the learning to the post-mortem workflow; rooms recorded before store the post-mortem
# here and wait for `report_filed`. The marker is set once the room is resolved and the draft written.
LEARNING_PATCH = "war_room-learning-in-postmortem-workflow"
# Every room that was assembled gets a post-mortem (seed 001), not only P0/P1 as other runbooks.
ROOM_SEVERITIES = frozenset({Severity.P0, Severity.P1, Severity.P2})
REPORT_DUE = timedelta(hours=24)
STORIES_DUE = timedelta(hours=48)
APPROVERS = ["oncall", "lead"]


@workflow.defn(name="war_room")
class WarRoom(IncidentWorkflow):
    target_model = WarRoomTarget  # what it acts on: schemas/targets.py
    # The worker checks [roles]: every role it may assemble (architect only for a P0), approve or notify.
    uses_roles = ("oncall", "lead", "devops", "dev", "qa", "architect", "stakeholders")
    owns_resolve = True  # contained → wait for `resolve` → post-mortem: its own resolve procedure

    @workflow.init
    def __init__(self, incident: IncidentInput) -> None:
        # A `priority` label on the alert overrides the route's severity: monitoring knows best how bad it is.
        label = incident.target.get("priority", "").upper()
        if label in Severity.__members__:
            incident = incident.model_copy(update={"severity": Severity(label)})
        super().__init__(incident)
        self.report: ReportFiled | None = None
        self.interruptible = False
        self.closing = False
        self.contained_by: str | None = None
        self.findings: list[str] = []

    @workflow.run
    async def run(self, incident: IncidentInput) -> IncidentResult:
        incident = self.incident  # with the severity the label asked for
        service = incident.target.get("service") or incident.service
        self.open_room(service)
        if incident.severity is Severity.P3:
            return await self.queue_for_next_sprint(service)

        # 1. Assemble, and keep everyone posted while the room is open.
        updates = await self.assemble(service)
        # 2. Triage: recent deploys, infrastructure, external services; what it finds goes into the brief.
        deploys = await self.triage(service)
        # 3 and 4. Contain and verify, until QA passes or a person resolves the incident.
        await self.contain_and_verify(service, deploys)
        resolved_at = await self.stand_the_room_down(service, updates)
        # 5. The post-mortem, from what this workflow saw and did.
        return await self.write_postmortem(service, deploys, resolved_at)

    # ---- the procedure, step by step --------------------------------------------------------------

    def open_room(self, service: str) -> None:
        incident = self.incident
        target = RESPONSE_TARGET[incident.severity]
        self.brief.summary = f"{incident.summary} (respond {target})"
        self.open(
            recommendation=f"Assemble the war room for {service}, triage, then contain",
            risk_if_no_action=f"{service} stays down or degraded for its users",
        )
        self.note("note", f"{incident.severity.value}: response target {target}")
        observe_alert_figures(self, incident.alert)

    async def queue_for_next_sprint(self, service: str) -> IncidentResult:
        """P3: minor, limited impact: the normal development cycle takes it, no room is assembled."""
        incident = self.incident
        story = await self.act(
            "sprint-story",
            DocumentActivities.file_story,
            StoryRequest(
                incident_id=incident.incident_id,
                title=f"[{service}] {incident.summary}",
            ),
            summary=f"File a next-sprint story for {service}",
        )
        if story is None and patched("war_room-sprint-story-failure-pages"):
            # Telling dev it is queued would be false: nothing is in the backlog, so nobody will pick it up.
            await page_failure(
                self,
                "sprint-story-failed",
                what=f"filing the next-sprint story for the P3 on {service}",
                state_left="nothing is in the backlog and dev was not told; file the story by hand",
            )
            return await self.finish("action_failed")
        await self.notify(
            "tell-dev",
            channel="dev",
            title=f"P3 on {service} queued for the next sprint",
            text=f"{incident.summary}. Filed as a backlog story; no war room.",
        )
        return await self.finish("queued_for_sprint")

    async def assemble(self, service: str) -> asyncio.Task[None] | None:
        """Call in the people who act; for P0/P1 start the status cadence (returned, to be awaited)."""
        incident = self.incident
        severity, target = incident.severity, RESPONSE_TARGET[incident.severity]
        for role in roles_for(severity):
            await self.notify(
                f"assemble-{role}",
                channel=role,
                title=f"War room {severity.value}: {service}",
                text=f"{incident.summary}. You are needed for {ROLES[role]}; respond {target}.",
            )
        self.set_state("assembled")
        every = status_cadence(severity)
        return asyncio.create_task(self.status_updates(every, service)) if every is not None else None

    async def triage(self, service: str) -> RecentDeploys | None:
        """The three looks are independent, so they run together; the deploys decide the containment."""
        self.set_state("triage")
        deploys, infra, external = await asyncio.gather(
            self.act(
                "triage-deploys",
                DeployActivities.recent_deploys,
                ServiceRequest(service=service),
                summary=f"Recent deploys of {service}",
            ),
            self.act(
                "triage-infra",
                DeployActivities.infra_status,
                ServiceRequest(service=service),
                summary=f"Infrastructure status of {service}",
            ),
            self.act(
                "triage-external",
                DeployActivities.external_status,
                ServiceRequest(service=service),
                summary=f"External services of {service}",
            ),
        )
        observe_triage(self, service, deploys, infra, external)
        self.findings = triage_findings(service, deploys, infra, external)
        target = RESPONSE_TARGET[self.incident.severity]
        self.brief.summary = f"{self.incident.summary} (respond {target}). Triage: {'; '.join(self.findings)}"
        self.note("note", "triage: " + "; ".join(self.findings))
        self.publish_brief()
        return deploys

    async def contain_and_verify(self, service: str, deploys: RecentDeploys | None) -> None:
        """Run the containment ladder until QA passes, nothing is left, or a person resolves the incident.

        A `resolve` withdraws the ladder only while it waits for a human (or the hotfix child), never in
        the middle of an effect. Uncontained, the room waits for a person's `resolve`."""
        incident = self.incident
        ladder = asyncio.create_task(self.contain(service, deploys, incident.target.get("feature")))
        await workflow.wait_condition(
            lambda: ladder.done() or (self.resolution is not None and self.interruptible)
        )
        if not ladder.done():
            ladder.cancel()
            try:
                await ladder
            except asyncio.CancelledError:
                pending = self.brief.awaiting or "the containment step"
                self.note("decision", f"withdrawn: {pending}, the incident was resolved")
                await self.audit("containment-withdrawn", action="withdraw containment", outcome=pending)
        outcome = ladder.result() if not ladder.cancelled() else "resolved"
        if outcome == "uncontained":
            self.set_state("uncontained", awaiting="a manual fix, then `resolve`")
            await self.notify(
                "uncontained",
                channel="on-call",
                title=f"No containment for {service} was approved",
                text=f"{incident.summary}. Rollback, feature flag and hotfix were each declined or failed. "
                "Fix it by hand and send `resolve` when the service is back.",
            )
            await workflow.wait_condition(lambda: self.resolution is not None)
        elif outcome == "verified" and self.resolution is None:
            self.resolution = Resolution(by="qa-gate", note=f"QA passed after {self.contained_by}")
            self.note("decision", f"resolved: QA passed after {self.contained_by}", "qa-gate")

    async def stand_the_room_down(self, service: str, updates: asyncio.Task[None] | None) -> datetime:
        """Resolved: stop the status cadence and tell the stakeholders; returns when it was resolved."""
        incident = self.incident
        resolved_at = workflow.now()
        self.closing = True
        if updates is not None:
            await updates
        self.set_state("resolved")
        await self.notify(
            "resolved",
            channel="stakeholders",
            title=f"Resolved: {service}",
            text=f"{incident.summary}. Resolved by {self.resolution.by if self.resolution else '?'}"
            f"{f' after {self.contained_by}' if self.contained_by else ''}. A post-mortem follows.",
        )
        return resolved_at

    async def write_postmortem(
        self, service: str, deploys: RecentDeploys | None, resolved_at: datetime
    ) -> IncidentResult:
        """Draft the post-mortem and hand it to its own workflow; rooms from before store it here, remind
        if the report is not filed within 24 h and file the stories by 48 h."""
        incident = self.incident
        postmortem = build_postmortem(
            incident,
            service=service,
            timeline=list(self.timeline.entries),
            findings=self.findings,
            contained_by=self.contained_by,
            resolution=self.resolution,
            opened_at=self.brief.started_at,
            resolved_at=resolved_at,
            has_flag="feature" in incident.target,
            could_roll_back=bool(deploys and deploys.rollback_possible),
        )
        if patched(LEARNING_PATCH):
            await open_postmortem(
                self, final_state="resolved", draft=draft_of(postmortem), severities=ROOM_SEVERITIES
            )
            return await self.finish("resolved")
        stored = await self.act(
            "postmortem",
            DocumentActivities.store_postmortem,
            postmortem.request(),
            summary=f"Store the post-mortem of {incident.incident_id}",
        )
        if stored is None and patched("war_room-postmortem-failure-pages"):
            await page_failure(
                self,
                "postmortem-failed",
                what=f"storing the post-mortem of {incident.incident_id}",
                state_left=f"{service} is resolved, but its post-mortem was not stored; it is in this "
                "incident's timeline. Write it up by hand; preventive stories are still filed",
            )
        # This room keeps its own post-mortem: `finish()` must not open a second one.
        own = stored.id if stored else "not stored (see this incident's timeline)"
        self.brief.postmortem = PostmortemLink(workflow_id=workflow.info().workflow_id, report=own)
        self.set_state("awaiting_report", awaiting="`report_filed` within 24 h")
        filed = await self.wait_for_report(REPORT_DUE, "report due")
        if not filed:
            await self.notify(
                "report-reminder",
                channel="on-call",
                title=f"Incident report for {service} is overdue",
                text=f"The report of {incident.incident_id} was due within 24 hours of resolution. "
                "Share it and send `report_filed`; preventive stories are filed within 48 hours either way.",
            )
            filed = await self.wait_for_report(STORIES_DUE - REPORT_DUE, "preventive stories due")
        if filed and self.report is not None:
            await self.audit(
                "report-filed", action="incident report shared", outcome="filed", actor=self.report.by
            )

        stories = (self.report.stories if self.report else []) or postmortem.prevention
        for number, title in enumerate(stories, start=1):
            await self.act(
                f"story-{number}",
                DocumentActivities.file_story,
                StoryRequest(
                    incident_id=incident.incident_id,
                    title=title,
                ),
                summary=f"File preventive story {number}: {title}",
            )
        return await self.finish("resolved" if filed else "resolved_without_report")

    # ---- containment ----------------------------------------------------------------------------------

    async def contain(self, service: str, deploys: RecentDeploys | None, flag: str | None) -> str:
        """Try each mitigation in order of speed; 'verified', 'uncontained' or 'resolved'."""
        for option in containment_options(deploys, flag):
            if self.resolution is not None:
                return "resolved"
            self.set_state("containing")
            if option == ROLLBACK and deploys is not None:
                contained = await self.roll_back(service, deploys)
            elif option == FEATURE_FLAG and flag:
                contained = await self.switch_off(service, flag)
            else:
                contained = await self.hotfix(service)
            if not contained:
                continue
            self.contained_by = option
            if self.resolution is not None:
                return "resolved"
            # Verify: the fix resolves what users saw, without regressions, core functions intact.
            self.set_state("verifying")
            qa = await self.act(
                f"verify-{option}",
                DeployActivities.qa_run,
                QaRunRequest(service=service, subject=option),
                summary=f"QA gate on {service} after the {option}",
            )
            observe_qa(self, qa, option)
            verdict = qa.verdict if qa else None
            self.note("decision", f"QA after the {option}: {verdict.value if verdict else 'no answer'}")
            if verdict is not None and verdict.releasable:
                return "verified"
        return "uncontained"

    async def ask_interruptible(self, request: ApprovalRequest) -> ApprovalOutcome:
        """The gate's ask, during which a `resolve` may stand the room down; a "no" moves on."""
        self.interruptible = True
        try:
            decision = await self.gate.ask(request)
        finally:
            self.interruptible = False
        if not decision.approved:
            self.note("decision", f"{request.action} not taken ({decision.decided_by}): moving on")
        return decision

    async def roll_back(self, service: str, deploys: RecentDeploys) -> bool:
        live = deploys.live
        assert live is not None  # rollback_possible
        rollback = await approve_then_act(
            self,
            ApprovalRequest(
                action="rollback",
                recommendation=f"Roll {service} back from {live.version} to its previous stable deploy",
                risk=f"{service} keeps running {live.version}, deployed at {live.at}",
                allowed_roles=APPROVERS,
                safe_default=f"keep {live.version} live and offer the next mitigation",
            ),
            "contain-rollback",
            DeployActivities.rollback_service,
            ServiceRequest(service=service, reason=self.incident.summary),
            summary=f"Roll back {service} from {live.version}",
            if_failed=FailurePage(
                "war_room-contain-rollback-failure-pages",
                "contain-rollback-failed",
                what=f"rolling {service} back from {live.version}",
                state_left=f"{service} still runs {live.version}, uncontained; the war room moves on to the "
                "next mitigation",
            ),
            ask=self.ask_interruptible,
        )
        return rollback.done

    async def switch_off(self, service: str, flag: str) -> bool:
        switched = await approve_then_act(
            self,
            ApprovalRequest(
                action="disable-flag",
                recommendation=f"Switch feature flag {flag!r} off on {service}",
                risk=f"the feature behind {flag!r} keeps failing for users",
                allowed_roles=APPROVERS,
                safe_default=f"leave {flag!r} as it is and offer a hotfix",
            ),
            "contain-flag",
            FlagActivities.set_flag,
            FlagChange(name=flag, enabled=False),
            summary=f"Switch feature flag {flag} off",
            if_failed=FailurePage(
                "war_room-contain-flag-failure-pages",
                "contain-flag-failed",
                what=f"switching feature flag {flag!r} off on {service}",
                state_left=f"{flag!r} is still on and {service} uncontained; the war room moves on to the "
                "next mitigation",
            ),
            ask=self.ask_interruptible,
        )
        return switched.done

    async def hotfix(self, service: str) -> bool:
        decision = await self.ask_interruptible(
            ApprovalRequest(
                action="hotfix",
                recommendation=f"Run the hotfix cycle on {service}: smallest fix, QA gate, expedited deploy",
                risk=f"{service} stays broken; no other mitigation is left",
                allowed_roles=APPROVERS,
                safe_default="no hotfix; the room fixes it by hand",
            )
        )
        if not decision.approved:
            return False
        incident = self.incident
        child = HotfixInput(
            incident_id=f"{workflow.info().workflow_id}-hotfix",
            runbook="hotfix_cycle",
            severity=incident.severity,
            service=incident.service,
            summary=incident.summary,
            alert=incident.alert,
            target={"service": service},
            policy=incident.policy,
            issue=incident.target.get("issue", ""),
            parent_workflow_id=workflow.info().workflow_id,
        )
        self.set_state("hotfix", awaiting=f"the hotfix cycle {child.incident_id}")
        self.interruptible = True
        try:
            result: HotfixResult = await workflow.execute_child_workflow(
                "hotfix_cycle",
                child,
                id=child.incident_id,
                result_type=HotfixResult,
                static_summary=f"Hotfix cycle for {service}",
            )
        except ChildWorkflowError as error:
            if is_cancelled_exception(error):
                raise asyncio.CancelledError("the hotfix cycle stood down") from error
            self.note("action", f"hotfix cycle failed: {error.cause or error}", child.incident_id)
            await self.audit(
                "contain-hotfix",
                action=f"hotfix cycle {child.incident_id}",
                outcome="failed",
                actor=child.incident_id,
                reason=str(error.cause or error),
            )
            return False
        finally:
            self.interruptible = False
        self.note("action", f"hotfix cycle ended {result.outcome}", child.incident_id)
        await self.audit(
            "contain-hotfix",
            action=f"hotfix cycle {child.incident_id}",
            outcome=result.outcome,
            actor=child.incident_id,
            reason=result.escalation_trigger.value if result.escalation_trigger else "",
            details={
                "iterations": str(result.iterations),
                "deployed_version": result.deployed_version or "",
                "escalated_to": result.escalated_to or "",
            },
        )
        return result.outcome == "fixed"

    # ---- communication --------------------------------------------------------------------------------

    async def status_updates(self, every: timedelta, service: str) -> None:
        """Post where things stand on a fixed cadence, until the incident is resolved."""
        for number in range(1, MAX_STATUS_UPDATES + 1):
            try:
                await workflow.wait_condition(
                    lambda: self.closing, timeout=every, timeout_summary=f"status update {number}"
                )
                return
            except TimeoutError:
                pass
            minutes = int((workflow.now() - self.brief.started_at).total_seconds() // 60)
            await self.notify(
                f"status-{number}",
                channel="stakeholders",
                title=f"Status {number} · {self.incident.severity.value} {service}: {self.state}",
                text=f"Open for {minutes} min. State: {self.state}. "
                f"Done so far: {', '.join(self.brief.automatic_actions) or 'nothing automatic yet'}. "
                f"Next: {self.brief.awaiting or self.brief.recommendation}.",
            )

    async def wait_for_report(self, wait: timedelta, summary: str) -> bool:
        try:
            await workflow.wait_condition(
                lambda: self.report is not None, timeout=wait, timeout_summary=summary
            )
        except TimeoutError:
            return False
        return True

    @workflow.signal(name="report_filed")
    def on_report_filed(self, report: ReportFiled) -> None:
        if self.report is None:
            self.report = report
            self.note("decision", f"incident report filed by {report.by} {report.url}".rstrip(), report.by)
