"""Re-verifying every signed decision in a workflow's history, offline (issue 13 §7, §8).

The history alone is enough: it holds the keyring the workflow started with (its input), every `keys`
signal that replaced it, and every signed message with its statement and signature. No database, no
Temporal connection.

The rule:
- The keyring in force at an event is the started event's (an incident's `policy.keyring`, a guardrail's
  `keyring`; none: no keys), replaced by each `keys` signal in history order, as the workflow replaces it.
  A run started by continue-as-new carries its keyring in its input too.
- A signed message is a signal or an accepted update whose payload has a non-null `signed`. It *holds*
  when its signature verifies against a key of the approver it names in that keyring (or of the trusted
  service it names, `via`), its statement is for this workflow id and run id, its signed approver is the
  payload's approver (`approver`, or `by`) and its verdict is one the message can carry.
- Not holding is a problem for an accepted update: its validator refuses such a signature, so a true
  history cannot hold one. A signal that does not hold is refused by the workflow too (noted and audited),
  and forged attempts are expected in honest histories: it is listed as refused, not a problem — unless
  an audit write relies on it.
- Each audit row written (a `write_audit` input, or a row of an `audit_write_rows` batch) whose details
  record `signed_by` (each signer's key fingerprint) and `digest` needs, for each key, an earlier message
  signed by that key over one of those digests that holds: otherwise the audit log records a signed
  decision the history cannot show.

What this does not re-decide: expiry, replays and staleness are judged by the workflow against its own
state and clock; a signature that holds may still have been refused for them (the timeline says so).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHistory

from schemas.signatures import Keyring, SignedDecision
from stanch.history_timeline import audit_rows_requested, first_value
from stanch.ops.history_audit import audited_run
from stanch.signing import fingerprint_lines, person_of

KEYS_SIGNAL = "keys"
# The verdicts each message may carry; a statement signed to one verdict cannot be sent as another.
_VERDICTS: dict[str, set[str]] = {
    "approve": {"approve"},
    "reject": {"reject"},
    "resolve": {"resolve"},
    "run_runbook": {"run_runbook"},
    "set_kill_switch": {"kill_switch_off", "kill_switch_disengage"},
}
# How `stanch.signing.signer_text` names a key in an audit row's `signed_by`.
_SIGNED_KEY = re.compile(r"key (SHA256:[A-Za-z0-9+/]+)\)")


@dataclass
class SignedMessage:
    event_id: int
    kind: str  # "signal" | "update"
    name: str
    approver: str
    key: str
    digest: str
    reason: str = ""  # why it does not hold; empty when it holds

    @property
    def holds(self) -> bool:
        return not self.reason

    def label(self) -> str:
        return f"{self.kind} {self.name} (event {self.event_id}) from {self.approver or '?'}, key {self.key or '?'}"


@dataclass
class SignatureCheck:
    workflow_id: str
    run_id: str
    messages: list[SignedMessage] = field(default_factory=list)
    keyring_changes: int = 0
    signed_audit_writes: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def holding(self) -> list[SignedMessage]:
        return [message for message in self.messages if message.holds]

    @property
    def refused(self) -> list[SignedMessage]:
        """Signals whose signature does not hold: the workflow refused them as well."""
        return [message for message in self.messages if not message.holds and message.kind == "signal"]

    def summary(self) -> str:
        counts = (
            f"{len(self.messages)} signed message(s), {len(self.holding)} holding, {len(self.refused)} "
            f"refused, {self.keyring_changes} keyring change(s), {self.signed_audit_writes} signed audit write(s)"
        )
        refused = [
            f"  refused (as the workflow did): {message.label()}: {message.reason}"
            for message in self.refused
        ]
        if not self.problems:
            head = f"signatures hold for {self.workflow_id} run {self.run_id}: {counts}"
            return "\n".join([head, *refused])
        listed = [f"  - {problem}" for problem in self.problems]
        head = f"signatures DO NOT HOLD for {self.workflow_id} run {self.run_id} ({counts}):"
        return "\n".join([head, *listed, *refused])


def started_keyring(workflow_input: Any) -> Keyring:
    """The keyring a run started with: a guardrail's `keyring`, an incident's `policy.keyring`."""
    if not isinstance(workflow_input, dict):
        return Keyring()
    keyring = workflow_input.get("keyring")
    policy = workflow_input.get("policy")
    if keyring is None and isinstance(policy, dict):
        keyring = policy.get("keyring")
    try:
        return Keyring.model_validate(keyring or {})
    except ValidationError:
        return Keyring()


def _run_of(history: WorkflowHistory) -> tuple[str, str]:
    """This history's workflow id and run id: what a signed statement in it must name."""
    audited_id, audited_run_id = audited_run(history)
    started = history.events[0].workflow_execution_started_event_attributes if history.events else None
    workflow_id = (started.workflow_id if started else "") or audited_id or history.workflow_id
    run_id = audited_run_id or (started.original_execution_run_id if started else "")
    return workflow_id, run_id


def _message(
    event_id: int, kind: str, name: str, payload: dict[str, Any], keyring: Keyring, run: tuple[str, str]
) -> SignedMessage:
    approver = str(payload.get("approver") or payload.get("by") or "")
    raw = payload["signed"]
    try:
        signed = SignedDecision.model_validate(raw)
    except ValidationError as error:
        key = str(raw.get("key", "")) if isinstance(raw, dict) else ""
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        return SignedMessage(
            event_id, kind, name, approver, key, "", reason=f"malformed: {where}: {first['msg']}"
        )
    statement = signed.statement
    message = SignedMessage(event_id, kind, name, approver, signed.key, statement.digest)
    verification = person_of(keyring, signed)
    if not verification.ok:
        message.reason = f"signature refused ({verification.reason}): {verification.detail}"
    elif statement.approver != approver:
        message.reason = f"signed by {statement.approver}, sent as {approver}"
    elif (statement.workflow_id, statement.run_id) != run:
        message.reason = (
            f"signed for {statement.workflow_id} (run {statement.run_id}), not {run[0]} (run {run[1]})"
        )
    else:
        allowed = _VERDICTS.get(name)
        if name == "decide":
            allowed = {"approve"} if payload.get("approved") else {"reject"}
        if allowed is not None and statement.verdict not in allowed:
            message.reason = f"signed to {statement.verdict}, sent as {name}"
    return message


def check_signatures(history: WorkflowHistory) -> SignatureCheck:
    run = _run_of(history)
    check = SignatureCheck(workflow_id=run[0], run_id=run[1])
    keyring = Keyring()
    for event in history.events:
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
            keyring = started_keyring(first_value(event.workflow_execution_started_event_attributes.input))
        elif event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
            signaled = event.workflow_execution_signaled_event_attributes
            payload = first_value(signaled.input)
            if signaled.signal_name == KEYS_SIGNAL:
                try:
                    replacement = Keyring.model_validate(payload)
                except ValidationError:
                    continue  # the workflow could not have decoded it either: nothing replaced
                if fingerprint_lines(replacement) != fingerprint_lines(keyring):
                    check.keyring_changes += 1
                keyring = replacement
            elif isinstance(payload, dict) and payload.get("signed") is not None:
                check.messages.append(
                    _message(event.event_id, "signal", signaled.signal_name, payload, keyring, run)
                )
        elif event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
            request = event.workflow_execution_update_accepted_event_attributes.accepted_request.input
            payload = first_value(request.args)
            if isinstance(payload, dict) and payload.get("signed") is not None:
                message = _message(event.event_id, "update", request.name, payload, keyring, run)
                check.messages.append(message)
                if not message.holds:
                    check.problems.append(
                        f"accepted {message.label()}: {message.reason} (a validator refuses this "
                        f"signature, so the history was altered)"
                    )
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            attrs = event.activity_task_scheduled_event_attributes
            for row in audit_rows_requested(attrs.activity_type.name, first_value(attrs.input)):
                _check_audit_write(check, event.event_id, row)
    return check


def _check_audit_write(check: SignatureCheck, event_id: int, request: Any) -> None:
    """An audit row recording signers needs their signatures, holding, earlier in the history."""
    details = request.get("details") if isinstance(request, dict) else None
    if not isinstance(details, dict) or not details.get("signed_by"):
        return
    check.signed_audit_writes += 1
    step = request.get("step_key", "")
    digests = {digest.strip() for digest in str(details.get("digest", "")).split(",") if digest.strip()}
    keys = _SIGNED_KEY.findall(str(details["signed_by"]))
    if not keys:
        check.problems.append(
            f"audit write {step!r} (event {event_id}) records signed_by {details['signed_by']!r} with no key"
        )
    for key in keys:
        by_key = [message for message in check.messages if message.key == key]
        if any(message.holds and message.digest in digests for message in by_key):
            continue
        failing = "; ".join(
            f"{message.label()}: {message.reason or 'over another digest'}" for message in by_key
        )
        check.problems.append(
            f"audit write {step!r} (event {event_id}) records a decision signed with key {key} over "
            f"{', '.join(sorted(digests)) or 'no digest'}, but no signature by that key over it holds in the "
            f"history" + (f" ({failing})" if failing else "")
        )
