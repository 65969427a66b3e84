"""End to end on the real stack: the CLI signs decisions (issue 13). Incidents are opened with the signing
test policy (tests/policy.toml: signatures "destructive", the demo people's keys) as their own, and
decided by `stanch` subprocesses as a person runs them: a home without ~/.ssh, no terminal (so --yes or a
refusal), the committed demo keys.

- a destructive P0 termination: a forged `temporal workflow signal` is refused and audited; alice's key
  sent as bob is refused; without --yes and no terminal nothing is signed; alice and bob's signed approvals
  complete the two-person gate and the agent is terminated, both signatures in the decision's audit row;
- the `stanch sign` payload sent with `temporal workflow signal` (as the Temporal UI sends it) terminates;
- a signed rejection keeps the agent; an unsigned `stanch resolve` that would withdraw the destructive
  question is refused with the reason and a signed one resolves;
- `stanch triage --key` hands over with a signature over the runbook and target it sends;
- `stanch kill-switch off --key` on a guardrail the CLI starts with its policy's rules and keys: unsigned
  refused, signed accepted, engaging again never asks.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
from temporalio.client import WorkflowHandle
from temporalio.service import RPCError

from schemas.briefs import Brief, Timeline
from schemas.guardrail import guardrail_workflow_id
from schemas.incidents import IncidentPolicy
from schemas.severity import Severity
from stanch.ops.devstack import child_environment
from stanch.policy import load_policy
from stanch.settings import REPO_ROOT, Settings
from stanch.signing import fingerprint, load_private_key
from stanch.temporal_client import connect
from tests.helpers import Incidents, audit_rows, http_client
from tests.stack import agent, eventually, result_of, temporal_signal, terminate_running

pytestmark = pytest.mark.e2e

SIGNING_POLICY = REPO_ROOT / "tests" / "policy.toml"
DEV_KEYS = REPO_ROOT / "config" / "dev-keys"
STANCH = Path(sys.executable).parent / "stanch"


def key_of(person: str) -> str:
    return str(DEV_KEYS / person)


def fingerprint_of(person: str) -> str:
    return fingerprint(load_private_key(DEV_KEYS / person).public_key())


def stanch(settings: Settings, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`stanch` as a person runs it with no key of their own (a home without ~/.ssh) and no terminal; the
    signing test policy is its STANCH_CONFIG (a guardrail it starts takes that policy's keys)."""
    env = child_environment(settings)
    env.update({"HOME": str(home), "STANCH_CONFIG": str(SIGNING_POLICY)})
    for name in ("STANCH_SIGNING_KEY", "STANCH_SIGNING_PASSPHRASE"):
        env.pop(name, None)
    return subprocess.run(
        [str(STANCH), *args], env=env, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL
    )


def incident_policy(owners: list[str] | None = None) -> IncidentPolicy:
    """The signing policy as an incident holds it; `owners` replace the owner role's people (the demo people
    hold keys, the shipped owners do not)."""
    policy = load_policy(SIGNING_POLICY).incident_policy()
    if owners is None:
        return policy
    return policy.model_copy(update={"roles": {**policy.roles, "owner": owners}})


def retiring_agent(settings: Settings) -> str:
    agent_id = f"signed-end-{uuid.uuid4().hex[:8]}"
    http_client.put(
        f"{settings.platform_url}/agents/{agent_id}", json={"versions": ["v1", "v2"]}
    ).raise_for_status()
    http_client.put(
        f"{settings.platform_url}/agents/{agent_id}/lifecycle",
        json={"workspace": {"JOB.md": "answer invoices"}, "tokens": ["tok-1"], "secrets": ["CRM_KEY"]},
    ).raise_for_status()
    return agent_id


def open_termination(settings: Settings, agent_id: str, severity: Severity, owners: list[str]) -> str:
    async def start() -> str:
        incidents = Incidents(await connect(settings), settings.task_queue, load_policy(SIGNING_POLICY))
        handle: WorkflowHandle[Any, Any] = await incidents.open(
            "agent_termination",
            labels={"agent": agent_id},
            annotations={"summary": f"retire {agent_id}"},
            service="agents",
            severity=severity,
            target={"agent_id": agent_id},
            incident_policy=incident_policy(owners),
        )
        return handle.id

    return asyncio.run(start())


def brief(settings: Settings, workflow_id: str) -> Brief:
    async def query() -> Brief:
        handle = (await connect(settings)).get_workflow_handle(workflow_id)
        result: Brief = await handle.query("brief", result_type=Brief)
        return result

    return asyncio.run(query())


def asked(settings: Settings, workflow_id: str, action: str) -> bool:
    return any(item.shown.action == action for item in brief(settings, workflow_id).to_sign)


def timeline(settings: Settings, workflow_id: str, kind: str) -> list[str]:
    async def query() -> Timeline:
        handle = (await connect(settings)).get_workflow_handle(workflow_id)
        result: Timeline = await handle.query("timeline", result_type=Timeline)
        return result

    return [entry.text for entry in asyncio.run(query()).entries if entry.kind == kind]


def decision_details(settings: Settings, workflow_id: str) -> list[dict[str, Any]]:
    with psycopg.connect(settings.database_url) as conn:
        rows = conn.execute(
            "SELECT details FROM audit_log WHERE workflow_id = %s AND step_key LIKE %s AND outcome IN "
            "('approved', 'rejected') ORDER BY id",
            (workflow_id, "gate%-decision"),
        ).fetchall()
    return [row[0] for row in rows]


def cleanup(settings: Settings, *workflow_ids: str) -> None:
    for workflow_id in workflow_ids:
        with contextlib.suppress(RPCError):
            terminate_running(settings, [workflow_id])


def test_signed_approvals_by_alice_and_bob_complete_a_destructive_p0_gate_a_forged_one_does_nothing(
    stack: Settings, tmp_path: Path
) -> None:
    agent_id = retiring_agent(stack)
    incident = open_termination(stack, agent_id, Severity.P0, owners=["alice", "bob"])
    try:
        eventually(lambda: asked(stack, incident, "terminate"), "the termination question")
        [question] = [item for item in brief(stack, incident).to_sign if item.gate.startswith("gate")]
        assert question.signature_needed and question.shown.required_approvals == 2

        # Anyone reaching Temporal can type alice's name: refused, audited, nothing reaches the platform.
        temporal_signal(stack, incident, "approve", {"approver": "alice", "action": "terminate"})
        eventually(lambda: timeline(stack, incident, "refused"), "the forged approval refused")
        assert "needs a signed decision" in timeline(stack, incident, "refused")[0]
        eventually(
            lambda: [row for row in audit_rows(stack, incident) if row["outcome"] == "refused"],
            "its audit row",
        )

        # Alice's key for bob's answer: refused before anything enters history, with the reason.
        as_bob = stanch(
            stack, tmp_path, "approve", incident, "--as", "bob", "--key", key_of("alice"), "--yes"
        )
        assert as_bob.returncode == 1, as_bob.stderr
        assert "stanch: refused: signature refused (key_of_another_person)" in as_bob.stderr
        assert "alice's, not bob's" in as_bob.stderr

        # No terminal and no --yes: it shows what it would sign and signs nothing.
        unasked = stanch(
            stack, tmp_path, "approve", incident, "terminate", "--as", "alice", "--key", key_of("alice")
        )
        assert unasked.returncode == 2 and "pass --yes" in unasked.stderr
        assert f"Recommendation: {question.shown.recommendation}" in unasked.stderr
        assert f"digest {question.digest}" in unasked.stderr
        assert timeline(stack, incident, "decision") == []

        first = stanch(
            stack,
            tmp_path,
            "approve",
            incident,
            "terminate",
            "--as",
            "alice",
            "--key",
            key_of("alice"),
            "--yes",
        )
        assert first.returncode == 0, first.stderr
        assert "recorded; 1 more approver(s) needed" in first.stdout
        assert f"signed, key {fingerprint_of('alice')}" in first.stdout
        assert agent(stack, agent_id)["state"] == "active"

        # Bob names no action: the one question open is the one he signs.
        second = stanch(stack, tmp_path, "approve", incident, "--as", "bob", "--key", key_of("bob"), "--yes")
        assert second.returncode == 0, second.stderr
        assert "terminate approved (by bob" in second.stdout

        assert result_of(stack, incident).final_state == "terminated"
        assert agent(stack, agent_id)["state"] == "terminated"
        [details] = decision_details(stack, incident)
        assert f"alice (signed, key {fingerprint_of('alice')})" in details["signed_by"]
        assert f"bob (signed, key {fingerprint_of('bob')})" in details["signed_by"]
        assert details["digest"] == question.digest
        refused = [row for row in audit_rows(stack, incident) if row["outcome"] == "refused"]
        assert [(row["actor"], row["step_key"]) for row in refused] == [("alice", "refused-1")]
    finally:
        cleanup(stack, incident)


def test_the_payload_stanch_sign_prints_sent_with_temporal_workflow_signal_terminates(
    stack: Settings, tmp_path: Path
) -> None:
    agent_id = retiring_agent(stack)
    incident = open_termination(stack, agent_id, Severity.P1, owners=["alice", "bob"])
    try:
        eventually(lambda: asked(stack, incident, "terminate"), "the termination question")
        printed = stanch(
            stack, tmp_path, "sign", incident, "terminate", "--as", "alice", "--key", key_of("alice"), "--yes"
        )
        assert printed.returncode == 0, printed.stderr
        [line] = printed.stdout.splitlines()
        payload = json.loads(line)
        assert (payload["approver"], payload["action"]) == ("alice", "terminate")
        assert payload["signed"]["statement"]["verdict"] == "approve"
        assert "Send a Signal" in printed.stderr and "`approve`" in printed.stderr

        # As the Temporal UI's dialog or the temporal CLI sends it: JSON, the approver in the payload.
        temporal_signal(stack, incident, "approve", payload)
        assert result_of(stack, incident).final_state == "terminated"
        assert agent(stack, agent_id)["state"] == "terminated"
        assert timeline(stack, incident, "refused") == []
        assert any(
            f"alice (signed, key {fingerprint_of('alice')}) approved terminate" in text
            for text in timeline(stack, incident, "decision")
        )
    finally:
        cleanup(stack, incident)


def test_a_signed_rejection_keeps_the_agent(stack: Settings, tmp_path: Path) -> None:
    agent_id = retiring_agent(stack)
    incident = open_termination(stack, agent_id, Severity.P1, owners=["alice", "bob"])
    try:
        eventually(lambda: asked(stack, incident, "terminate"), "the termination question")
        rejected = stanch(
            stack,
            tmp_path,
            "reject",
            incident,
            "terminate",
            "--as",
            "bob",
            "--key",
            key_of("bob"),
            "--yes",
            "--comment",
            "still needed",
        )
        assert rejected.returncode == 0, rejected.stderr
        assert "terminate rejected (by bob; signed" in rejected.stdout
        assert result_of(stack, incident).final_state == "kept"
        assert agent(stack, agent_id)["state"] == "active"
        [details] = decision_details(stack, incident)
        assert details["signed_by"] == f"bob (signed, key {fingerprint_of('bob')})"
    finally:
        cleanup(stack, incident)


def test_an_unsigned_resolve_that_would_withdraw_a_destructive_question_is_refused_a_signed_one_resolves(
    stack: Settings, tmp_path: Path
) -> None:
    agent_id = retiring_agent(stack)
    incident = open_termination(stack, agent_id, Severity.P1, owners=["alice", "bob"])
    try:
        eventually(lambda: asked(stack, incident, "terminate"), "the termination question")
        unsigned = stanch(stack, tmp_path, "resolve", incident, "--as", "carol", "--note", "done by hand")
        assert unsigned.returncode == 1
        assert "no signing key" in unsigned.stderr and "sending it unsigned" in unsigned.stderr
        assert "stanch: refused: 'resolve' needs a signed decision" in unsigned.stderr
        assert brief(stack, incident).state == "awaiting_approval"

        signed = stanch(
            stack,
            tmp_path,
            "resolve",
            incident,
            "--as",
            "carol",
            "--key",
            key_of("carol"),
            "--yes",
            "--note",
            "ok",
        )
        assert signed.returncode == 0, signed.stderr
        assert "withdraw the question on terminate" in signed.stderr  # what it showed before signing
        assert f"marked resolved by carol; signed, key {fingerprint_of('carol')}" in signed.stdout
        assert result_of(stack, incident).final_state == "resolved"
        assert agent(stack, agent_id)["state"] == "active"
        steps = [(row["step_key"], row["outcome"]) for row in audit_rows(stack, incident)]
        assert steps == [
            ("gate1-requested", "pending"),
            ("resolve-refused-1", "refused"),
            ("gate1-withdrawn", "withdrawn"),
            ("resolved", "stood down"),
            ("closed", "resolved"),
        ]
    finally:
        cleanup(stack, incident)


def test_stanch_triage_signs_the_hand_over_it_sends(stack: Settings, tmp_path: Path) -> None:
    agent_id = f"signed-triage-{uuid.uuid4().hex[:6]}"
    http_client.put(
        f"{stack.platform_url}/agents/{agent_id}", json={"versions": ["v1", "v2"]}
    ).raise_for_status()

    async def start() -> str:
        incidents = Incidents(await connect(stack), stack.task_queue, load_policy(SIGNING_POLICY))
        _, triage = await incidents.agent_hallucination_triage(
            service=agent_id,
            summary=f"{agent_id} promised a refund",
            workflow_id="incident-triage-signed-{fingerprint}",
            incident_policy=incident_policy(),
        )
        return triage.incident_id

    triage_id = asyncio.run(start())
    child_id = ""
    try:
        eventually(lambda: brief(stack, triage_id).state == "awaiting_triage", "the triage to wait")
        done = stanch(
            stack,
            tmp_path,
            "triage",
            triage_id,
            "--runbook",
            "agent_emergency_stop",
            "--target",
            f"agent_id={agent_id}",
            "--by",
            "bob",
            "--key",
            key_of("bob"),
            "--yes",
        )
        assert done.returncode == 0, done.stderr
        assert f"hand over to 'agent_emergency_stop' on {triage_id}" in done.stderr
        assert f"Target: agent_id={agent_id}" in done.stderr
        assert f"(by bob; signed, key {fingerprint_of('bob')})" in done.stdout
        child_id = done.stdout.split(" as ", 1)[1].split()[0]
        assert result_of(stack, triage_id).final_state == "handed_over"
        eventually(lambda: agent(stack, agent_id)["state"] == "paused", "the agent to be paused")
    finally:
        cleanup(stack, triage_id, *([child_id] if child_id else []))


def test_turning_a_kill_switch_off_is_signed_on_a_guardrail_the_cli_starts_with_the_policys_keys(
    stack: Settings, tmp_path: Path
) -> None:
    subsystem = f"signed-{uuid.uuid4().hex[:6]}"
    try:
        unsigned = stanch(
            stack, tmp_path, "kill-switch", subsystem, "off", "--as", "alice", "--reason", "noisy"
        )
        assert unsigned.returncode == 1
        assert "sending it unsigned" in unsigned.stderr and "needs a signed decision" in unsigned.stderr

        signed = stanch(
            stack,
            tmp_path,
            "kill-switch",
            subsystem,
            "off",
            "--as",
            "alice",
            "--reason",
            "noisy",
            "--key",
            key_of("alice"),
            "--yes",
        )
        assert signed.returncode == 0, signed.stderr
        assert f"set the kill switch of {subsystem} from armed to off" in signed.stderr
        assert "kill switch off (set by alice: noisy)" in signed.stdout
        # Engaging it again adds a safety: no signature asked, none needed.
        engaged = stanch(
            stack, tmp_path, "kill-switch", subsystem, "engage", "--as", "bob", "--reason", "again"
        )
        assert engaged.returncode == 0, engaged.stderr
        assert "You are about to sign" not in engaged.stderr and "unsigned" not in engaged.stderr
    finally:
        cleanup(stack, guardrail_workflow_id(subsystem))
