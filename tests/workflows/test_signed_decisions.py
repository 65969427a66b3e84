"""Signed decisions checked by the workflow (issue 13 §3): a destructive termination under the policy's
"destructive" mode, on the time-skipping server against the sandbox and the audit log in Postgres."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import psycopg
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from temporalio.client import WorkflowHandle

from schemas.approvals import ApprovalAnswer
from schemas.briefs import Brief, Timeline
from schemas.incidents import IncidentResult
from schemas.signatures import Keyring, Verdict
from stanch.signing import sign, statement_for
from tests.helpers import Incidents, Running, audit_rows
from tests.workflows.test_agent_lifecycle import agent_of, retiring_agent, until_awaiting


def key_pair() -> tuple[Ed25519PrivateKey, str]:
    private = Ed25519PrivateKey.generate()
    line = private.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    return private, line.decode()


async def open_termination(
    incidents: Incidents, policy: Any, keyring: Keyring, agent_id: str
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
        incident_policy=incident_policy,
    )


async def signed_answer(
    handle: WorkflowHandle[Any, Any], key: Ed25519PrivateKey, approver: str, verdict: Verdict = "approve"
) -> ApprovalAnswer:
    brief = await handle.query("brief", result_type=Brief)
    to_sign = next(item for item in brief.to_sign if item.gate.startswith("gate"))
    statement = statement_for(
        to_sign,
        verdict=verdict,
        approver=approver,
        now=brief.last_update_at,
        nonce=uuid.uuid4().hex,
        ttl=timedelta(hours=1),
    )
    return ApprovalAnswer(approver=approver, action=to_sign.shown.action, signed=sign(statement, key))


async def refusals(handle: WorkflowHandle[Any, Any]) -> list[str]:
    timeline = await handle.query("timeline", result_type=Timeline)
    return [entry.text for entry in timeline.entries if entry.kind == "refused"]


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
