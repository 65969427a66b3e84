"""Helpers for tests of keys reaching what runs (stanch keys, the guardrail activity): fresh key pairs, a
policy file giving people keys, and signed kill-switch changes and gate decisions as a client signs them."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from temporalio.client import Client, WorkflowHandle

from schemas.approvals import ApprovalAnswer, Decision
from schemas.briefs import Brief
from schemas.guardrail import (
    STATE_QUERY,
    GuardrailState,
    KillSwitchChange,
    KillSwitchMode,
    guardrail_workflow_id,
)
from schemas.signatures import DecisionStatement, SignatureMode, SignedDecision, ToSign, Verdict
from stanch.settings import REPO_ROOT
from stanch.signing import gate_digest, kill_switch_shown, load_private_key, sign, statement_for

SHIPPED_POLICY = REPO_ROOT / "config" / "stanch.toml"
# Workflow time on the time-skipping server runs ahead of the wall clock; a long expiry keeps signatures
# made from the brief's or the guardrail's own time valid for the test.
TEST_TTL = timedelta(hours=1)


def key_pair(comment: str = "") -> tuple[Ed25519PrivateKey, str]:
    """A new Ed25519 key and its OpenSSH public line, as `ssh-keygen -t ed25519 -C comment` makes them."""
    private = Ed25519PrivateKey.generate()
    line = private.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    return private, (line.decode() + (f" {comment}" if comment else ""))


def policy_with_keys(
    tmp_path: Path,
    keys: dict[str, list[str]],
    signatures: SignatureMode = "optional",
    name: str = "keys.toml",
) -> Path:
    """The shipped policy with these people's keys (each a person of it) and this signature mode."""
    lines = [f'extends = "{SHIPPED_POLICY}"', "[approvals]", f'signatures = "{signatures}"']
    for person, person_keys in keys.items():
        lines += [f"[people.{person}]", f"keys = {json.dumps(person_keys)}"]
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


async def signed_kill_switch_change(
    client: Client, subsystem: str, by: str, key: Ed25519PrivateKey, mode: KillSwitchMode = KillSwitchMode.off
) -> KillSwitchChange:
    """A kill-switch change signed as `stanch kill-switch ... --key` signs it: for the guardrail's current run
    and the move from its current mode."""
    handle = client.get_workflow_handle(guardrail_workflow_id(subsystem))
    state = await handle.query(STATE_QUERY, result_type=GuardrailState)
    run_id = (await handle.describe()).run_id
    assert run_id is not None
    shown = kill_switch_shown(subsystem, state.mode.value, mode.value)
    verdict = "kill_switch_off" if mode is KillSwitchMode.off else "kill_switch_disengage"
    statement = DecisionStatement(
        workflow_id=handle.id,
        run_id=run_id,
        gate="kill-switch",
        action=shown.action,
        verdict=verdict,
        approver=by,
        expires_at=state.as_of + TEST_TTL,
        digest=gate_digest(shown),
        nonce=uuid.uuid4().hex,
    )
    return KillSwitchChange(by=by, mode=mode, reason="tested", signed=sign(statement, key))


def signed_over(
    brief: Brief,
    to_sign: ToSign,
    approver: str,
    key: Ed25519PrivateKey,
    verdict: Verdict = "approve",
    via: str = "",
) -> SignedDecision:
    """`approver`'s signed `verdict` on one question the brief lists, made from the brief's own time (the
    time-skipping server's workflow time runs ahead of the wall clock), as a client signs it."""
    statement = statement_for(
        to_sign,
        verdict=verdict,
        approver=approver,
        now=brief.last_update_at,
        nonce=uuid.uuid4().hex,
        ttl=TEST_TTL,
        via=via,
    )
    return sign(statement, key)


async def signed_approval(
    handle: WorkflowHandle[Any, Any], approver: str, key: Ed25519PrivateKey
) -> Decision:
    """A `decide` approval of the pending gate, signed over what the brief shows now."""
    brief = await handle.query("brief", result_type=Brief)
    to_sign = next(item for item in brief.to_sign if item.gate.startswith("gate"))
    return Decision(
        approver=approver,
        action=to_sign.shown.action,
        approved=True,
        signed=signed_over(brief, to_sign, approver, key),
    )


DEV_KEYS = REPO_ROOT / "config" / "dev-keys"


def demo_key(person: str) -> Ed25519PrivateKey:
    """A person's committed demo key (config/dev-keys/<person>), the one tests/policy.toml gives them."""
    return load_private_key(DEV_KEYS / person)


async def demo_signed(
    handle: WorkflowHandle[Any, Any], answer: ApprovalAnswer, verdict: Verdict = "approve"
) -> ApprovalAnswer:
    """`answer` signed with its approver's demo key over the open question on its action, as
    `stanch approve <incident> <action> --as <approver> --key config/dev-keys/<approver>` signs it."""
    brief = await handle.query("brief", result_type=Brief)
    to_sign = next(
        item for item in brief.to_sign if item.shown.action == answer.action and verdict in item.verdicts
    )
    signed = signed_over(brief, to_sign, answer.approver, demo_key(answer.approver), verdict)
    return answer.model_copy(update={"signed": signed})
