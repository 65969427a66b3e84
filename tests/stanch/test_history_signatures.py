"""`stanch audit verify --history` re-verifies every signature in a history (issue 13 §7, §8).

The histories come from real termination incidents on the time-skipping server (real activities, the
sandbox, the session's Postgres), exported as the Temporal UI's Download is; edits are made to the exported
file the way a forger would: decode a payload's JSON, change it, encode it again.
"""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from temporalio.api.common.v1 import Payloads
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import WorkflowHandle, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter

from schemas.approvals import ApprovalAnswer, Decision, DecisionOutcome
from schemas.briefs import Brief
from schemas.guardrail import GuardrailInput, KillSwitchChange, KillSwitchMode
from schemas.signatures import Keyring, ToSign
from stanch.ops.history_signatures import check_signatures
from stanch.settings import get_settings
from stanch.signing import fingerprint, gate_digest, kill_switch_shown, sign, statement_for
from tests.helpers import Incidents, Running, cli
from tests.workflows.test_agent_lifecycle import agent_of, retiring_agent, until_awaiting
from tests.workflows.test_signed_decisions import key_pair, open_termination, refusals, signed_answer

NO_DATABASE = "postgresql://nobody@127.0.0.1:9/none"


def key_of(private: Ed25519PrivateKey) -> str:
    return fingerprint(private.public_key())


async def export(handle: WorkflowHandle[Any, Any], path: Path) -> Path:
    """The history as the Temporal UI's Download writes it."""
    return _written(path, (await handle.fetch_history()).to_json())


def _written(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def signed_events(path: Path, name: str, key: str) -> list[dict[str, Any]]:
    """The exported events of signal or update `name` whose payload is signed with `key`."""
    found = []
    for event in json.loads(path.read_text())["events"]:
        payload = _payload_of(event, name)
        if (
            payload is not None
            and _decoded(payload).get("signed", {})
            and (_decoded(payload)["signed"]["key"] == key)
        ):
            found.append(event)
    return found


def _payload_of(event: dict[str, Any], name: str) -> dict[str, Any] | None:
    signaled = event.get("workflowExecutionSignaledEventAttributes")
    if signaled and signaled["signalName"] == name:
        return dict(signaled["input"]["payloads"][0])
    accepted = event.get("workflowExecutionUpdateAcceptedEventAttributes")
    if accepted and accepted["acceptedRequest"]["input"]["name"] == name:
        return dict(accepted["acceptedRequest"]["input"]["args"]["payloads"][0])
    return None


def _decoded(payload: dict[str, Any]) -> dict[str, Any]:
    return dict(json.loads(base64.b64decode(payload["data"])))


def edited(path: Path, target: Path, name: str, key: str, change: Any) -> Path:
    """A copy of the history file with `change(body)` applied to the payload of the one `name` message
    signed with `key`, re-encoded as it was."""
    data = json.loads(path.read_text())
    hits = 0
    for event in data["events"]:
        payload = _payload_of(event, name)
        if payload is None or (_decoded(payload).get("signed") or {}).get("key") != key:
            continue
        body = _decoded(payload)
        change(body)
        encoded = base64.b64encode(json.dumps(body).encode()).decode()
        signaled = event.get("workflowExecutionSignaledEventAttributes")
        if signaled:
            signaled["input"]["payloads"][0]["data"] = encoded
        else:
            event["workflowExecutionUpdateAcceptedEventAttributes"]["acceptedRequest"]["input"]["args"][
                "payloads"
            ][0]["data"] = encoded
        hits += 1
    assert hits == 1, f"{hits} {name} message(s) signed with {key}"
    target.write_text(json.dumps(data))
    return target


def one_byte_off(body: dict[str, Any]) -> None:
    signature = bytearray(base64.b64decode(body["signed"]["signature"]))
    signature[10] ^= 0x01
    body["signed"]["signature"] = base64.b64encode(bytes(signature)).decode()


async def verify(path: Path, env: dict[str, str], *extra: str) -> tuple[int, str]:
    result = await cli(["audit", "verify", "--history", str(path), *extra], env)
    return result.exit_code, result.output


async def offline_verify(path: Path) -> tuple[int, str]:
    """`--signatures-only` with a database URL nothing listens on, and no Temporal (the file is read)."""
    get_settings.cache_clear()
    try:
        return await verify(
            path,
            {"STANCH_DATABASE_URL": NO_DATABASE, "STANCH_TEMPORAL_ADDRESS": "127.0.0.1:9"},
            "--signatures-only",
        )
    finally:
        get_settings.cache_clear()


# ---- a signed approval, a forged one refused -----------------------------------------------------------


async def signed_termination(
    stanch: Running, incidents: Incidents, policy: Any
) -> tuple[WorkflowHandle[Any, Any], Ed25519PrivateKey, Ed25519PrivateKey]:
    """A termination approved by erin's signed signal, after bob's key claiming erin was refused."""
    sandbox = stanch.settings.platform_url
    agent_id, _ = retiring_agent(sandbox)
    erin, erin_line = key_pair()
    bob, bob_line = key_pair()
    handle = await open_termination(
        incidents, policy, Keyring(people={"erin": [erin_line], "bob": [bob_line]}), agent_id
    )
    await until_awaiting(handle, "terminate")
    forged = await signed_answer(handle, bob, "bob")
    await handle.signal("approve", forged.model_copy(update={"approver": "erin"}))
    assert len(await refusals(handle)) == 1
    await handle.signal("approve", await signed_answer(handle, erin, "erin"))
    assert (await handle.result()).final_state == "terminated"
    assert agent_of(sandbox, agent_id)["state"] == "terminated"
    return handle, erin, bob


async def test_a_real_signed_run_verifies_and_lists_the_forged_signal_as_refused(
    stanch: Running, incidents: Incidents, policy: Any, cli_env: dict[str, str], tmp_path: Path
) -> None:
    handle, _erin, bob = await signed_termination(stanch, incidents, policy)
    path = await export(handle, tmp_path / "signed.json")
    [forged] = signed_events(path, "approve", key_of(bob))

    code, output = await verify(path, cli_env)
    assert code == 0, output
    assert f"signatures hold for {handle.id} run " in output
    assert "2 signed message(s), 1 holding, 1 refused, 0 keyring change(s), 1 signed audit write(s)" in output
    assert (
        f"refused (as the workflow did): signal approve (event {forged['eventId']}) from erin, "
        f"key {key_of(bob)}: signed by bob, sent as erin"
    ) in output
    assert "agree" in output and "intact" in output  # the cross-check and the chain ran after it

    # Offline: no database at all, the signatures only.
    code, offline = await offline_verify(path)
    assert code == 0, offline
    assert "signatures hold" in offline and "agree" not in offline


async def test_an_edited_signature_or_digest_of_the_accepted_approval_fails_naming_the_event_and_the_key(
    stanch: Running, incidents: Incidents, policy: Any, cli_env: dict[str, str], tmp_path: Path
) -> None:
    handle, erin, _bob = await signed_termination(stanch, incidents, policy)
    path = await export(handle, tmp_path / "signed.json")
    erin_key = key_of(erin)
    [accepted] = signed_events(path, "approve", erin_key)

    def other_digest(body: dict[str, Any]) -> None:
        body["signed"]["statement"]["digest"] = "f" * 64

    for name, change in (("signature", one_byte_off), ("digest", other_digest)):
        tampered = edited(path, tmp_path / f"{name}.json", "approve", erin_key, change)
        code, output = await verify(tampered, cli_env)
        assert code == 1, output
        assert "signatures DO NOT HOLD" in output
        assert f"records a decision signed with key {erin_key}" in output
        assert f"signal approve (event {accepted['eventId']}) from erin, key {erin_key}: " in output
        assert "bad_signature" in output
        # The rest of the history is untouched: its audit rows still agree.
        assert "agree" in output

    # The approver renamed in the payload (the statement still says erin): not erin's decision any more.
    def renamed(body: dict[str, Any]) -> None:
        body["approver"] = "bob"

    tampered = edited(path, tmp_path / "approver.json", "approve", erin_key, renamed)
    code, output = await offline_verify(tampered)
    assert code == 1, output
    assert "signed by erin, sent as bob" in output and erin_key in output


# ---- a key revoked by a `keys` signal: the keyring in force at each event -------------------------------


async def test_a_revoked_key_is_refused_after_the_keys_signal_and_the_check_uses_the_keyring_at_each_event(
    stanch: Running, incidents: Incidents, policy: Any, cli_env: dict[str, str], tmp_path: Path
) -> None:
    sandbox = stanch.settings.platform_url
    agent_id, _ = retiring_agent(sandbox)
    old, old_line = key_pair()
    new, new_line = key_pair()
    handle = await open_termination(incidents, policy, Keyring(people={"erin": [old_line]}), agent_id)
    await until_awaiting(handle, "terminate")

    # Before the revocation, erin's old key signs over an older digest: its signature holds, the workflow
    # refuses it as stale.
    brief = await handle.query("brief", result_type=Brief)
    to_sign = next(item for item in brief.to_sign if item.gate.startswith("gate"))
    older = to_sign.model_copy(update={"digest": "0" * 64})
    stale = statement_for(older, verdict="approve", approver="erin", now=brief.last_update_at, nonce="old-1")
    await handle.signal(
        "approve", ApprovalAnswer(approver="erin", action="terminate", signed=sign(stale, old))
    )
    await handle.signal("keys", Keyring(people={"erin": [new_line]}))
    # After it, the same key over the current digest: refused, as soon as the revocation is delivered.
    await handle.signal("approve", await signed_answer(handle, old, "erin"))
    seen = await refusals(handle)
    assert len(seen) == 2, seen
    assert "stale" in seen[0] and "not one of erin's keys" in seen[1]
    assert agent_of(sandbox, agent_id)["state"] == "active"

    # The new key decides, by update.
    answer = await signed_answer(handle, new, "erin")
    outcome = await handle.execute_update(
        "decide", Decision(**answer.model_dump(), approved=True), result_type=DecisionOutcome
    )
    assert outcome.accepted
    assert (await handle.result()).final_state == "terminated"

    path = await export(handle, tmp_path / "rotated.json")
    [revoked] = signed_events(path, "approve", key_of(old))[1:]
    [decided] = signed_events(path, "decide", key_of(new))
    code, output = await verify(path, cli_env)
    assert code == 0, output
    assert "3 signed message(s), 2 holding, 1 refused, 1 keyring change(s), 1 signed audit write(s)" in output
    assert (
        f"refused (as the workflow did): signal approve (event {revoked['eventId']}) from erin, "
        f"key {key_of(old)}: signature refused (unknown_key)"
    ) in output

    # Without the `keys` event, the history's own start keyring rules throughout: the accepted decision by
    # the new key no longer holds, and the old key's refused approval would.
    data = json.loads(path.read_text())
    data["events"] = [
        event
        for event in data["events"]
        if (event.get("workflowExecutionSignaledEventAttributes") or {}).get("signalName") != "keys"
    ]
    unrotated = tmp_path / "unrotated.json"
    unrotated.write_text(json.dumps(data))
    code, output = await offline_verify(unrotated)
    assert code == 1, output
    assert (
        f"accepted update decide (event {decided['eventId']}) from erin, key {key_of(new)}: "
        "signature refused (unknown_key)"
    ) in output
    assert "0 keyring change(s)" in output and "refused (as the workflow did)" not in output

    # The accepted update's signature edited: the validator would have refused it.
    tampered = edited(path, tmp_path / "decide.json", "decide", key_of(new), one_byte_off)
    code, output = await verify(tampered, cli_env)
    assert code == 1, output
    assert (
        f"accepted update decide (event {decided['eventId']}) from erin, key {key_of(new)}: "
        "signature refused (bad_signature)"
    ) in output


# ---- hand-built: a guardrail's history, which writes its keyring at the top of its input ----------------


def _payloads(value: Any) -> Payloads:
    return Payloads(payloads=pydantic_data_converter.payload_converter.to_payloads([value]))


def guardrail_history(change: KillSwitchChange, keyring: Keyring) -> WorkflowHistory:
    started = HistoryEvent(event_id=1, event_type=EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED)
    attrs = started.workflow_execution_started_event_attributes
    attrs.workflow_id, attrs.original_execution_run_id = "guardrail-agents", "run-1"
    attrs.workflow_type.name = "GuardrailWorkflow"
    attrs.input.CopyFrom(
        _payloads(GuardrailInput(subsystem="agents", signatures="destructive", keyring=keyring))
    )
    accepted = HistoryEvent(event_id=5, event_type=EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED)
    request = accepted.workflow_execution_update_accepted_event_attributes.accepted_request.input
    request.name = "set_kill_switch"
    request.args.CopyFrom(_payloads(change))
    return WorkflowHistory("guardrail-agents", [started, accepted])


def kill_switch_off(key: Ed25519PrivateKey, *, run_id: str) -> KillSwitchChange:
    shown = kill_switch_shown("agents", "armed", "off")
    statement = statement_for(
        ToSign(
            workflow_id="guardrail-agents",
            run_id=run_id,
            gate="kill-switch",
            verdicts=["kill_switch_off"],
            shown=shown,
            digest=gate_digest(shown),
            signature_needed=True,
        ),
        verdict="kill_switch_off",
        approver="erin",
        now=datetime(2026, 1, 1, tzinfo=UTC),
        nonce=uuid.uuid4().hex,
    )
    return KillSwitchChange(by="erin", reason="drill", mode=KillSwitchMode.off, signed=sign(statement, key))


def test_a_guardrail_kill_switch_change_is_checked_against_its_own_run_and_keyring() -> None:
    erin, erin_line = key_pair()
    keyring = Keyring(people={"erin": [erin_line]})
    check = check_signatures(guardrail_history(kill_switch_off(erin, run_id="run-1"), keyring))
    assert not check.problems and len(check.holding) == 1, check.summary()

    moved = check_signatures(guardrail_history(kill_switch_off(erin, run_id="run-0"), keyring))
    [problem] = moved.problems
    assert "accepted update set_kill_switch (event 5) from erin" in problem
    assert "signed for guardrail-agents (run run-0), not guardrail-agents (run run-1)" in problem

    stranger = check_signatures(guardrail_history(kill_switch_off(erin, run_id="run-1"), Keyring()))
    assert "signature refused (unknown_key)" in stranger.problems[0]


async def test_a_history_without_audit_writes_still_has_its_signatures_checked(tmp_path: Path) -> None:
    erin, erin_line = key_pair()
    history = guardrail_history(kill_switch_off(erin, run_id="run-1"), Keyring(people={"erin": [erin_line]}))
    path = _written(tmp_path / "guardrail.json", history.to_json())

    code, output = await offline_verify(path)
    assert code == 0, output
    assert "signatures hold for guardrail-agents run run-1: 1 signed message(s), 1 holding" in output

    # Without --signatures-only the cross-check has nothing to check, as before; the signatures were.
    get_settings.cache_clear()
    try:
        result = await cli(["audit", "verify", "--history", str(path)], {"STANCH_DATABASE_URL": NO_DATABASE})
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 1, result.output
    assert "signatures hold for guardrail-agents" in result.output
    assert "the history holds no audit write; nothing to cross-check" in result.output
