"""The base every incident runbook inherits: human messages, brief, timeline, audit and effects.

A runbook subclass only writes its procedure in `run`; everything an on-call human or auditor relies on
(the `approve`/`reject`/`decide` answers, `brief`, `timeline`, the search attributes) lives here once.

Audit rows never hold up a page. `audit()` queues the row and returns; one drainer task per incident
writes the queue in the order the steps queued them, one write in flight at a time, so the hash chain and
the step order hold while the effects and notifications after a step go out at once — Postgres being down
included. Each write takes every row queued so far, in one `audit_write_rows` activity: rows queued while
one write is in flight share the next, which saves the server a history step per row. Nothing ends a run
with rows still queued: `finish()` waits for the queue, and so does the wrapper every subclass's `run` gets
(a cancelled, failed or continued-as-new run too).
Runs recorded before the queue existed replay the old inline writes (`AUDIT_QUEUE_PATCH`), and runs
recorded with the queue but before the batches their one `write_audit` per row (`AUDIT_BATCH_PATCH`).

Every incident stands on one escalation ladder (`self.ladder`, workflows/steps/escalation.py) that all its
approval gates climb, and from its start it watches its severity's response target: nobody responding in
time (acknowledge, a decision, resolve) moves it one level up, paging that level, whatever the runbook is
waiting for (`SHARED_LADDER_PATCH`). A `resolve` stands any runbook down from any wait — gate, poll, timer,
child — once no activity is in flight: the run wrapper cancels the runbook's body, the pending gate is
withdrawn, children are cancelled with it, and the incident closes `resolved` with who and why in the
timeline and the audit log (`RESOLVE_STANDS_DOWN_PATCH`). A runbook with its own resolve procedure (the war
room, triage, the dead man's switch) sets `owns_resolve`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from datetime import timedelta
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel
from temporalio import workflow
from temporalio.common import SearchAttributeKey
from temporalio.exceptions import ActivityError, FailureError, is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    from activities.heartbeat import heartbeats
    from activities.notify import NotifyActivities
    from schemas.actions import Notification
    from schemas.alerts import OPENED_BY_HAND, OPENED_BY_LABEL, Alert, AlertBatch, AlertStatus
    from schemas.approvals import (
        Acknowledgement,
        ApprovalAnswer,
        Decision,
        DecisionOutcome,
        EscalationRequest,
        RefusedAttempt,
        Resolution,
    )
    from schemas.audit import AuditEvent
    from schemas.briefs import Brief, Timeline, TimelineEntry
    from schemas.incidents import ActionTaken, EscalationLevel, IncidentInput, IncidentResult
    from schemas.signatures import GateShown, Keyring, ToSign
    from stanch.signing import resolve_shown
    from workflows.steps.approval import ApprovalGate
    from workflows.steps.audit import write_audit_row, write_audit_rows
    from workflows.steps.customer_message import CustomerMessages
    from workflows.steps.escalation import Ladder
    from workflows.steps.patches import patched
    from workflows.steps.policies import (
        AUDIT_BATCH_MAX_ROWS,
        AUDIT_BATCH_PATCH,
        AUDIT_QUEUE_PATCH,
        EFFECT_HEARTBEAT_TIMEOUT,
        EFFECT_RETRY,
        EFFECT_TIMEOUT,
        ESCALATION_LEVEL_PATCH,
        RESOLVE_STANDS_DOWN_PATCH,
        SHARED_LADDER_PATCH,
        STANCH_AWAITING_PATCH,
    )
    from workflows.steps.postmortem import open_postmortem
    from workflows.steps.signatures import DecisionSigning, how_to_sign, who

RUNBOOK = SearchAttributeKey.for_keyword("StanchRunbook")
SEVERITY = SearchAttributeKey.for_keyword("StanchSeverity")
SERVICE = SearchAttributeKey.for_keyword("StanchService")
STATE = SearchAttributeKey.for_keyword("StanchState")
# The people who may decide the incident's open question now: `StanchAwaiting = 'alice'` is "what waits for
# alice" (`stanch list --waiting-for alice`).
AWAITING = SearchAttributeKey.for_keyword_list("StanchAwaiting")
# How many levels of the escalation ladder have run out (`Ladder.level`); unset until the first one has.
ESCALATION_LEVEL = SearchAttributeKey.for_int("StanchEscalationLevel")

SEARCH_ATTRIBUTES = (RUNBOOK, SEVERITY, SERVICE, STATE, AWAITING, ESCALATION_LEVEL)

# An incident a person opened from the console's New incident form (schemas/alerts.py OPENED_BY_HAND).
OPENED_BY_HAND_PATCH = "audit-who-opened-an-incident-by-hand"

Result = TypeVar("Result", bound=BaseModel)


class IncidentWorkflow:
    # True for a runbook that carries out `resolve` itself (it watches `self.resolution`); every other
    # runbook is stood down by the run wrapper.
    owns_resolve: ClassVar[bool] = False
    # False for a runbook that waits on no human (a watcher): it gets no response target.
    response_target_applies: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        run = cls.__dict__.get("run")
        if run is not None and hasattr(run, "__temporal_workflow_run"):
            cls.run = _drains_audit_before_closing(run)  # type: ignore[attr-defined]

    @workflow.init
    def __init__(self, incident: IncidentInput) -> None:
        self.incident = incident
        now = workflow.now()
        self.state = "triggered"
        self.brief = Brief(
            incident_id=incident.incident_id,
            runbook=incident.runbook,
            severity=incident.severity.value,
            service=incident.service,
            summary=incident.summary,
            started_at=incident.alert.starts_at or now,
            last_update_at=now,
            state=self.state,
        )
        self.timeline = Timeline()
        self.actions: list[ActionTaken] = []
        self.alerts_received = 0
        self.resolution: Resolution | None = None
        # The platform's answer to the most recent failed effect, for the page that says what failed.
        self.last_failure: str | None = None
        # Every approval gate of this incident (each registers itself), and the one ladder they climb.
        self.gates: list[ApprovalGate] = []
        self.ladder = Ladder()
        # Decided once, when the run starts (`_start_run`): False replays runs recorded before.
        self.shared_ladder = False
        self._stands_down_on_resolve = False
        # True from the `resolve` that stands this runbook down until it has closed.
        self.standing_down = False
        # True once `finish()` began: the runbook is closing by itself, a `resolve` no longer stands it down.
        self._finishing = False
        self._response_target: asyncio.Task[None] | None = None
        self._paging_missed_target = False
        self._awaiting_published: bool | None = None  # None until the first question decides the patch
        self._awaiting: list[str] = []
        self._escalation_published = 0  # the level StanchEscalationLevel says (0: unset)
        self._escalation_patched: bool | None = None  # None until the ladder first moves
        # Where decisions must be signed and the keys they are checked against (issue 13), before any gate.
        self.signing = DecisionSigning(incident.policy.signatures, incident.policy.keyring)
        self._refused_resolves = 0
        self._refused_attempts = 0
        self._refusal_audits: list[asyncio.Task[None]] = []
        self.gate = ApprovalGate(self)
        # Customer messages the policy wants reviewed wait at gates of their own, beside `self.gate`.
        self.customer_messages = CustomerMessages(self)
        self._audit_steps: set[str] = set()
        # None until the first row: then `workflow.patched` decides, once, inline (old runs) or queued.
        self._audit_queued: bool | None = None
        # None until the first drain: then `workflow.patched` decides, once, one write per row or batches.
        self._audit_batched: bool | None = None
        # Rows not yet written; the head rows are the ones in flight. Only the drainer task pops.
        self._audit_queue: deque[AuditEvent] = deque()
        self._audit_drainer: asyncio.Task[None] | None = None
        self._audit_error: BaseException | None = None

    # ---- what the runbook calls -------------------------------------------------------------------

    def open(self, *, recommendation: str, risk_if_no_action: str) -> None:
        """Publish the first brief and the search attributes before any effect."""
        self.brief.recommendation = recommendation
        self.brief.risk_if_no_action = risk_if_no_action
        workflow.upsert_search_attributes(
            [
                RUNBOOK.value_set(self.incident.runbook),
                SEVERITY.value_set(self.incident.severity.value),
                SERVICE.value_set(self.incident.service),
                STATE.value_set(self.state),
            ]
        )
        self.note("state", f"{self.incident.runbook} opened: {self.incident.summary}")
        self.publish_brief()
        alert = self.incident.alert
        if alert.source == OPENED_BY_HAND and patched(OPENED_BY_HAND_PATCH):
            # Opened by a person from the console's form, not by monitoring: the audit row says who. Only
            # such incidents (none recorded before the form existed) take this branch. `open` cannot wait,
            # so the row is queued from a task that `audit_landed` waits for, like a refused answer's.
            by = alert.labels.get(OPENED_BY_LABEL, "?")
            self.note("state", f"opened by hand by {by}, via console", by)
            self._refusal_audits.append(
                asyncio.create_task(
                    self.audit(
                        "opened-by-hand",
                        action="open incident by hand",
                        outcome="opened",
                        actor=by,
                        reason=self.incident.summary,
                        details={"via": "console", "runbook": self.incident.runbook},
                    )
                )
            )

    def set_state(self, state: str, *, awaiting: str | None = None) -> None:
        self.state = state
        self.brief.state = state
        self.brief.awaiting = awaiting
        workflow.upsert_search_attributes([STATE.value_set(state)])
        self.note("state", f"state is now {state}")
        self.publish_brief()

    def note(self, kind: str, text: str, actor: str = "stanch") -> None:
        self.timeline.entries.append(TimelineEntry(at=workflow.now(), kind=kind, text=text, actor=actor))

    def publish_brief(self) -> None:
        self.brief.last_update_at = workflow.now()
        workflow.set_current_details(self.brief.as_markdown())
        self.publish_escalation_level()

    def publish_escalation_level(self) -> None:
        """Keep StanchEscalationLevel = how far up the ladder the incident stands, once it has moved.

        Every move of the ladder is followed by a brief (a page, a state), which calls this; the first move
        is where old and new runs part (ESCALATION_LEVEL_PATCH), so a run recorded before replays as it ran."""
        level = self.ladder.level
        if level == self._escalation_published:
            return
        if self._escalation_patched is None:
            self._escalation_patched = patched(ESCALATION_LEVEL_PATCH)
        if not self._escalation_patched:
            return
        self._escalation_published = level
        workflow.upsert_search_attributes([ESCALATION_LEVEL.value_set(level)])

    def step_key(self, step: str) -> str:
        """Idempotency key of one effect: stable across retries, distinct for a re-opened incident."""
        info = workflow.info()
        return f"{info.workflow_id}/{info.run_id}/{step}"

    async def audit(
        self,
        step: str,
        *,
        action: str,
        outcome: str,
        actor: str = "stanch",
        reason: str = "",
        details: dict[str, str] | None = None,
    ) -> None:
        """Record one step in the audit log, exactly once: queued, so the caller goes on at once (new runs),
        or written before returning (runs recorded before the queue)."""
        if step in self._audit_steps:
            raise RuntimeError(f"audit step {step!r} used twice in one incident")
        self._audit_steps.add(step)
        info = workflow.info()
        event = AuditEvent(
            workflow_id=info.workflow_id,
            run_id=info.run_id,
            step_key=step,
            actor=actor,
            action=action,
            outcome=outcome,
            reason=reason,
            occurred_at=workflow.now(),
            details=details or {},
        )
        if self._audit_queued is None:
            # Here, at the first row, is where old and new runs part: an old history schedules this very
            # write next, a new one records the marker and hands the row to the drainer.
            self._audit_queued = patched(AUDIT_QUEUE_PATCH)
        if not self._audit_queued:
            await write_audit_row(event)
            return
        self._audit_queue.append(event)
        if self._audit_drainer is None or self._audit_drainer.done():
            self._audit_drainer = asyncio.create_task(self._drain_audit_queue())

    async def audit_landed(self) -> None:
        """Wait until every row queued so far is written (at once when none is queued or runs are inline)."""
        if self._refusal_audits:  # rows a signal handler queues from a task (a refused resolve)
            await workflow.wait_condition(lambda: all(task.done() for task in self._refusal_audits))
        await workflow.wait_condition(lambda: not self._audit_queue or self._audit_error is not None)
        if self._audit_error is not None:
            # A row that cannot be written at all (not a retryable outage): fail the run, as the inline
            # write did, rather than close an incident with a hole in its trail.
            raise self._audit_error

    async def _drain_audit_queue(self) -> None:
        if self._audit_batched is None:
            # Here, at the first drain, is where runs part: one recorded with the queue but before the
            # batches schedules a `write_audit` for its first row next, a new one records the marker.
            self._audit_batched = patched(AUDIT_BATCH_PATCH)
        while self._audit_queue:
            # The rows stay queued until written, so `audit_landed` waits for the ones in flight too.
            in_flight = next_audit_batch(self._audit_queue, batched=self._audit_batched)
            try:
                if self._audit_batched:
                    await write_audit_rows(in_flight)
                else:
                    await write_audit_row(in_flight[0])
            except Exception as error:  # kept for `audit_landed` to raise in the run itself
                self._audit_error = error
                return
            for _ in in_flight:
                self._audit_queue.popleft()

    async def act(
        self,
        step: str,
        effect: Callable[[Any, Any], Awaitable[Result]],
        request: BaseModel,
        *,
        summary: str,
        actor: str = "stanch",
    ) -> Result | None:
        """Carry out one effect, then audit it. A failure is audited too and returns None.

        A `request` with an `idempotency_key` field gets the step's key here (`step_key(step)`), so a
        runbook names its step once and a retry of the same step reaches the system once. Every shipped
        call site keyed its request with its own act step, so incidents in flight send the same keys.
        """
        if "idempotency_key" in type(request).model_fields:
            request = request.model_copy(update={"idempotency_key": self.step_key(step)})
        try:
            result: Result = await workflow.execute_activity_method(
                effect,
                request,
                start_to_close_timeout=EFFECT_TIMEOUT,
                # Only for effects that do heartbeat: one that does not would time out after 5 s.
                heartbeat_timeout=EFFECT_HEARTBEAT_TIMEOUT if heartbeats(effect) else None,
                retry_policy=EFFECT_RETRY,
                summary=summary,
            )
        except ActivityError as error:
            if is_cancelled_exception(error):
                # The incident itself is being cancelled: stand down, do not record a failed step.
                raise
            cause = str(error.cause or error)
            self.last_failure = cause
            self.actions.append(ActionTaken(action=step, by=actor, at=workflow.now(), outcome="failed"))
            self.note("action", f"{summary} failed: {cause}", actor)
            await self.audit(step, action=summary, outcome="failed", actor=actor, reason=cause)
            return None
        self.actions.append(ActionTaken(action=step, by=actor, at=workflow.now(), outcome="done"))
        self.note("action", f"{summary}: done", actor)
        if actor == "stanch":
            self.brief.automatic_actions.append(f"{workflow.now():%H:%M:%S} {summary}")
        self.publish_brief()
        await self.audit(step, action=summary, outcome="done", actor=actor, details=_flat(result))
        return result

    async def notify(
        self, step: str, *, channel: str, title: str, text: str, recipient: str | None = None
    ) -> bool:
        """Tell an audience (customer, on-call, an escalation level); the worker's policy picks the channels.

        The notification is audited once under `step`. A channel that failed on the way and was fallen
        back from gets its own row, `<step>-failed-<channel>`: a broken Slack hook must be seen and fixed
        even when Telegram saved the page. Only channel names travel here, never a URL or a token.
        A customer message the policy wants reviewed returns True at once: it is sent once approved.
        """
        if channel == "customer" and self.customer_messages.held_for_review(
            step, title=title, text=text, recipient=recipient
        ):
            return True
        receipt = await self.act(
            step,
            NotifyActivities.send_notification,
            Notification(
                channel=channel,
                severity=self.incident.severity.value,
                title=title,
                text=text,
                recipient=recipient,
                incident_id=self.incident.incident_id,
                escalation=any(level.name == channel for level in self.incident.policy.escalation),
            ),
            summary=f"Notify {channel}: {title}",
        )
        if receipt is None:
            return False
        for delivery in receipt.deliveries:
            failed_step = f"{step}-failed-{delivery.channel}"
            if delivery.delivered or failed_step in self._audit_steps:
                continue
            self.note("action", f"Notify {channel} via {delivery.channel} failed: {delivery.error}")
            await self.audit(
                failed_step,
                action=f"Notify {channel} via {delivery.channel}",
                outcome="failed",
                reason=delivery.error,
                details={"group": delivery.group, "transport": delivery.transport},
            )
        return True

    async def page_level(self, step: str, level: EscalationLevel | None, *, title: str, text: str) -> bool:
        """Page one level of the escalation ladder — its people and roles (`notify`) — or on-call when the
        policy has no ladder at all. Audited once under `step`, like every notification."""
        return await self.notify(
            step,
            channel=level.name if level else "on-call",
            recipient=(", ".join(level.notify) or None) if level else None,
            title=title,
            text=text,
        )

    async def finish(self, final_state: str) -> IncidentResult:
        # Before `_finishing`: a `resolve` while a review waits still stands the runbook (and it) down.
        await self.customer_messages.settled()
        self._finishing = True
        # A missed-target page already on its way is let through (and audited); a pending target is dropped.
        target = self._response_target
        if target is not None and not target.done():
            if self._paging_missed_target:
                await target
            else:
                target.cancel()
        if self.gate.gave_up and final_state == "escalated":
            # Every runbook says "escalated" for a timed-out decision; since the gate stays open, paging,
            # until it gives up (NEVER_SILENT_PATCH), that decision means the incident closes unattended.
            final_state = "closed_unattended"
        # Resolved at P0/P1: the post-incident learning goes on in a workflow of its own, linked from the brief.
        await open_postmortem(self, final_state=final_state)
        self.set_state(final_state)
        self.publish_awaiting()
        await self.audit(
            "closed",
            action="close incident",
            outcome=final_state,
            actor=self.resolution.by if self.resolution else "stanch",
        )
        # Refused answers are audited by their own handlers; let them land before the run closes.
        await workflow.wait_condition(workflow.all_handlers_finished)
        await self.audit_landed()
        return IncidentResult(
            incident_id=self.incident.incident_id,
            runbook=self.incident.runbook,
            final_state=final_state,
            actions=self.actions,
            approval=self.gate.outcome,
            resolved_by=self.resolution.by if self.resolution else None,
            finished_at=workflow.now(),
        )

    def publish_awaiting(self) -> None:
        """Keep StanchAwaiting = the people who may decide an open question of this incident now."""
        if self._awaiting_published is None:
            if not any(gate.pending() for gate in self.gates):
                return
            # Here, at the first question, old and new runs part: the old kept no such attribute.
            self._awaiting_published = patched(STANCH_AWAITING_PATCH)
        if not self._awaiting_published:
            return
        people = sorted({person for gate in self.gates for person in gate.deciders()})
        if people == self._awaiting:
            return
        self._awaiting = people
        workflow.upsert_search_attributes([AWAITING.value_set(people) if people else AWAITING.value_unset()])

    # ---- the response target ----------------------------------------------------------------------

    def _start_response_target(self) -> None:
        target = self.incident.policy.response_targets.for_severity(self.incident.severity)
        # A child (a hotfix cycle, a handoff, a runbook handed over from triage) is covered by the
        # incident that started it, or was started by a person: it has no target of its own.
        if target is None or not self.response_target_applies or workflow.info().parent is not None:
            return
        self._response_target = asyncio.create_task(self._watch_response_target(target))

    def _stop_response_target(self) -> None:
        if self._response_target is not None and not self._response_target.done():
            self._response_target.cancel()

    async def _watch_response_target(self, target: timedelta) -> None:
        """Met by any human response; superseded once a level timer has moved the incident up (whichever
        fires first moves it, once). Missed: one level up, and that level is told so."""
        minutes = _minutes(target)
        try:
            await workflow.wait_condition(
                lambda: bool(self.ladder.responded_by) or self.ladder.level > 0,
                timeout=target,
                timeout_summary=f"response target: a human responds within {minutes}",
            )
            return
        except TimeoutError:
            pass
        chain = self.incident.policy.escalation
        level = chain[0] if chain else None
        self._paging_missed_target = True
        if level is not None:
            self.ladder.level = 1  # before the page goes out, so every wait on the ladder sees it now
        severity = self.incident.severity.value
        told = f"escalated to {level.name}" if level else "on-call paged again"
        self.note(
            "escalation", f"response target missed: nobody responded within {minutes} ({severity}); {told}"
        )
        self.publish_brief()
        waiting = f" Waiting for: {self.brief.awaiting}." if self.brief.awaiting else ""
        await self.page_level(
            "response-target-missed",
            level,
            title=f"Response target missed: {self.incident.summary}",
            text=f"Nobody has responded to this {severity} incident within its response target of {minutes}. "
            f"State: {self.state}.{waiting} Recommendation: {self.brief.recommendation}. "
            f"Acknowledge it: `stanch acknowledge {workflow.info().workflow_id} --as <you>`.",
        )

    # ---- resolve: stand down -----------------------------------------------------------------------

    def _start_run(self) -> None:
        """At the start of every run: where old and new runs part (both markers at the run's start)."""
        self.shared_ladder = patched(SHARED_LADDER_PATCH)
        if self.shared_ladder:
            self._start_response_target()
        if not self.owns_resolve:
            self._stands_down_on_resolve = patched(RESOLVE_STANDS_DOWN_PATCH)

    async def _run_until_resolved(self, body: asyncio.Task[Any]) -> Any:
        """The runbook's body, until it ends or a `resolve` stands it down between effects."""
        try:
            await workflow.wait_condition(
                lambda: (
                    body.done() or (self.standing_down and not self._finishing and not activities_in_flight())
                )
            )
        except asyncio.CancelledError:
            # The workflow itself is cancelled (the UI, a parent standing down): the body is where the
            # runbook's cancellation handling lives (e.g. the upgrade's restore), so it gets the cancel.
            body.cancel()
            with contextlib.suppress(BaseException):
                await body
            raise
        if body.done():
            return body.result()
        # The body waits on a human, a timer, a poll's pause or a child: cancelling it there leaves the
        # systems as they are (a runbook's own cancellation handler, e.g. the upgrade's restore, still runs).
        awaiting = self.brief.awaiting or self.state
        body.cancel()
        try:
            result = await body
        except (asyncio.CancelledError, FailureError):
            pass  # stood down (a cancelled child surfaces as a ChildWorkflowError)
        else:
            return result  # it had already reached its end
        return await self.stand_down(awaiting)

    async def stand_down(self, awaiting: str) -> Any:
        """Close `resolved` after a `resolve` stopped the runbook while it waited for `awaiting`."""
        resolution = self.resolution
        assert resolution is not None
        self.customer_messages.cancel_pending(by=resolution.by, reason=resolution.note)
        self.note(
            "state", f"stood down for {resolution.by}'s resolve; it was waiting for {awaiting}", resolution.by
        )
        await self.audit(
            "resolved",
            action="resolve incident",
            outcome="stood down",
            actor=resolution.by,
            reason=resolution.note,
            details={"state": self.state, "awaiting": awaiting},
        )
        return self.resolved_result(await self.finish("resolved"))

    def resolved_result(self, result: IncidentResult) -> Any:
        """What `run` returns when `resolve` stood it down: a runbook whose result type needs more overrides."""
        return result

    # ---- what humans and monitoring send -----------------------------------------------------------

    @workflow.signal(name="alert")
    def on_alert(self, alert: Alert) -> None:
        self.alerts_received += 1
        if alert.status is AlertStatus.resolved:
            self.note(
                "alert", f"monitoring reports {alert.name} resolved ({alert.fingerprint})", alert.source
            )
            self.brief.summary = f"{self.incident.summary} — monitoring now reports it resolved"
            self.publish_brief()
        elif self.alerts_received > 1:
            self.note("alert", f"repeat of {alert.name} (#{self.alerts_received})", alert.source)
        else:
            self.note("alert", f"{alert.name} firing: {alert.summary}", alert.source)

    @workflow.signal(name="alerts")
    def on_alerts(self, batch: AlertBatch) -> None:
        """Repeats the intake coalesced into one signal (issue 15): each counts as its own `alert`."""
        for alert in batch.alerts:
            self.on_alert(alert)

    @workflow.signal(name="approve")
    async def on_approve(self, answer: ApprovalAnswer) -> None:
        await self._gate_for(answer).answer_by_signal(answer, approved=True)

    @workflow.signal(name="reject")
    async def on_reject(self, answer: ApprovalAnswer) -> None:
        await self._gate_for(answer).answer_by_signal(answer, approved=False)

    @workflow.update(name="decide")
    async def on_decide(self, decision: Decision) -> DecisionOutcome:
        return await self._gate_for(decision).answer_by_update(decision)

    @on_decide.validator
    def validate_decide(self, decision: Decision) -> None:
        refusal = self._gate_for(decision).refusal(decision, approved=decision.approved)
        if refusal:
            raise ValueError(refusal)

    def _gate_for(self, answer: ApprovalAnswer) -> ApprovalGate | CustomerMessages:
        """An answer about a customer message goes to its review; every other one to the main gate."""
        return self.customer_messages if self.customer_messages.takes(answer) else self.gate

    @workflow.signal(name="acknowledge")
    def on_acknowledge(self, ack: Acknowledgement) -> None:
        self.note("decision", f"acknowledged by {ack.by}", ack.by)
        self.ladder.respond(ack.by)
        for gate in self.gates:
            gate.acknowledge(ack.by)

    @workflow.signal(name="escalate")
    def on_escalate(self, request: EscalationRequest) -> None:
        self.note("escalation", f"{request.by} asks to escalate now: {request.reason}", request.by)
        for gate in self.gates:
            gate.escalate_now()

    @workflow.signal(name="resolve")
    def on_resolve(self, resolution: Resolution) -> None:
        if self.resolution is None:
            refusal = self._resolve_refusal(resolution)
            if refusal:
                self._refuse_resolve(resolution, refusal)
                return
            self.signing.accept(resolution.signed)
            self.resolution = resolution
            self.ladder.respond(resolution.by)
            self.note(
                "decision",
                f"marked resolved by {who(resolution.by, resolution.signed)}: {resolution.note}",
                resolution.by,
            )
            if self._stands_down_on_resolve and not self._finishing:
                self.standing_down = True

    # ---- resolve withdraws a pending question, so it is signed where that question would be ----------

    def _resolve_shown(self) -> tuple[GateShown, bool]:
        """What a `resolve` is about, and whether it withdraws a destructive question. Of the pending
        questions it names a destructive one first, since that is the safety it undoes."""
        pending = [
            (gate.destroys(gate.request), gate.shown(gate.request))
            for gate in self.gates
            if gate.pending() and gate.request is not None
        ]
        destructive, shown = next(
            (item for item in pending if item[0]), pending[0] if pending else (False, None)
        )
        return resolve_shown(self.incident.incident_id, self.incident.target, shown), destructive

    def _resolve_refusal(self, resolution: Resolution) -> str | None:
        shown, destructive = self._resolve_shown()
        return self.signing.refusal(
            resolution.signed,
            gate="resolve",
            verdict="resolve",
            approver=resolution.by,
            shown=shown,
            destructive=destructive,
            claimed_digest=resolution.digest,
            how_to_sign=how_to_sign("resolve", self.incident.incident_id, "resolve"),
        )

    def _refuse_resolve(self, resolution: Resolution, refusal: str) -> None:
        # A signal handler cannot wait, and this one stays synchronous as it always was (replay of old
        # runs); the row is queued from a task of its own.
        self._refused_resolves += 1
        self.note("refused", f"resolve from {resolution.by} refused: {refusal}", resolution.by)
        step = f"resolve-refused-{self._refused_resolves}"
        self._refusal_audits.append(
            asyncio.create_task(
                self.audit(
                    step, action="resolve incident", outcome="refused", actor=resolution.by, reason=refusal
                )
            )
        )

    @workflow.signal(name="refused_attempt")
    def on_refused_attempt(self, attempt: RefusedAttempt) -> None:
        """A client refused `attempt.by` an action here (the console, for a role they do not hold): on record
        in the timeline and, through this incident's own audit path, in its chain. Nothing else changes.
        A new handler: histories recorded before it never carry the signal, so they replay unchanged."""
        self._refused_attempts += 1
        via = f" via {attempt.via}" if attempt.via else ""
        self.note("refused", f"{attempt.action} by {attempt.by}{via} refused: {attempt.reason}", attempt.by)
        self._refusal_audits.append(
            asyncio.create_task(
                self.audit(
                    f"attempt-refused-{self._refused_attempts}",
                    action=attempt.action,
                    outcome="refused",
                    actor=attempt.by,
                    reason=attempt.reason,
                    details={"via": attempt.via} if attempt.via else None,
                )
            )
        )

    # ---- keys --------------------------------------------------------------------------------------

    @workflow.signal(name="keys")
    def on_keys(self, keyring: Keyring) -> None:
        """The policy's keys changed (`stanch keys sync`): decisions from now on are checked against these."""
        self.note("keys", self.signing.replace_keyring(keyring))

    def to_sign(self) -> list[ToSign]:
        """The decisions open now, with what a client signs for each (the brief lists them)."""
        open_now = [gate.to_sign() for gate in (self.gate, self.customer_messages)]
        decisions = [item for item in open_now if item is not None]
        if self.resolution is None and not self._finishing:
            shown, destructive = self._resolve_shown()
            decisions.append(self.signing.to_sign("resolve", ["resolve"], shown, destructive=destructive))
        return decisions

    @workflow.query(name="brief")
    def get_brief(self) -> Brief:
        return self.brief.model_copy(update={"to_sign": self.to_sign()})

    @workflow.query(name="timeline")
    def get_timeline(self) -> Timeline:
        return self.timeline


def _drains_audit_before_closing(
    run: Callable[..., Coroutine[Any, Any, Any]],
) -> Callable[..., Awaitable[Any]]:
    """Wrap a runbook's `run` so the run closes only once its queued audit rows have landed.

    `finish()` waits for them, but a run also ends by cancellation (a hotfix child its war room stood
    down), by failing on purpose, or by continuing as new, and a row queued before that must still land:
    the inline writes of old runs had all landed by then. Other exceptions are bugs that fail the workflow
    task and replay; waiting would not help them. The drainer is a task of its own, which a cancellation
    of the run does not reach, so waiting here after one is safe. Applied by `__init_subclass__`, before
    `@workflow.defn` reads the class; `functools.wraps` keeps the name, module and type hints it checks.
    """

    @functools.wraps(run)
    async def run_then_land_audit_rows(self: IncidentWorkflow, *args: Any) -> Any:
        self._start_run()
        try:
            if self._stands_down_on_resolve:
                result = await self._run_until_resolved(asyncio.create_task(run(self, *args)))
            else:
                result = await run(self, *args)
        except (asyncio.CancelledError, FailureError, workflow.ContinueAsNewError):
            self._stop_response_target()
            await self.audit_landed()
            raise
        self._stop_response_target()
        await self.audit_landed()
        return result

    return run_then_land_audit_rows


def next_audit_batch(
    queue: deque[AuditEvent], *, batched: bool, most: int = AUDIT_BATCH_MAX_ROWS
) -> list[AuditEvent]:
    """The rows the audit queue's next write takes, from its head: every row queued so far up to `most`,
    or the head alone for a run recorded before the batches."""
    return list(itertools.islice(queue, most if batched else 1))


def activities_in_flight() -> int:
    """How many activities this workflow has scheduled and not yet seen resolved.

    The SDK has no public API for it; it lives on the workflow instance, which is the running event loop.
    Deterministic (scheduled and resolved by history). tests/workflows/steps/test_incident_sdk.py fails
    if an SDK upgrade moves it."""
    pending = getattr(asyncio.get_running_loop(), "_pending_activities", None)
    if pending is None:
        raise RuntimeError("temporalio moved _pending_activities: update activities_in_flight()")
    return len(pending)


def _minutes(span: timedelta) -> str:
    minutes = span.total_seconds() / 60
    return f"{minutes:g} minutes" if minutes != 1 else "1 minute"


def _flat(result: BaseModel) -> dict[str, str]:
    return {key: str(value) for key, value in result.model_dump(mode="json").items() if value is not None}
