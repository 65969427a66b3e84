"""The CLI's signing (stanch/ops/signer.py and the commands that use it), without a stack: which key signs,
its passphrase (from the environment, a prompt, a real pseudo-terminal), which decision of a brief a command
answers, the statement it signs (checked by the workflow's own check_decision), what the person reads, and
the JSON the Temporal UI's dialogs take (decoded as the worker decodes it). Keys are real: ssh-keygen's and
the committed demo keys."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import subprocess
import sys
import termios
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import pydantic_data_converter
from typer.testing import CliRunner

from schemas.approvals import ApprovalAnswer, Decision, Resolution
from schemas.briefs import Brief
from schemas.signatures import GateShown, Keyring, ToSign
from schemas.triage import RunRunbook
from stanch.ops.cli import app
from stanch.ops.signer import (
    KEY_ENV,
    PASSPHRASE_ENV,
    Dialog,
    KeyChoice,
    Signer,
    SignerError,
    choose_key,
    confirmation_text,
    handover,
    kill_switch_decision,
    kill_switch_verdict,
    load_signing_key,
    payload_json,
    pick_gate,
    pick_question,
    signed_decision,
    unsigned_notice,
)
from stanch.settings import REPO_ROOT, get_settings
from stanch.signing import (
    Expected,
    check_decision,
    gate_digest,
    handover_shown,
    kill_switch_shown,
    load_private_key,
)

DEV_KEYS = REPO_ROOT / "config" / "dev-keys"
NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
STANCH = Path(sys.executable).parent / "stanch"


def demo_signer(person: str = "alice") -> Signer:
    return Signer(load_private_key(DEV_KEYS / person), DEV_KEYS / person)


def demo_keyring() -> Keyring:
    return Keyring(
        people={p: [(DEV_KEYS / f"{p}.pub").read_text().strip()] for p in ("alice", "bob", "carol")}
    )


def ssh_keygen(path: Path, *, passphrase: str = "", kind: str = "ed25519") -> Path:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", kind, "-N", passphrase, "-C", "test@laptop", "-f", str(path)], check=True
    )
    return path


def question(action: str = "terminate", gate: str = "gate1", **shown: object) -> ToSign:
    fields: dict[str, object] = {
        "action": action,
        "recommendation": f"{action} agent bot-1 once archived",
        "risk": "bot-1 keeps running with its tokens",
        "target": {"agent_id": "bot-1"},
        "required_approvers": ["owner"],
        "required_approvals": 2,
    }
    fields.update(shown)
    gate_shown = GateShown.model_validate(fields)
    return ToSign(
        workflow_id="incident-test-bot-1",
        run_id="run-1",
        gate=gate,
        verdicts=["approve", "reject"],
        shown=gate_shown,
        digest=gate_digest(gate_shown),
        signature_needed=True,
    )


def resolve_entry() -> ToSign:
    shown = GateShown(action="resolve", recommendation="resolve incident-test-bot-1")
    return ToSign(
        workflow_id="incident-test-bot-1",
        run_id="run-1",
        gate="resolve",
        verdicts=["resolve"],
        shown=shown,
        digest=gate_digest(shown),
        signature_needed=False,
    )


def brief_with(*to_sign: ToSign) -> Brief:
    return Brief(
        incident_id="incident-test-bot-1",
        runbook="agent_termination",
        severity="P0",
        service="agents",
        summary="retire bot-1",
        started_at=NOW,
        last_update_at=NOW,
        state="awaiting_approval",
        to_sign=list(to_sign),
    )


def workflow_refusal(
    signed: object, to_sign: ToSign, *, verdict: str, approver: str, now: datetime
) -> str | None:
    """What the workflow answers (stanch.signing.check_decision, as workflows/steps/signatures.py calls it)."""
    expected = Expected(
        workflow_id=to_sign.workflow_id,
        run_id=to_sign.run_id,
        gate=to_sign.gate,
        action=to_sign.shown.action,
        verdict=verdict,  # type: ignore[arg-type]
        approver=approver,
        digest=gate_digest(to_sign.shown),
    )
    return check_decision(
        signed,  # type: ignore[arg-type]
        expected=expected,
        keyring=demo_keyring(),
        now=now,
        seen=set(),
        signature_needed=True,
    )


# ---- which key -------------------------------------------------------------------------------------------


def test_the_key_is_the_flag_then_the_environment_then_the_default(tmp_path: Path) -> None:
    home = tmp_path / "home"
    default = home / ".ssh" / "id_ed25519"
    default.parent.mkdir(parents=True)
    ssh_keygen(default)
    flag, env = tmp_path / "flag", tmp_path / "env"
    environ = {KEY_ENV: str(env)}

    assert choose_key(flag, environ, home) == KeyChoice(flag, "--key")
    assert choose_key(None, environ, home) == KeyChoice(env, KEY_ENV)
    assert choose_key(None, {}, home) == KeyChoice(default, "the default")
    assert choose_key(None, {KEY_ENV: "  "}, home) == KeyChoice(default, "the default")
    assert not choose_key(None, {}, home).named and choose_key(flag, {}, home).named  # type: ignore[union-attr]


def test_no_key_named_and_no_default_key_means_unsigned(tmp_path: Path) -> None:
    assert choose_key(None, {}, tmp_path) is None
    assert "\n" not in unsigned_notice() and "unsigned" in unsigned_notice()


def test_a_named_key_that_does_not_exist_is_an_error_naming_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-key"
    for choice in (choose_key(missing, {}, tmp_path), choose_key(None, {KEY_ENV: str(missing)}, tmp_path)):
        assert choice is not None
        with pytest.raises(SignerError, match=f"cannot read the signing key {missing}.*from {choice.source}"):
            load_signing_key(choice, {}, ask=None)


def test_a_key_of_another_type_is_refused_naming_the_file(tmp_path: Path) -> None:
    rsa = ssh_keygen(tmp_path / "id_rsa", kind="rsa")
    with pytest.raises(SignerError, match=f"{rsa} is not Ed25519"):
        load_signing_key(KeyChoice(rsa, "--key"), {}, ask=None)


def test_the_demo_key_loads_with_ssh_keygens_fingerprint() -> None:
    signer = load_signing_key(KeyChoice(DEV_KEYS / "alice", "--key"), {}, ask=None)
    printed = subprocess.run(
        ["ssh-keygen", "-lf", str(DEV_KEYS / "alice.pub")], capture_output=True, text=True, check=True
    ).stdout.split()[1]
    assert signer.fingerprint == printed


# ---- passphrases -----------------------------------------------------------------------------------------


def test_an_encrypted_key_takes_its_passphrase_from_the_environment_or_the_prompt(tmp_path: Path) -> None:
    path = ssh_keygen(tmp_path / "id_ed25519", passphrase="s3cret words")
    choice = KeyChoice(path, "--key")
    public = subprocess.run(["ssh-keygen", "-lf", f"{path}.pub"], capture_output=True, text=True, check=True)
    fingerprint = public.stdout.split()[1]

    assert load_signing_key(choice, {PASSPHRASE_ENV: "s3cret words"}, ask=None).fingerprint == fingerprint
    asked: list[str] = []

    def ask(prompt: str) -> str:
        asked.append(prompt)
        return "s3cret words"

    assert load_signing_key(choice, {}, ask=ask).fingerprint == fingerprint
    assert asked == [f"Passphrase for {path}"]
    # The environment wins: a script never blocks on a prompt.
    assert load_signing_key(choice, {PASSPHRASE_ENV: "s3cret words"}, ask=lambda _: "wrong").fingerprint


def test_an_encrypted_key_without_a_terminal_or_a_passphrase_says_how_to_give_one(tmp_path: Path) -> None:
    path = ssh_keygen(tmp_path / "id_ed25519", passphrase="s3cret")
    with pytest.raises(SignerError, match=f"{path} is encrypted.*set {PASSPHRASE_ENV}"):
        load_signing_key(KeyChoice(path, "--key"), {}, ask=None)
    with pytest.raises(SignerError, match="wrong passphrase"):
        load_signing_key(KeyChoice(path, "--key"), {PASSPHRASE_ENV: "guess"}, ask=None)


def run_in_a_terminal(args: list[str], env: dict[str, str], answer: str) -> tuple[int, str]:
    """Run the stanch CLI in a real pseudo-terminal and type `answer` at its passphrase prompt once the
    terminal stops echoing (typed earlier, the prompt's own flush would discard it); its exit status and
    everything the terminal showed."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: the CLI, its stdin a terminal
        os.execve(str(STANCH), [str(STANCH), *args], env)
    shown = b""
    typed = False
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline:
            if not typed and b"Passphrase for" in shown and not termios.tcgetattr(fd)[3] & termios.ECHO:
                os.write(fd, answer.encode() + b"\n")
                typed = True
            ready, _, _ = select.select([fd], [], [], 0.05)
            if not ready:
                continue
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            shown += chunk
    finally:
        if time.monotonic() >= deadline:
            os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    return os.waitstatus_to_exitcode(status), shown.decode(errors="replace")


def test_in_a_terminal_the_passphrase_is_asked_hidden_and_a_wrong_one_is_refused(tmp_path: Path) -> None:
    path = ssh_keygen(tmp_path / "id_ed25519", passphrase="open sesame")
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        # Nothing listens here: once the key is open, the command stops at reaching Temporal.
        "STANCH_TEMPORAL_ADDRESS": "127.0.0.1:1",
    }
    args = ["approve", "incident-x", "rollback", "--as", "alice", "--key", str(path)]

    code, shown = run_in_a_terminal(args, env, "open sesame")
    assert f"Passphrase for {path}" in shown
    assert "open sesame" not in shown  # not echoed
    assert code == 1 and "cannot reach Temporal" in shown  # the key opened; it went on to the brief

    code, shown = run_in_a_terminal(args, env, "not it")
    assert code == 2 and "wrong passphrase" in shown and "cannot reach Temporal" not in shown


@pytest.fixture
def offline(tmp_path: Path) -> Iterator[dict[str, str]]:
    """The CLI's environment with nothing listening at its Temporal address and a home without ~/.ssh; the
    settings cache cleared, so this address is the one the in-process CLI reads."""
    get_settings.cache_clear()
    yield {"HOME": str(tmp_path), "STANCH_TEMPORAL_ADDRESS": "127.0.0.1:1"}
    get_settings.cache_clear()


def test_the_cli_refuses_a_named_key_it_cannot_load_before_it_sends_anything(
    tmp_path: Path, offline: dict[str, str]
) -> None:
    env = offline
    missing = tmp_path / "typo"
    for args in (
        ["approve", "incident-x", "rollback", "--as", "alice", "--key", str(missing)],
        ["resolve", "incident-x", "--as", "alice", "--key", str(missing)],
        ["kill-switch", "gateway", "off", "--as", "alice", "--reason", "x", "--key", str(missing)],
    ):
        result = CliRunner().invoke(app, args, env=env)
        assert result.exit_code == 2, result.output
        assert f"cannot read the signing key {missing}" in result.output
        assert "cannot reach Temporal" not in result.output
    result = CliRunner().invoke(
        app, ["approve", "incident-x", "--as", "alice"], env={**env, KEY_ENV: str(missing)}
    )
    assert result.exit_code == 2 and f"{missing}" in result.output and KEY_ENV in result.output


def test_without_any_key_the_cli_says_it_sends_unsigned_and_stanch_sign_refuses(
    offline: dict[str, str],
) -> None:
    env = offline
    approved = CliRunner().invoke(app, ["approve", "incident-x", "rollback", "--as", "alice"], env=env)
    assert unsigned_notice() in approved.output and "cannot reach Temporal" in approved.output
    signed = CliRunner().invoke(app, ["sign", "incident-x", "rollback", "--as", "alice"], env=env)
    assert signed.exit_code == 2 and "nothing to sign with" in signed.output


# ---- which decision --------------------------------------------------------------------------------------


def test_approve_answers_only_the_pending_action_the_golden_rule() -> None:
    gate, review = question("terminate"), question("send-customer-message", gate="review-tell-customer")
    assert pick_question(brief_with(gate, resolve_entry()), "terminate") == gate
    assert pick_question(brief_with(gate, resolve_entry()), None) == gate  # the one question open
    assert pick_question(brief_with(gate, review), "send-customer-message") == review
    with pytest.raises(
        SignerError, match="'rollback' was not recommended; the pending action is 'terminate'"
    ):
        pick_question(brief_with(gate), "rollback")
    with pytest.raises(
        SignerError, match=r"several questions are open .*'terminate', 'send-customer-message'"
    ):
        pick_question(brief_with(gate, review), None)
    # No question listed (nothing pending, or a worker from before signed decisions): the workflow says.
    assert pick_question(brief_with(resolve_entry()), "terminate") is None
    assert pick_gate(brief_with(gate, resolve_entry()), "resolve") == resolve_entry()
    assert pick_gate(brief_with(gate), "triage") is None


def test_a_signed_approval_is_what_the_workflow_accepts_and_binds_to_what_was_shown() -> None:
    gate = question()
    signed = signed_decision(gate, "approve", "alice", demo_signer(), NOW)
    statement = signed.statement
    assert (statement.workflow_id, statement.run_id, statement.gate) == (
        "incident-test-bot-1",
        "run-1",
        "gate1",
    )
    assert (statement.action, statement.verdict, statement.approver) == ("terminate", "approve", "alice")
    assert statement.expires_at == NOW + timedelta(minutes=5) and statement.digest == gate.digest
    assert workflow_refusal(signed, gate, verdict="approve", approver="alice", now=NOW) is None

    # The same signature once the question shows something else: stale. After five minutes: expired.
    changed = question(recommendation="terminate agent bot-1 now")
    assert "stale" in (workflow_refusal(signed, changed, verdict="approve", approver="alice", now=NOW) or "")
    late = NOW + timedelta(minutes=5)
    assert "expired" in (workflow_refusal(signed, gate, verdict="approve", approver="alice", now=late) or "")
    # Alice's signature sent as bob's answer: refused.
    refusal = workflow_refusal(signed, gate, verdict="approve", approver="bob", now=NOW)
    assert refusal == "signed by alice, sent as bob: sign as yourself"


def test_every_signed_decision_has_a_new_nonce() -> None:
    nonces = {
        signed_decision(question(), "approve", "alice", demo_signer(), NOW).statement.nonce for _ in range(20)
    }
    assert len(nonces) == 20 and all(len(nonce) == 32 for nonce in nonces)


def test_a_hand_over_signs_the_runbook_and_target_it_sends() -> None:
    shown = handover_shown("hand it to agent_emergency_stop with the agent", "agent_emergency_stop", {})
    listed = ToSign(
        workflow_id="incident-triage-x",
        run_id="run-7",
        gate="triage",
        verdicts=["run_runbook"],
        shown=shown,
        digest=gate_digest(shown),
        signature_needed=False,
    )
    sent = handover(listed, "agent_emergency_stop", {"agent_id": "bot-1"})
    assert sent.shown == handover_shown(shown.recommendation, "agent_emergency_stop", {"agent_id": "bot-1"})
    assert sent.digest == gate_digest(sent.shown) != listed.digest
    signed = signed_decision(sent, "run_runbook", "bob", demo_signer("bob"), NOW)
    assert workflow_refusal(signed, sent, verdict="run_runbook", approver="bob", now=NOW) is None
    other_target = handover(listed, "agent_emergency_stop", {"agent_id": "bot-2"})
    assert "stale" in (
        workflow_refusal(signed, other_target, verdict="run_runbook", approver="bob", now=NOW) or ""
    )


@pytest.mark.parametrize(
    ("current", "new", "verdict"),
    [
        ("armed", "off", "kill_switch_off"),
        ("engaged", "off", "kill_switch_off"),
        ("engaged", "armed", "kill_switch_disengage"),
        ("off", "off", None),
        ("armed", "armed", None),
        ("armed", "engaged", None),
        ("off", "armed", None),
        ("off", "engaged", None),
    ],
)
def test_only_a_kill_switch_move_that_undoes_a_safety_is_signed(
    current: str, new: str, verdict: str | None
) -> None:
    assert kill_switch_verdict(current, new) == verdict


def test_a_kill_switch_change_signs_the_guardrails_run_and_the_move() -> None:
    decision = kill_switch_decision(
        "guardrail-gateway", "run-3", "gateway", "engaged", "armed", "kill_switch_disengage"
    )
    assert decision.shown == kill_switch_shown("gateway", "engaged", "armed")
    assert decision.digest == gate_digest(decision.shown) and decision.gate == "kill-switch"
    signed = signed_decision(decision, "kill_switch_disengage", "carol", demo_signer("carol"), NOW)
    assert signed.statement.action == "kill switch armed" and signed.statement.run_id == "run-3"
    assert (
        workflow_refusal(signed, decision, verdict="kill_switch_disengage", approver="carol", now=NOW) is None
    )


# ---- what the person reads -------------------------------------------------------------------------------


def test_the_confirmation_shows_what_the_digest_covers_and_the_key() -> None:
    gate = question()
    text = confirmation_text(gate, "approve", "alice", demo_signer())
    for shown in (
        "as alice",
        "approve 'terminate' on incident-test-bot-1",
        "Recommendation: terminate agent bot-1 once archived",
        "Risk if no action: bot-1 keeps running with its tokens",
        "Target: agent_id=bot-1",
        "Who must approve: 2 different people of owner",
        "Signature needed by the policy: yes",
        f"run run-1, question gate1, digest {gate.digest}",
        f"Key: {demo_signer().fingerprint}",
    ):
        assert shown in text


def test_the_confirmation_writes_out_control_characters_from_the_alert() -> None:
    # A terminal escape that would erase the line and print another recommendation over it.
    gate = question(recommendation="roll back\x1b[2K\rdo nothing", target={"agent_id": "bot\u202e1"})
    text = confirmation_text(gate, "approve", "alice", demo_signer())
    assert "\x1b" not in text and "\\x1b[2K" in text
    assert "\u202e" not in text and "bot\\u202e1" in text


# ---- the Temporal UI's payloads --------------------------------------------------------------------------


def decoded_as_the_worker_does(text: str, model: type) -> object:
    """The JSON as `temporal workflow signal --input` or the UI sends it (json/plain), decoded by the
    pydantic data converter the worker runs."""
    payload = Payload(metadata={"encoding": b"json/plain"}, data=text.encode())
    [value] = pydantic_data_converter.payload_converter.from_payloads([payload], [model])
    return value


def test_the_payloads_are_one_line_of_json_the_worker_decodes_back_to_the_signed_decision() -> None:
    gate = question()
    signed = signed_decision(gate, "approve", "alice", demo_signer(), NOW)
    answer = ApprovalAnswer(approver="alice", action="terminate", comment="ok", signed=signed)
    line = payload_json(answer)
    assert "\n" not in line
    assert set(json.loads(line)) == {"approver", "action", "comment", "signed"}  # nothing unset in it
    decoded = decoded_as_the_worker_does(line, ApprovalAnswer)
    assert decoded == answer
    assert workflow_refusal(decoded.signed, gate, verdict="approve", approver="alice", now=NOW) is None  # type: ignore[attr-defined]
    assert json.loads(payload_json(answer, pretty=True)) == json.loads(line)
    assert "\n  " in payload_json(answer, pretty=True)

    decision = Decision(**answer.model_dump(), approved=True)
    assert decoded_as_the_worker_does(payload_json(decision), Decision) == decision
    resolution = Resolution(by="alice", note="fixed by hand", signed=signed)
    assert decoded_as_the_worker_does(payload_json(resolution), Resolution) == resolution
    hand_over = RunRunbook(by="bob", runbook="agent_emergency_stop", target={"agent_id": "b"}, signed=signed)
    assert decoded_as_the_worker_does(payload_json(hand_over), RunRunbook) == hand_over


def test_the_hint_names_the_dialog_and_the_signal_or_update() -> None:
    signed = signed_decision(question(), "approve", "alice", demo_signer(), NOW)
    signal = Dialog("signal", "approve").hint("incident-test-bot-1", signed)
    assert "Send a Signal" in signal and "`approve`" in signal and "temporal workflow signal" in signal
    assert "valid until 12:05:00 UTC" in signal
    update = Dialog("update", "decide").hint("incident-test-bot-1", signed)
    assert (
        "Send an Update" in update and "`decide`" in update and "temporal workflow update execute" in update
    )
