"""The guardrail: one long-lived workflow per subsystem (id `guardrail-<subsystem>`) that every runbook asks,
through the `check` update, before it takes an automatic action on that subsystem.

Asking is the only way to act automatically, and each answer is decided and recorded in one synchronous
handler, so two runbooks asking at the same moment are counted one after the other: the workflow is the
subsystem's mutex.

The rules, in the order they are applied to one ask:

1. A malformed ask is refused by the update validator and leaves no trace: empty requester, key, action
   or kind, or a high or critical risk without a documented reason.
2. An idempotency key the guardrail has answered before gets that same answer again, marked `repeated`,
   and nothing is counted twice (an activity retry must not spend a restart). The last
   `remembered_keys` answers are kept, across continue-as-new too.
3. Low risk: `diagnose_only`. Nothing is recorded, so a low ask never holds back another action.
4. Any other risk is checked against every limit that applies to it; if one or more are reached the
   answer is `needs_approval` (the runbook goes through its approval gate instead), naming each limit,
   with `retry_after` = how long until every one of them would let the ask through by itself (None if
   waiting never will, e.g. a limit of 0). A refused ask is not recorded: it takes no slot, so it does
   not push the limit further out.
   - medium: at most one automatic action per `medium_interval` (10 min) on the subsystem — refused if
     any action (medium, high or critical) was allowed within the last interval. High and critical
     asks are not held back by this rule; they have their own, stricter ones below.
   - kind `restart`, whatever its risk: at most `high_restarts_per_hour` (3) allowed restarts in any
     rolling hour; the 4th within the hour is refused.
   - the kill switch, for an ask that is critical risk or destructive (the others pass it in every mode):
     - armed (the shipped default): at most `critical_retries_per_window` (2) critical-or-destructive
       actions allowed in any rolling `critical_window` (5 min); the 3rd within the window is refused.
     - engaged (a security incident, or a person): every such ask is refused, with no `retry_after` —
       waiting never lets it through, only someone arming or turning off the switch does.
     - off: this limit does not apply; the others still do.
5. Otherwise `allow`, and the action is recorded at `workflow.now()` with its reason.

Windows slide: an action counts while it is younger than the window (allowed at `t`, it stops counting
at exactly `t + window`). Human-approved actions taken after a `needs_approval` are not reported back
here; the guardrail counts automatic actions only.

Operators read everything through the `state` query and set the kill switch's mode with the
`set_kill_switch` update (`{"by", "mode": "off"|"armed"|"engaged", "reason"}`; the older
`{"by", "enabled", "reason"}` still works: true arms, false turns off), which takes effect at once and is
written to the audit log (step `kill-switch-<n>`, n counted over the guardrail's whole life so a key never
repeats). A guardrail starts in the policy's `kill_switch_default` mode. After `continue_as_new_after`
handled updates, or when the server suggests it, the guardrail waits for its handlers to finish and
continues-as-new with its memory: recorded actions, the kill switch's mode and who set it, remembered
answers and every counter.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from schemas.audit import AuditEvent
    from schemas.guardrail import (
        CHECK_UPDATE,
        GUARDRAIL_WORKFLOW,
        KILL_SWITCH_UPDATE,
        RESTART_KIND,
        RESTART_WINDOW,
        STATE_QUERY,
        ActionCheck,
        GuardrailInput,
        GuardrailMemory,
        GuardrailState,
        KillSwitchChange,
        KillSwitchMode,
        RecordedAction,
        Risk,
        Ruling,
        Verdict,
    )
    from schemas.signatures import Keyring
    from schemas.signatures import Verdict as SignedVerdict
    from stanch.signing import kill_switch_shown
    from workflows.steps.audit import write_audit_row
    from workflows.steps.patches import patched
    from workflows.steps.signatures import DecisionSigning, signature_details


# Runs recorded before it answered `set_kill_switch` only once the change's audit row had landed.
KILL_SWITCH_AUDIT_PATCH = "kill-switch-answers-before-its-audit-row"


@workflow.defn(name=GUARDRAIL_WORKFLOW)
class Guardrail:
    @workflow.init
    def __init__(self, params: GuardrailInput) -> None:
        # Set up here, not in run: with update-with-start the first ask arrives in the very first task.
        self.params = params
        self.subsystem = params.subsystem
        self.limits = params.limits
        memory = params.memory or GuardrailMemory(kill_switch=params.limits.kill_switch_default)
        self.mode = memory.kill_switch
        # Who set the mode and why: an engaged switch's refusals name them.
        self.mode_by = memory.mode_by
        self.mode_reason = memory.mode_reason
        self.actions: list[RecordedAction] = list(memory.actions)
        self.verdicts: dict[str, Verdict] = {verdict.idempotency_key: verdict for verdict in memory.verdicts}
        self.counters = memory.counters.model_copy()
        self.generation = memory.generation
        self.handled = 0
        # Kill-switch audits are written in the order the changes were made.
        self.audit_lock = asyncio.Lock()
        # Kill-switch rows queued or being written (runs with KILL_SWITCH_AUDIT_PATCH).
        self.audit_writes: list[asyncio.Task[None]] = []
        # Turning the switch off or disengaging it undoes a safety: signed where the policy says (issue 13).
        self.signing = DecisionSigning(params.signatures, params.keyring)

    @workflow.run
    async def run(self, params: GuardrailInput) -> GuardrailState:
        self._publish()
        await workflow.wait_condition(
            lambda: (
                self.handled >= params.continue_as_new_after or workflow.info().is_continue_as_new_suggested()
            )
        )
        # A kill-switch change may still be writing its audit row; it must land in this run.
        await workflow.wait_condition(workflow.all_handlers_finished)
        await workflow.wait_condition(lambda: all(write.done() for write in self.audit_writes))
        self._prune(workflow.now())
        workflow.continue_as_new(
            params.model_copy(
                update={
                    "memory": GuardrailMemory(
                        kill_switch=self.mode,
                        mode_by=self.mode_by,
                        mode_reason=self.mode_reason,
                        actions=self.actions,
                        verdicts=list(self.verdicts.values()),
                        counters=self.counters,
                        generation=self.generation + 1,
                    ),
                    # The keys a `keys` signal brought outlive the run; a statement signed for this run
                    # does not (its run id), so the accepted nonces need not.
                    "keyring": self.signing.keyring,
                }
            )
        )

    # ---- the ask ----------------------------------------------------------------------------------

    @workflow.update(name=CHECK_UPDATE)
    def check(self, ask: ActionCheck) -> Verdict:
        # Synchronous on purpose: deciding and recording happen with no await in between.
        self.handled += 1
        self.counters.asks += 1
        known = self.verdicts.get(ask.idempotency_key)
        if known is not None:
            self.counters.repeated += 1
            return known.model_copy(update={"repeated": True})

        now = workflow.now()
        self._prune(now)
        verdict = self._decide(ask, now)
        if verdict.ruling is Ruling.allow:
            self.counters.allowed += 1
            self.actions.append(
                RecordedAction(
                    at=now,
                    requested_by=ask.requested_by,
                    idempotency_key=ask.idempotency_key,
                    action=ask.action,
                    kind=ask.kind,
                    risk=ask.risk,
                    destructive=ask.destructive,
                    reason=ask.reason,
                )
            )
        elif verdict.ruling is Ruling.diagnose_only:
            self.counters.diagnose_only += 1
        else:
            self.counters.needs_approval += 1
        self._remember(verdict)
        self._publish()
        return verdict

    @check.validator
    def validate_check(self, ask: ActionCheck) -> None:
        problem = ask.problem()
        if problem:
            raise ValueError(problem)

    def _decide(self, ask: ActionCheck, now: datetime) -> Verdict:
        def verdict(ruling: Ruling, reason: str, retry_after: timedelta | None = None) -> Verdict:
            return Verdict(
                ruling=ruling,
                subsystem=self.subsystem,
                idempotency_key=ask.idempotency_key,
                reason=reason,
                retry_after=retry_after,
                decided_at=now,
            )

        if ask.risk is Risk.low:
            return verdict(Ruling.diagnose_only, "low risk: diagnose and alert only, no automatic action")

        limits = self.limits
        hits: list[tuple[str, timedelta | None]] = []

        def limit(text: str, actions: list[RecordedAction], most: int, window: timedelta) -> None:
            wait = _wait_for_room(actions, most, window, now)
            if wait is None or wait > timedelta(0):
                hits.append((text, wait))

        if ask.risk is Risk.medium:
            limit(
                f"an automatic action was already taken within {_span(limits.medium_interval)}",
                self.actions,
                1,
                limits.medium_interval,
            )
        if ask.kind == RESTART_KIND:
            limit(
                f"{limits.high_restarts_per_hour} restarts already within the hour",
                [action for action in self.actions if action.kind == RESTART_KIND],
                limits.high_restarts_per_hour,
                RESTART_WINDOW,
            )
        critical = ask.risk is Risk.critical or ask.destructive
        if critical and self.mode is KillSwitchMode.engaged:
            # No window to wait out: only a person arming or turning off the switch lets it through.
            hits.append((f"kill switch engaged on {self.subsystem}{self._engaged_by()}", None))
        elif critical and self.mode is KillSwitchMode.armed:
            limit(
                f"kill switch armed and the critical window is full: {limits.critical_retries_per_window} "
                f"critical or destructive actions already within {_span(limits.critical_window)}",
                [action for action in self.actions if action.critical],
                limits.critical_retries_per_window,
                limits.critical_window,
            )
        if hits:
            waits = [wait for _, wait in hits]
            retry_after = None if None in waits else max(wait for wait in waits if wait is not None)
            return verdict(Ruling.needs_approval, "; ".join(text for text, _ in hits), retry_after)
        return verdict(Ruling.allow, f"{ask.risk.value} risk {ask.kind} within limits")

    def _engaged_by(self) -> str:
        if not self.mode_by:
            return " (the policy's default)"
        return f" by {self.mode_by}" + (f": {self.mode_reason}" if self.mode_reason else "")

    def _remember(self, verdict: Verdict) -> None:
        self.verdicts[verdict.idempotency_key] = verdict
        while len(self.verdicts) > self.params.remembered_keys:
            del self.verdicts[next(iter(self.verdicts))]

    def _prune(self, now: datetime) -> None:
        """Forget actions no window can count any more; what continue-as-new carries stays small."""
        longest = max(self.limits.medium_interval, RESTART_WINDOW, self.limits.critical_window)
        self.actions = [action for action in self.actions if action.at > now - longest]

    # ---- operators --------------------------------------------------------------------------------

    @workflow.update(name=KILL_SWITCH_UPDATE)
    async def set_kill_switch(self, change: KillSwitchChange) -> GuardrailState:
        # The switch flips at once — an operator stopping automatic damage must not wait on Postgres —
        # and the change is audited right after, under its own never-repeating step key.
        self.handled += 1
        previous = self.mode
        mode = change.target_mode
        assert mode is not None  # the validator refused a change without one
        self.signing.accept(change.signed)
        self.mode, self.mode_by, self.mode_reason = mode, change.by, change.reason
        self.counters.kill_switch_changes += 1
        step = f"kill-switch-{self.counters.kill_switch_changes}"
        self._publish()
        info = workflow.info()
        event = AuditEvent(
            workflow_id=info.workflow_id,
            run_id=info.run_id,
            step_key=step,
            actor=change.by,
            action=f"set the kill switch of {self.subsystem} to {mode.value}",
            outcome="done" if previous is not mode else "unchanged",
            reason=change.reason,
            occurred_at=workflow.now(),
            details={"previous": previous.value, "now": mode.value} | signature_details([change.signed]),
        )
        if patched(KILL_SWITCH_AUDIT_PATCH):
            # The answer does not wait for Postgres either: a security incident flips the switch and goes
            # on to revoke and page at once. The row follows, in the order of the flips (the lock is FIFO
            # and the tasks start in the order they were made), and lands before a continue-as-new.
            self.audit_writes.append(asyncio.create_task(self._write_audit(event)))
            return self._state()
        async with self.audit_lock:
            await write_audit_row(event)
        return self._state()

    async def _write_audit(self, event: AuditEvent) -> None:
        async with self.audit_lock:
            await write_audit_row(event)

    @set_kill_switch.validator
    def validate_kill_switch(self, change: KillSwitchChange) -> None:
        problem = change.problem()
        if problem:
            raise ValueError(problem)
        mode = change.target_mode
        assert mode is not None  # problem() refused a change without one
        verdict = self._undoes_a_safety(mode)
        if verdict is None:
            return
        refusal = self.signing.refusal(
            change.signed,
            gate="kill-switch",
            verdict=verdict,
            approver=change.by,
            shown=kill_switch_shown(self.subsystem, self.mode.value, mode.value),
            destructive=True,
            how_to_sign=f"Sign it: `stanch kill-switch {self.subsystem} {mode.value} --as <you> --reason ... "
            "--key <your private key>`.",
        )
        if refusal:
            raise ValueError(refusal)

    def _undoes_a_safety(self, mode: KillSwitchMode) -> SignedVerdict | None:
        """Turning the switch off, or disengaging it (engaged → armed), is signed; arming or engaging is not."""
        if mode is KillSwitchMode.off and self.mode is not KillSwitchMode.off:
            return "kill_switch_off"
        if mode is KillSwitchMode.armed and self.mode is KillSwitchMode.engaged:
            return "kill_switch_disengage"
        return None

    @workflow.signal(name="keys")
    def on_keys(self, keyring: Keyring) -> None:
        """The policy's keys changed (`stanch keys sync`): kill-switch changes from now on use these."""
        self.signing.replace_keyring(keyring)

    @workflow.query(name=STATE_QUERY)
    def state(self) -> GuardrailState:
        return self._state()

    def _state(self) -> GuardrailState:
        now = workflow.now()
        return GuardrailState(
            subsystem=self.subsystem,
            mode=self.mode,
            mode_by=self.mode_by,
            mode_reason=self.mode_reason,
            limits=self.limits,
            as_of=now,
            recent_actions=list(self.actions),
            restarts_in_last_hour=sum(
                1
                for action in self.actions
                if action.kind == RESTART_KIND and action.at > now - RESTART_WINDOW
            ),
            critical_in_window=sum(
                1
                for action in self.actions
                if action.critical and action.at > now - self.limits.critical_window
            ),
            last_action_at=self.actions[-1].at if self.actions else None,
            counters=self.counters.model_copy(),
            remembered_keys=len(self.verdicts),
            generation=self.generation,
        )

    def _publish(self) -> None:
        state = self._state()
        limits = self.limits
        workflow.set_current_details(
            f"**Guardrail for {self.subsystem}**\n\n"
            f"- Kill switch: **{state.mode.value}**"
            + (f" (set by {state.mode_by}: {state.mode_reason})" if state.mode_by else "")
            + "\n"
            f"- Restarts in the last hour: {state.restarts_in_last_hour}/{limits.high_restarts_per_hour}\n"
            f"- Critical or destructive actions in the last {_span(limits.critical_window)}: "
            f"{state.critical_in_window}/{limits.critical_retries_per_window}\n"
            f"- Last automatic action: {state.last_action_at or 'none'}\n"
            f"- Asks: {state.counters.asks} (allowed {state.counters.allowed}, needs approval "
            f"{state.counters.needs_approval}, diagnose only {state.counters.diagnose_only})"
        )


def _wait_for_room(
    actions: list[RecordedAction], most: int, window: timedelta, now: datetime
) -> timedelta | None:
    """How long until one more action fits in the window: zero if it fits now, None if it never will."""
    inside = sorted(action.at for action in actions if action.at > now - window)
    if len(inside) < most:
        return timedelta(0)
    if most == 0:
        return None
    # Enough of the oldest must age out to leave room for one more.
    return inside[len(inside) - most] + window - now


def _span(window: timedelta) -> str:
    minutes = window.total_seconds() / 60
    return f"{minutes:g} min"
