"""Signed decisions checked by the workflow (issue 13 §3, §6): a destructive termination under the policy's
"destructive" mode, on the time-skipping server against the sandbox and the audit log in Postgres — forged,
expired, replayed and stale signatures refused; two people completing a two-person P0 gate; a trusted
service signing for the person it signed in; a signed kill-switch change replayed once the switch is back
where it was signed."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from temporalio.client import WorkflowHandle
from temporalio.exceptions import ApplicationError

from activities.guardrail import update_guardrail
from schemas.approvals import ApprovalAnswer
from schemas.briefs import Brief, Timeline
from schemas.guardrail import (
    KILL_SWITCH_UPDATE,
    GuardrailLimits,
    GuardrailState,
    KillSwitchChange,
    KillSwitchMode,
    guardrail_workflow_id,
)
from schemas.incidents import IncidentResult
from schemas.severity import Severity
from schemas.signatures import DecisionStatement, Keyring, SignedDecision, ToSign, Verdict
from stanch.signing import gate_digest, kill_switch_shown, sign, statement_for
from tests.clock import settle_and_terminate
from tests.helpers import Incidents, Running, audit_rows
from tests.helpers_keys import key_pair, signed_over
from tests.workflows.test_agent_lifecycle import agent_of, lifecycle, retiring_agent, until_awaiting


async def open_termination(
    incidents: Incidents, policy: Any, keyring: Keyring, agent_id: str, severity: Severity = Severity.P1
) -> WorkflowHandle[Any, IncidentResult]:
    incident_policy = policy.incident_policy().model_copy(
        update={"signatures": "destructive", "keyring": keyring}
    )
    return await incidents.open(
        "agent_termination",
        labels={"agent": agent_id},
        annotations={"summary": "retire the agent"},
        service="agents",
        target={"agent_id": agent_id},
        severity=severity,
        incident_policy=incident_policy,
    )


async def open_question(handle: WorkflowHandle[Any, Any]) -> tuple[Brief, ToSign]:
    """The brief, and the approval gate it lists to sign now."""
    brief = await handle.query("brief", result_type=Brief)
    return brief, next(item for item in brief.to_sign if item.gate.startswith("gate"))


async def signed_answer(
    handle: WorkflowHandle[Any, Any],
    key: Ed25519PrivateKey,
    approver: str,
    verdict: Verdict = "approve",
    via: str = "",
) -> ApprovalAnswer:
    brief, to_sign = await open_question(handle)
    signed = signed_over(brief, to_sign, approver, key, verdict, via)
    return ApprovalAnswer(approver=approver, action=to_sign.shown.action, signed=signed)


async def entries(handle: WorkflowHandle[Any, Any], kind: str) -> list[str]:
    timeline = await handle.query("timeline", result_type=Timeline)
    return [entry.text for entry in timeline.entries if entry.kind == kind]


async def refusals(handle: WorkflowHandle[Any, Any]) -> list[str]:
    return await entries(handle, "refused")


def decision_details(stanch: Running, workflow_id: str) -> dict[str, dict[str, str]]:
    """The details of each gate's decision row in the audit log, by step key."""
    with psycopg.connect(stanch.settings.database_url) as conn:
        rows = conn.execute(
            "SELECT step_key, details FROM audit_log WHERE workflow_id = %s AND step_key LIKE %s",
            (workflow_id, "%-decision"),
        ).fetchall()
    return {step.rsplit("/", 1)[-1]: details for step, details in rows}


def refused_reasons(stanch: Running, workflow_id: str) -> list[str]:
    return [row["reason"] for row in audit_rows(stanch.settings, workflow_id) if row["outcome"] == "refused"]


async def test_an_unsigned_or_forged_approval_of_a_termination_is_refused_and_a_signed_one_terminates(
    stanch: Running, incidents: Incidents, policy: Any
) -> None:
    sandbox = stanch.settings.platform_url
    agent_id, _ = retiring_agent(sandbox)
    erin, erin_line = key_pair()
    bob, bob_line = key_pair()
    keyring = Keyring(people={"erin": [erin_line], "bob": [bob_line]})
    handle = await open_termination(incidents, policy, keyring, agent_id)
    await until_awaiting(handle, "terminate")

    # A name typed into the payload, as anyone reaching Temporal could send it: refused, audited.
    await handle.signal("approve", ApprovalAnswer(approver="erin", action="terminate"))
    # Bob's key claiming to be erin.
    forged = await signed_answer(handle, bob, "bob")
    await handle.signal("approve", forged.model_copy(update={"approver": "erin"}))
    seen = await refusals(handle)
    assert len(seen) == 2, seen
    assert "needs a signed decision" in seen[0]
    assert "sign as yourself" in seen[1] or "signature refused" in seen[1]
    assert agent_of(sandbox, agent_id)["state"] == "active"

    # Erin's own signature over what the gate shows: terminated.
    await handle.signal("approve", await signed_answer(handle, erin, "erin"))
    result = await handle.result()
    assert result.final_state == "terminated"
    assert agent_of(sandbox, agent_id)["state"] == "terminated"
    rows = audit_rows(stanch.settings, handle.id)
    assert sum(1 for row in rows if row["outcome"] == "refused") == 2
    with psycopg.connect(stanch.settings.database_url) as conn:
        details = conn.execute(
            "SELECT details FROM audit_log WHERE workflow_id = %s AND outcome = 'approved' "
            "AND step_key LIKE %s",
            (handle.id, "%-decision"),
        ).fetchall()
    assert [row[0]["signed_by"].split(" (")[0] for row in details] == ["erin"]
    assert "key SHA256:" in details[0][0]["signed_by"]


async def test_an_expired_signature_and_one_over_another_digest_are_refused_with_the_reason(
    stanch: Running, incidents: Incidents, policy: Any
) -> None:
    sandbox = stanch.settings.platform_url
    agent_id, _ = retiring_agent(sandbox)
    erin, erin_line = key_pair()
    handle = await open_termination(incidents, policy, Keyring(people={"erin": [erin_line]}), agent_id)
    await until_awaiting(handle, "terminate")
    brief = await handle.query("brief", result_type=Brief)
    to_sign = next(item for item in brief.to_sign if item.gate.startswith("gate"))

    expired = statement_for(
        to_sign, verdict="approve", approver="erin", now=brief.last_update_at - timedelta(hours=2), nonce="a"
    )
    # What an older brief showed: the recommendation the signer read is not the one pending now.
    older = to_sign.model_copy(update={"digest": "0" * 64})
    stale = statement_for(older, verdict="approve", approver="erin", now=brief.last_update_at, nonce="b")
    for statement in (expired, stale):
        await handle.signal(
            "approve", ApprovalAnswer(approver="erin", action="terminate", signed=sign(statement, erin))
        )
    seen = await refusals(handle)
    assert len(seen) == 2, seen
    assert "expired" in seen[0] and "stale" in seen[1]
    assert agent_of(sandbox, agent_id)["state"] == "active"
    await handle.cancel()


# ---- replay, and two people on a two-person P0 gate ---------------------------------------------------------


async def test_a_two_person_p0_termination_counts_one_signer_once_and_terminates_when_a_second_signs(
    stanch: Running, incidents: Incidents, policy: Any
) -> None:
    sandbox = stanch.settings.platform_url
    agent_id, _ = retiring_agent(sandbox)
    erin, erin_line = key_pair()
    dave, dave_line = key_pair()
    keyring = Keyring(people={"erin": [erin_line], "dave": [dave_line]})
    handle = await open_termination(incidents, policy, keyring, agent_id, severity=Severity.P0)
    await until_awaiting(handle, "terminate")
    _, question = await open_question(handle)
    assert question.shown.required_approvals == 2 and question.signature_needed

    first = await signed_answer(handle, erin, "erin")
    await handle.signal("approve", first)
    # The same signed payload again (as anyone who read it in the history could send it): a replay.
    await handle.signal("approve", first)
    # A new statement of erin's own, validly signed: still one person.
    await handle.signal("approve", await signed_answer(handle, erin, "erin"))
    seen = await refusals(handle)
    assert len(seen) == 2, seen
    assert "already used once (a replay)" in seen[0]
    assert "erin already approved; a different approver is needed" in seen[1]
    assert agent_of(sandbox, agent_id)["state"] == "active"
    held = lifecycle(sandbox, agent_id)
    assert held["archives"] == {} and held["tokens"] == ["tok-api", "tok-chat"]  # not even archived
    brief, still_open = await open_question(handle)
    assert still_open.gate == question.gate and brief.state == "awaiting_approval"

    await handle.signal("approve", await signed_answer(handle, dave, "dave"))
    result = await handle.result()
    assert result.final_state == "terminated"
    assert agent_of(sandbox, agent_id)["state"] == "terminated"
    assert [reason.split(";")[0] for reason in refused_reasons(stanch, handle.id)] == [
        "this signed decision was already used once (a replay)",
        "erin already approved",
    ]
    signed_by = decision_details(stanch, handle.id)["gate1-decision"]["signed_by"]
    assert [part.split(" (")[0] for part in signed_by.split("; ")] == ["erin", "dave"]
    assert signed_by.count("key SHA256:") == 2


# ---- a signature over an older question ----------------------------------------------------------------------


async def test_a_signature_over_the_question_before_the_guardrail_changed_it_is_stale_and_a_fresh_one_terminates(
    stanch: Running, incidents: Incidents, policy: Any
) -> None:
    sandbox = stanch.settings.platform_url
    agent_id, _ = retiring_agent(sandbox)
    # The agent is its own guardrail subsystem: engaged, it asks again right before the irreversible part,
    # with a recommendation that says why.
    await update_guardrail(
        stanch.client,
        stanch.task_queue,
        agent_id,
        GuardrailLimits(),
        KILL_SWITCH_UPDATE,
        KillSwitchChange(by="carol", mode=KillSwitchMode.engaged, reason="agent under investigation"),
        result_type=GuardrailState,
        refused="the kill switch",
    )
    erin, erin_line = key_pair()
    dave, dave_line = key_pair()
    keyring = Keyring(people={"erin": [erin_line], "dave": [dave_line]})
    try:
        handle = await open_termination(incidents, policy, keyring, agent_id)
        await until_awaiting(handle, "terminate")
        _, first_question = await open_question(handle)
        # Dave reads the brief and signs it (as `stanch sign` prints it for the UI) while erin approves.
        dave_read_then = await signed_answer(handle, dave, "dave")
        await handle.signal("approve", await signed_answer(handle, erin, "erin"))

        await until_awaiting(handle, "terminate-past-guardrail")
        _, question = await open_question(handle)
        assert "kill switch engaged" in question.shown.recommendation
        assert question.shown.recommendation != first_question.shown.recommendation
        assert question.digest != first_question.digest
        # What dave signed then, pasted now; and an unsigned answer made from the brief read then (its
        # action and digest). Both are refused for what changed, not for the action's name.
        await handle.signal("approve", dave_read_then)
        await handle.signal(
            "approve",
            ApprovalAnswer(approver="dave", action=first_question.shown.action, digest=first_question.digest),
        )
        seen = await refusals(handle)
        assert len(seen) == 2, seen
        assert all("stale" in text and "read the brief again" in text for text in seen), seen
        assert agent_of(sandbox, agent_id)["state"] == "paused"  # archived; nothing irreversible yet
        assert lifecycle(sandbox, agent_id)["tokens"] == ["tok-api", "tok-chat"]

        await handle.signal("approve", await signed_answer(handle, dave, "dave"))
        result = await handle.result()
        assert result.final_state == "terminated"
        assert agent_of(sandbox, agent_id)["state"] == "terminated"
        assert lifecycle(sandbox, agent_id)["tokens"] == []
        assert len(refused_reasons(stanch, handle.id)) == 2
        details = decision_details(stanch, handle.id)
        assert details["gate2-decision"]["digest"] == question.digest
        assert details["gate2-decision"]["signed_by"].startswith("dave (signed, key SHA256:")
    finally:
        await settle_and_terminate(stanch.client, [guardrail_workflow_id(agent_id)])


# ---- a trusted service signing for the person it signed in (§6) -----------------------------------------------


async def test_the_console_signing_for_erin_is_accepted_as_erin_via_console_and_its_key_alone_proves_nobody(
    stanch: Running, incidents: Incidents, policy: Any
) -> None:
    sandbox = stanch.settings.platform_url
    agent_id, _ = retiring_agent(sandbox)
    erin, erin_line = key_pair()
    console, console_line = key_pair()
    keyring = Keyring(people={"erin": [erin_line]}, services={"console": [console_line]})
    handle = await open_termination(incidents, policy, keyring, agent_id)
    await until_awaiting(handle, "terminate")

    # The console's key claiming erin with no `via`, and erin's own key on a statement `via` the console.
    await handle.signal("approve", await signed_answer(handle, console, "erin"))
    await handle.signal("approve", await signed_answer(handle, erin, "erin", via="console"))
    seen = await refusals(handle)
    assert len(seen) == 2, seen
    assert "signature refused (unknown_key)" in seen[0] and "the service console's" in seen[0]
    assert "signature refused (unknown_key)" in seen[1] and "not one of console's keys" in seen[1]
    assert agent_of(sandbox, agent_id)["state"] == "active"

    await handle.signal("approve", await signed_answer(handle, console, "erin", via="console"))
    result = await handle.result()
    assert result.final_state == "terminated"
    assert agent_of(sandbox, agent_id)["state"] == "terminated"
    decided = [text for text in await entries(handle, "decision") if "approved terminate" in text]
    assert len(decided) == 1 and decided[0].startswith("erin, via console (signed, key SHA256:"), decided
    signed_by = decision_details(stanch, handle.id)["gate1-decision"]["signed_by"]
    assert signed_by.startswith("erin, via console (signed, key SHA256:")
    assert len(refused_reasons(stanch, handle.id)) == 2


# ---- the kill switch: a signed change is good once ---------------------------------------------------------------


async def test_a_signed_kill_switch_off_sent_again_once_the_switch_is_re_armed_is_refused_as_a_replay(
    stanch: Running,
) -> None:
    subsystem = f"ks-sig-{uuid.uuid4().hex[:8]}"
    erin, erin_line = key_pair()
    keyring = Keyring(people={"erin": [erin_line]})

    async def change(mode: KillSwitchMode, signed: SignedDecision | None = None) -> GuardrailState:
        state: GuardrailState = await update_guardrail(
            stanch.client,
            stanch.task_queue,
            subsystem,
            GuardrailLimits(),
            KILL_SWITCH_UPDATE,
            KillSwitchChange(by="erin", mode=mode, reason="maintenance window", signed=signed),
            result_type=GuardrailState,
            refused="the kill switch",
            signatures="destructive",
            keyring=keyring,
        )
        return state

    def signed_off(state: GuardrailState, run_id: str) -> SignedDecision:
        shown = kill_switch_shown(subsystem, state.mode.value, KillSwitchMode.off.value)
        statement = DecisionStatement(
            workflow_id=guardrail_workflow_id(subsystem),
            run_id=run_id,
            gate="kill-switch",
            action=shown.action,
            verdict="kill_switch_off",
            approver="erin",
            expires_at=state.as_of + timedelta(hours=1),
            digest=gate_digest(shown),
            nonce=uuid.uuid4().hex,
        )
        return sign(statement, erin)

    try:
        armed = await change(KillSwitchMode.armed)  # starts the guardrail, armed as the policy ships it
        assert armed.mode is KillSwitchMode.armed
        handle = stanch.client.get_workflow_handle(guardrail_workflow_id(subsystem))
        run_id = (await handle.describe()).run_id
        assert run_id is not None
        off = signed_off(armed, run_id)
        assert (await change(KillSwitchMode.off, off)).mode is KillSwitchMode.off
        assert (await change(KillSwitchMode.armed)).mode is KillSwitchMode.armed  # arming is never signed

        # Armed again, so the statement's digest (armed → off) matches once more: only its nonce tells.
        with pytest.raises(ApplicationError, match=r"already used once \(a replay\)"):
            await change(KillSwitchMode.off, off)
        state = await handle.query("state", result_type=GuardrailState)
        assert state.mode is KillSwitchMode.armed and state.mode_by == "erin"
        assert state.counters.kill_switch_changes == 3

        # A new signature over the same question is taken.
        assert (await change(KillSwitchMode.off, signed_off(state, run_id))).mode is KillSwitchMode.off
    finally:
        await settle_and_terminate(stanch.client, [guardrail_workflow_id(subsystem)])
