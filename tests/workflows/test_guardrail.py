"""The per-subsystem guardrail on the time-skipping server: risk levels, sliding windows, the kill switch's
modes (off, armed, engaged; audited in the real Postgres), continue-as-new, idempotent asks, and the
runbook path through the `ask_guardrail` activity with update-with-start."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker

from activities.guardrail import GuardrailActivities
from schemas.guardrail import (
    CHECK_UPDATE,
    GUARDRAIL_WORKFLOW,
    KILL_SWITCH_UPDATE,
    STATE_QUERY,
    ActionCheck,
    GuardrailInput,
    GuardrailLimits,
    GuardrailRequest,
    GuardrailState,
    KillSwitchChange,
    KillSwitchMode,
    Risk,
    Ruling,
    Verdict,
    guardrail_workflow_id,
)
from stanch.policy import Policy, PolicyError, load_policy
from tests.clock import settle_and_terminate
from tests.helpers import Running, audit_rows
from tests.probes.guardrail_probe import (
    GuardrailProbe,
    GuardrailProbeInput,
    GuardrailProbeResult,
    ProbeAsk,
)

MINUTE = timedelta(minutes=1)
SECOND = timedelta(seconds=1)


class Guardrails:
    """Starts guardrails for fresh subsystem names on the test's worker; terminates them afterwards."""

    def __init__(self, stanch: Running) -> None:
        self.stanch = stanch
        self.client: Client = stanch.client
        self.ids: list[str] = []

    def new_subsystem(self) -> str:
        subsystem = f"gw-{uuid.uuid4().hex[:8]}"
        self.ids.append(guardrail_workflow_id(subsystem))
        return subsystem

    async def start(self, limits: GuardrailLimits | None = None, **options: Any) -> WorkflowHandle[Any, Any]:
        subsystem = self.new_subsystem()
        await self.client.start_workflow(
            GUARDRAIL_WORKFLOW,
            GuardrailInput(subsystem=subsystem, limits=limits or GuardrailLimits(), **options),
            id=guardrail_workflow_id(subsystem),
            task_queue=self.stanch.task_queue,
        )
        # No run id: every call reaches the latest run, across continue-as-new.
        return self.client.get_workflow_handle(guardrail_workflow_id(subsystem))

    async def sleep(self, duration: timedelta) -> None:
        await self.stanch.env.sleep(duration)


@pytest.fixture
async def guardrails(stanch: Running) -> AsyncIterator[Guardrails]:
    started = Guardrails(stanch)
    yield started
    # Settled first: a kill-switch row still being written would otherwise keep its hold on the clock.
    await settle_and_terminate(started.client, started.ids)


def new_check(
    risk: Risk,
    kind: str = "restart",
    *,
    key: str | None = None,
    reason: str = "memory at 92% of the high watermark",
    destructive: bool = False,
) -> ActionCheck:
    return ActionCheck(
        requested_by="incident-test",
        idempotency_key=key or f"incident-test/run/{uuid.uuid4().hex[:8]}",
        action=f"{kind} the gateway",
        kind=kind,
        risk=risk,
        reason=reason,
        destructive=destructive,
    )


async def ask(handle: WorkflowHandle[Any, Any], check: ActionCheck) -> Verdict:
    verdict: Verdict = await handle.execute_update(CHECK_UPDATE, check, result_type=Verdict)
    return verdict


async def state_of(handle: WorkflowHandle[Any, Any]) -> GuardrailState:
    state: GuardrailState = await handle.query(STATE_QUERY, result_type=GuardrailState)
    return state


async def flip(handle: WorkflowHandle[Any, Any], *, by: str, enabled: bool, reason: str) -> GuardrailState:
    """The switch's old payload, `{"by", "enabled", "reason"}`: true arms it, false turns it off."""
    state: GuardrailState = await handle.execute_update(
        KILL_SWITCH_UPDATE, {"by": by, "enabled": enabled, "reason": reason}, result_type=GuardrailState
    )
    return state


async def set_mode(
    handle: WorkflowHandle[Any, Any], mode: KillSwitchMode, *, by: str, reason: str
) -> GuardrailState:
    state: GuardrailState = await handle.execute_update(
        KILL_SWITCH_UPDATE, KillSwitchChange(by=by, mode=mode, reason=reason), result_type=GuardrailState
    )
    return state


async def kill_switch_rows(guardrails: Guardrails, workflow_id: str, count: int) -> list[dict[str, Any]]:
    """The guardrail's audit rows once `count` have landed (bounded): a flip is answered at once and its
    row follows, so a Postgres outage never holds up the operator or the runbook that flipped it."""
    for _ in range(200):
        rows = audit_rows(guardrails.stanch.settings, workflow_id)
        if len(rows) >= count:
            return rows
        await asyncio.sleep(0.05)
    return rows


def about(wait: timedelta | None, expected: timedelta) -> bool:
    """Virtual time also moves with the wall clock between calls: allow a few seconds of it."""
    return wait is not None and expected - 5 * SECOND <= wait <= expected


async def test_fourth_restart_within_the_hour_needs_approval_until_the_hour_slides(
    guardrails: Guardrails,
) -> None:
    handle = await guardrails.start()
    for _ in range(3):
        assert (await ask(handle, new_check(Risk.high))).ruling is Ruling.allow
        await guardrails.sleep(MINUTE)

    fourth = await ask(handle, new_check(Risk.high))
    assert fourth.ruling is Ruling.needs_approval
    assert "3 restarts already within the hour" in fourth.reason
    # The first restart leaves the hour 60 min after it was allowed, 57 min from now.
    assert about(fourth.retry_after, 57 * MINUTE), fourth.retry_after
    # A high action that is not a restart is not held back by the restart limit.
    assert (await ask(handle, new_check(Risk.high, "rollback"))).ruling is Ruling.allow

    assert fourth.retry_after is not None
    await guardrails.sleep(fourth.retry_after + SECOND)
    assert (await ask(handle, new_check(Risk.high))).ruling is Ruling.allow
    again = await ask(handle, new_check(Risk.high))
    assert again.ruling is Ruling.needs_approval
    # The 2nd restart (allowed at +1 min) is now the oldest of the three in the hour.
    assert about(again.retry_after, MINUTE), again.retry_after

    state = await state_of(handle)
    assert state.restarts_in_last_hour == 3
    assert (state.counters.allowed, state.counters.needs_approval) == (5, 2)


async def test_kill_switch_stops_a_third_critical_action_in_five_minutes_and_flips_are_audited(
    guardrails: Guardrails,
) -> None:
    handle = await guardrails.start()
    assert (await state_of(handle)).kill_switch is True

    def critical() -> ActionCheck:
        return new_check(Risk.critical, "rollback", reason="retry storm on deploy 42")

    assert (await ask(handle, critical())).ruling is Ruling.allow
    await guardrails.sleep(MINUTE)
    assert (await ask(handle, critical())).ruling is Ruling.allow
    await guardrails.sleep(MINUTE)
    third = await ask(handle, critical())
    assert third.ruling is Ruling.needs_approval
    assert "kill switch armed and the critical window is full" in third.reason
    assert about(third.retry_after, 3 * MINUTE), third.retry_after
    # Destructive counts as critical while the switch is on, whatever risk it is asked at.
    destructive = new_check(Risk.high, "pause", destructive=True)
    assert (await ask(handle, destructive)).ruling is Ruling.needs_approval
    # A high action that is neither critical nor destructive is not the kill switch's business.
    assert (await ask(handle, new_check(Risk.high, "pause"))).ruling is Ruling.allow

    # The window slides: once the first critical action is 5 minutes old there is room for one more.
    assert third.retry_after is not None
    await guardrails.sleep(third.retry_after + SECOND)
    assert (await ask(handle, critical())).ruling is Ruling.allow
    assert (await ask(handle, critical())).ruling is Ruling.needs_approval

    off = await flip(handle, by="alice", enabled=False, reason="rolling back by hand, stop the noise")
    assert off.kill_switch is False
    assert (await ask(handle, critical())).ruling is Ruling.allow
    on = await flip(handle, by="bob", enabled=True, reason="incident over")
    assert on.kill_switch is True
    assert (await ask(handle, critical())).ruling is Ruling.needs_approval

    rows = await kill_switch_rows(guardrails, handle.id, 2)
    assert [(row["step_key"], row["actor"], row["outcome"]) for row in rows] == [
        ("kill-switch-1", "alice", "done"),
        ("kill-switch-2", "bob", "done"),
    ]
    assert rows[0]["reason"] == "rolling back by hand, stop the noise"
    # The old payload's booleans map onto the modes: false is off, true is armed.
    assert rows[0]["action"].endswith("to off") and rows[1]["action"].endswith("to armed")


async def test_engaged_kill_switch_sends_every_destructive_or_critical_ask_to_a_human_until_armed(
    guardrails: Guardrails,
) -> None:
    handle = await guardrails.start()
    assert (await state_of(handle)).mode is KillSwitchMode.armed  # the shipped default

    engaged = await set_mode(handle, KillSwitchMode.engaged, by="alice", reason="agent exfiltrating")
    assert (engaged.mode, engaged.mode_by, engaged.mode_reason) == (
        KillSwitchMode.engaged,
        "alice",
        "agent exfiltrating",
    )
    # The very first critical ask is held back: no window to fill, and no waiting it out.
    first = await ask(handle, new_check(Risk.critical, "rollback", reason="retry storm on deploy 42"))
    assert first.ruling is Ruling.needs_approval
    assert first.reason == f"kill switch engaged on {engaged.subsystem} by alice: agent exfiltrating"
    assert first.retry_after is None
    assert (
        await ask(handle, new_check(Risk.high, "restart", destructive=True))
    ).ruling is Ruling.needs_approval
    # What is neither critical nor destructive is not the kill switch's business, engaged or not.
    assert (await ask(handle, new_check(Risk.high, "pause"))).ruling is Ruling.allow
    assert (await ask(handle, new_check(Risk.low, "restart"))).ruling is Ruling.diagnose_only

    await guardrails.sleep(timedelta(hours=2))
    assert (await ask(handle, new_check(Risk.critical, "rollback"))).ruling is Ruling.needs_approval

    # Armed again, the window applies: two pass, the third waits for it to slide.
    armed = await set_mode(handle, KillSwitchMode.armed, by="bob", reason="agent isolated, all clear")
    assert armed.kill_switch is True and armed.mode is KillSwitchMode.armed
    rulings = [(await ask(handle, new_check(Risk.critical, "rollback"))).ruling for _ in range(3)]
    assert rulings == [Ruling.allow, Ruling.allow, Ruling.needs_approval]

    rows = await kill_switch_rows(guardrails, handle.id, 2)
    assert [(r["step_key"], r["actor"], r["outcome"], r["action"]) for r in rows] == [
        ("kill-switch-1", "alice", "done", f"set the kill switch of {engaged.subsystem} to engaged"),
        ("kill-switch-2", "bob", "done", f"set the kill switch of {engaged.subsystem} to armed"),
    ]
    state = await state_of(handle)
    assert (state.counters.needs_approval, state.counters.allowed) == (4, 3)


async def test_kill_switch_change_must_name_its_mode_and_not_contradict_itself(
    guardrails: Guardrails,
) -> None:
    handle = await guardrails.start()
    for payload, problem in [
        ({"by": "alice", "reason": "drill"}, "say which mode"),
        ({"by": "alice", "reason": "drill", "mode": "off", "enabled": True}, "contradicts"),
        ({"by": "alice", "reason": " ", "mode": "engaged"}, "needs a reason"),
    ]:
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update(KILL_SWITCH_UPDATE, payload, result_type=GuardrailState)
        assert problem in str(refused.value.cause)
    # Consistent old and new fields together are fine.
    both = await handle.execute_update(
        KILL_SWITCH_UPDATE,
        {"by": "alice", "reason": "drill", "mode": "engaged", "enabled": True},
        result_type=GuardrailState,
    )
    assert both.mode is KillSwitchMode.engaged
    assert (await state_of(handle)).counters.kill_switch_changes == 1


async def test_engaged_mode_and_who_engaged_it_survive_continue_as_new(guardrails: Guardrails) -> None:
    handle = await guardrails.start(continue_as_new_after=2)
    first_run = (await handle.describe()).run_id
    await set_mode(handle, KillSwitchMode.engaged, by="alice", reason="security incident")
    assert (await ask(handle, new_check(Risk.high))).ruling is Ruling.allow  # 2nd update: continues-as-new

    for _ in range(200):
        if (await handle.describe()).run_id != first_run:
            break
        await asyncio.sleep(0.05)
    state = await state_of(handle)
    assert state.generation == 1
    assert (state.mode, state.mode_by, state.mode_reason) == (
        KillSwitchMode.engaged,
        "alice",
        "security incident",
    )
    held = await ask(handle, new_check(Risk.critical, "rollback"))
    assert held.ruling is Ruling.needs_approval and "engaged" in held.reason and "alice" in held.reason


async def test_medium_once_per_ten_minutes_and_low_only_diagnoses(guardrails: Guardrails) -> None:
    handle = await guardrails.start()
    low = await ask(handle, new_check(Risk.low, "restart"))
    assert low.ruling is Ruling.diagnose_only
    # Nothing was recorded for the low ask, so it holds nothing back.
    assert (await state_of(handle)).recent_actions == []

    assert (await ask(handle, new_check(Risk.medium, "pause"))).ruling is Ruling.allow
    await guardrails.sleep(9 * MINUTE)
    second = await ask(handle, new_check(Risk.medium, "pause"))
    assert second.ruling is Ruling.needs_approval
    assert "10 min" in second.reason
    assert about(second.retry_after, MINUTE), second.retry_after

    assert second.retry_after is not None
    await guardrails.sleep(second.retry_after + SECOND)
    assert (await ask(handle, new_check(Risk.medium, "pause"))).ruling is Ruling.allow
    # High is not held back by the medium interval, but it does count for the next medium ask.
    assert (await ask(handle, new_check(Risk.high, "pause"))).ruling is Ruling.allow
    assert (await ask(handle, new_check(Risk.medium, "pause"))).ruling is Ruling.needs_approval

    counters = (await state_of(handle)).counters
    assert (counters.asks, counters.allowed, counters.needs_approval, counters.diagnose_only) == (6, 3, 2, 1)


async def test_counters_survive_continue_as_new(guardrails: Guardrails) -> None:
    handle = await guardrails.start(continue_as_new_after=3)
    first_run = (await handle.describe()).run_id

    await flip(handle, by="alice", enabled=False, reason="maintenance window")
    first = new_check(Risk.high)
    assert (await ask(handle, first)).ruling is Ruling.allow
    assert (await ask(handle, new_check(Risk.high))).ruling is Ruling.allow  # 3rd update: continues-as-new

    # The old run ends by continuing-as-new once the flip's audit row has landed (bounded wait), and the
    # calls below reach the new one.
    old_run = guardrails.client.get_workflow_handle(handle.id, run_id=first_run)
    for _ in range(200):
        history = await old_run.fetch_history()
        if history.events[-1].event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
            break
        await asyncio.sleep(0.05)
    assert history.events[-1].event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW
    assert (await handle.describe()).run_id != first_run

    # The remembered key came along: a retried ask from before is answered, not counted again.
    repeat = await ask(handle, first)
    assert (repeat.ruling, repeat.repeated) == (Ruling.allow, True)
    state = await state_of(handle)
    assert state.generation == 1
    assert state.kill_switch is False and state.mode is KillSwitchMode.off
    assert state.restarts_in_last_hour == 2
    assert (state.counters.asks, state.counters.allowed, state.counters.kill_switch_changes) == (3, 2, 1)

    assert (await ask(handle, new_check(Risk.high))).ruling is Ruling.allow
    fourth = await ask(handle, new_check(Risk.high))  # 3rd update of run 2: continues-as-new again
    assert fourth.ruling is Ruling.needs_approval

    # The kill-switch counter came along too: the next audit step key does not repeat the first.
    await flip(handle, by="bob", enabled=True, reason="maintenance over")
    state = await state_of(handle)
    assert (state.generation, state.kill_switch, state.restarts_in_last_hour) == (2, True, 3)
    steps = [row["step_key"] for row in await kill_switch_rows(guardrails, handle.id, 2)]
    assert steps == ["kill-switch-1", "kill-switch-2"]


async def test_a_repeated_idempotency_key_counts_once(guardrails: Guardrails) -> None:
    handle = await guardrails.start()
    first = new_check(Risk.high, key="incident-a/run-1/guardrail-restart")
    assert (await ask(handle, first)).ruling is Ruling.allow
    for _ in range(2):
        repeat = await ask(handle, first)
        assert (repeat.ruling, repeat.repeated) == (Ruling.allow, True)
    # Had the repeats counted, the hourly limit would already be spent.
    assert (await ask(handle, new_check(Risk.high))).ruling is Ruling.allow
    assert (await ask(handle, new_check(Risk.high))).ruling is Ruling.allow
    refused = new_check(Risk.high)
    assert (await ask(handle, refused)).ruling is Ruling.needs_approval

    # A refused key stays refused for its retries, even once the hour has slid.
    await guardrails.sleep(timedelta(hours=1))
    assert (await ask(handle, refused)).ruling is Ruling.needs_approval
    state = await state_of(handle)
    assert (state.counters.allowed, state.counters.repeated, state.remembered_keys) == (3, 3, 4)


async def test_validators_refuse_malformed_asks_and_unexplained_flips(guardrails: Guardrails) -> None:
    handle = await guardrails.start()
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await ask(handle, new_check(Risk.high, reason="  "))
    assert "needs a documented reason" in str(refused.value.cause)
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await ask(handle, new_check(Risk.critical, "rollback", reason=""))
    assert "critical-risk" in str(refused.value.cause)
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await flip(handle, by="mallory", enabled=False, reason="")
    assert "needs a reason" in str(refused.value.cause)

    # Refused asks leave no trace; a medium ask without a reason is fine.
    assert (await ask(handle, new_check(Risk.medium, reason=""))).ruling is Ruling.allow
    state = await state_of(handle)
    assert (state.counters.asks, state.kill_switch) == (1, True)
    assert audit_rows(guardrails.stanch.settings, handle.id) == []


async def test_activity_starts_the_guardrail_with_update_with_start_and_retries_count_once(
    guardrails: Guardrails,
) -> None:
    subsystem = guardrails.new_subsystem()
    activities = GuardrailActivities(guardrails.client, guardrails.stanch.task_queue)
    request = GuardrailRequest(
        subsystem=subsystem,
        check=new_check(Risk.high),
        limits=GuardrailLimits(high_restarts_per_hour=1),
    )

    first = await activities.ask(request)  # no guardrail yet: this starts it
    retried = await activities.ask(request)  # what an activity retry sends
    assert (first.ruling, first.repeated) == (Ruling.allow, False)
    assert (retried.ruling, retried.repeated) == (Ruling.allow, True)

    # Joins the running guardrail, whose limits were set when it started.
    other = await activities.ask(request.model_copy(update={"check": new_check(Risk.high)}))
    assert other.ruling is Ruling.needs_approval
    state = await state_of(guardrails.client.get_workflow_handle(guardrail_workflow_id(subsystem)))
    assert (state.limits.high_restarts_per_hour, state.restarts_in_last_hour) == (1, 1)

    with pytest.raises(ApplicationError) as refused:
        await activities.ask(request.model_copy(update={"check": new_check(Risk.high, reason="")}))
    assert refused.value.type == "GuardrailRefused" and refused.value.non_retryable


async def run_probe(
    guardrails: Guardrails, params: GuardrailProbeInput, activities: list[Any]
) -> WorkflowHandle[Any, GuardrailProbeResult]:
    """The probe runbook runs on its own queue; the guardrails it starts run on the test's worker."""
    probe_queue = f"probe-{uuid.uuid4().hex[:8]}"
    async with Worker(
        guardrails.client, task_queue=probe_queue, workflows=[GuardrailProbe], activities=activities
    ):
        handle = await guardrails.client.start_workflow(
            GuardrailProbe.run, params, id=f"incident-probe-{uuid.uuid4().hex[:8]}", task_queue=probe_queue
        )
        await handle.result()
    return handle


async def test_runbook_asks_through_the_activity_with_limits_from_the_policy_file(
    guardrails: Guardrails, tmp_path: Path
) -> None:
    subsystem = guardrails.new_subsystem()
    policy_file = tmp_path / "stanch.toml"
    policy_file.write_text(
        f'[guardrails.defaults]\nhigh_restarts_per_hour = 5\n\n[guardrails.subsystems."{subsystem}"]\n'
        "high_restarts_per_hour = 2\nkill_switch_default = false\n"
    )
    limits = load_policy(policy_file).guardrail_limits(subsystem)
    params = GuardrailProbeInput(
        subsystem=subsystem,
        limits=limits,
        asks=[
            ProbeAsk(step="restart-1"),
            ProbeAsk(step="restart-2"),
            ProbeAsk(step="restart-3"),
            # The policy turned this subsystem's kill switch off: three critical actions pass.
            *[ProbeAsk(step=f"rollback-{n}", kind="rollback", risk=Risk.critical) for n in range(3)],
        ],
    )
    ask_activity = GuardrailActivities(guardrails.client, guardrails.stanch.task_queue).ask
    handle = await run_probe(guardrails, params, [ask_activity])

    result = await handle.result()
    rulings = [verdict.ruling for verdict in result.verdicts]
    assert rulings == [Ruling.allow, Ruling.allow, Ruling.needs_approval, *[Ruling.allow] * 3]
    state = await state_of(guardrails.client.get_workflow_handle(guardrail_workflow_id(subsystem)))
    assert state.kill_switch is False
    assert {action.requested_by for action in state.recent_actions} == {handle.id}
    assert state.recent_actions[0].idempotency_key.endswith("/guardrail-restart-1")


@activity.defn(name="ask_guardrail")
async def unreachable_guardrail(request: GuardrailRequest) -> Verdict:
    raise ApplicationError("connection refused", non_retryable=True)


async def test_runbook_step_fails_closed_and_refuses_malformed_asks(guardrails: Guardrails) -> None:
    params = GuardrailProbeInput(subsystem="gateway", asks=[ProbeAsk(step="restart")])
    result = await (await run_probe(guardrails, params, [unreachable_guardrail])).result()
    [verdict] = result.verdicts
    assert verdict.ruling is Ruling.needs_approval
    assert "guardrail unavailable" in verdict.reason and "connection refused" in verdict.reason

    malformed = GuardrailProbeInput(subsystem="gateway", asks=[ProbeAsk(step="restart", reason="")])
    with pytest.raises(WorkflowFailureError) as failed:
        await run_probe(guardrails, malformed, [unreachable_guardrail])
    assert isinstance(failed.value.cause, ApplicationError)
    assert failed.value.cause.type == "GuardrailAskInvalid"


def test_policy_file_sets_limits_per_subsystem(policy: Policy, tmp_path: Path) -> None:
    gateway = policy.guardrail_limits("gateway")
    assert gateway == GuardrailLimits(
        medium_interval=10 * MINUTE,
        high_restarts_per_hour=3,
        critical_retries_per_window=2,
        critical_window=5 * MINUTE,
        kill_switch_default=KillSwitchMode.armed,
    )

    policy_file = tmp_path / "stanch.toml"
    policy_file.write_text(
        "[guardrails.defaults]\nmedium_interval_minutes = 15\ncritical_window_minutes = 2.5\n\n"
        "[guardrails.subsystems.gateway]\nhigh_restarts_per_hour = 1\nkill_switch_default = false\n"
    )
    custom = load_policy(policy_file)
    assert custom.guardrail_limits("gateway") == GuardrailLimits(
        medium_interval=15 * MINUTE,
        high_restarts_per_hour=1,
        critical_window=timedelta(minutes=2.5),
        kill_switch_default=False,
    )
    assert custom.guardrail_limits("runtime") == GuardrailLimits(
        medium_interval=15 * MINUTE, critical_window=timedelta(minutes=2.5)
    )
    # The old boolean (false) means off; a mode by name is the new spelling.
    assert custom.guardrail_limits("gateway").kill_switch_default is KillSwitchMode.off

    policy_file.write_text('[guardrails.subsystems.payments]\nkill_switch_default = "engaged"\n')
    modes = load_policy(policy_file)
    assert modes.guardrail_limits("payments").kill_switch_default is KillSwitchMode.engaged
    assert modes.guardrail_limits("gateway").kill_switch_default is KillSwitchMode.armed
    policy_file.write_text('[guardrails.defaults]\nkill_switch_default = "on"\n')
    with pytest.raises(PolicyError, match=r"guardrails\.defaults\.kill_switch_default"):
        load_policy(policy_file)

    policy_file.write_text("[guardrails.subsystems.gateway]\nrestarts_per_hour = 1\n")
    with pytest.raises(PolicyError, match=r"guardrails\.subsystems\.gateway\.restarts_per_hour"):
        load_policy(policy_file)
    policy_file.write_text("[guardrails.defaults]\ncritical_window_minutes = 0\n")
    with pytest.raises(PolicyError, match=r"guardrails\.defaults\.critical_window_minutes"):
        load_policy(policy_file)
