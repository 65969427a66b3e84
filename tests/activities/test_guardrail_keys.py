"""A guardrail the worker starts (its `ask_guardrail` activity, update-with-start) takes the worker's policy's
`[approvals] signatures` and keyring (issue 13): turning its kill switch off then needs a signature by a key
the policy gives the person. On the time-skipping server with the worker's real activities."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from temporalio.client import WorkflowUpdateFailedError

from activities.guardrail import GuardrailActivities
from schemas.guardrail import (
    KILL_SWITCH_UPDATE,
    STATE_QUERY,
    ActionCheck,
    GuardrailRequest,
    GuardrailState,
    KillSwitchChange,
    KillSwitchMode,
    Risk,
    Ruling,
    guardrail_workflow_id,
)
from tests.helpers import Running
from tests.helpers_keys import key_pair, policy_with_keys, signed_kill_switch_change
from workers.worker import activity_implementations


async def test_a_guardrail_the_worker_starts_needs_a_kill_switch_off_signed_with_a_key_of_the_policy(
    stanch: Running, tmp_path: Path
) -> None:
    alice, alice_line = key_pair("alice@laptop")
    bob, bob_line = key_pair("bob@laptop")
    config = policy_with_keys(tmp_path, {"alice": [alice_line], "bob": [bob_line]}, signatures="destructive")
    settings = stanch.settings.model_copy(update={"task_queue": stanch.task_queue, "config": config})
    subsystem = f"gw-{uuid.uuid4().hex[:8]}"
    handle = stanch.client.get_workflow_handle(guardrail_workflow_id(subsystem))

    async with activity_implementations(settings, stanch.client) as activities:
        [ask] = [fn for fn in activities if isinstance(getattr(fn, "__self__", None), GuardrailActivities)]
        check = ActionCheck(
            requested_by="incident-test",
            idempotency_key=f"incident-test/run/{uuid.uuid4().hex[:8]}",
            action="restart the gateway",
            kind="restart",
            risk=Risk.high,
            reason="memory at 92% of the high watermark",
        )
        verdict = await ask(GuardrailRequest(subsystem=subsystem, check=check))  # starts the guardrail
    assert verdict.ruling is Ruling.allow

    # A name typed into the payload cannot turn the safety off.
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update(
            KILL_SWITCH_UPDATE,
            KillSwitchChange(by="alice", mode=KillSwitchMode.off, reason="noisy"),
            result_type=GuardrailState,
        )
    assert "needs a signed decision" in str(refused.value.cause)
    # Bob's key, claiming to be alice.
    forged = await signed_kill_switch_change(stanch.client, subsystem, "bob", bob)
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update(
            KILL_SWITCH_UPDATE, forged.model_copy(update={"by": "alice"}), result_type=GuardrailState
        )
    assert "sign as yourself" in str(refused.value.cause)
    assert (await handle.query(STATE_QUERY, result_type=GuardrailState)).mode is KillSwitchMode.armed

    # Alice's own key, as the policy gives it to her: off.
    change = await signed_kill_switch_change(stanch.client, subsystem, "alice", alice)
    state = await handle.execute_update(KILL_SWITCH_UPDATE, change, result_type=GuardrailState)
    assert (state.mode, state.mode_by) == (KillSwitchMode.off, "alice")
