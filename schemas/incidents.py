"""What starts a runbook and what it ends with."""

from __future__ import annotations

import json
from collections import OrderedDict
from contextlib import suppress
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    model_validator,
)

from schemas.alerts import Alert
from schemas.approvals import ApprovalOutcome
from schemas.guardrail import GuardrailLimits
from schemas.severity import Severity
from schemas.signatures import Keyring, SignatureMode


class EscalationLevel(BaseModel):
    name: str
    notify: list[str] = Field(default_factory=list)
    after: timedelta = timedelta(minutes=30)


# ---- people: who is reached, on which kind of channel --------------------------------------------------


class ChannelKind(StrEnum):
    """How urgently a channel reaches a person; the incident's priority picks the kinds (seed 004)."""

    instant = "instant"  # the phone in the pocket: Telegram, SMS, a paging app
    cockpit = "cockpit"  # where the day's work is read: the ops dashboard, a team channel
    email = "email"


class PersonChannels(BaseModel):
    """One person's channels by kind, each a list of `[channels.*]` names tried in order until one takes it."""

    instant: list[str] = Field(default_factory=list)
    cockpit: list[str] = Field(default_factory=list)
    email: list[str] = Field(default_factory=list)

    def of_kind(self, kind: ChannelKind) -> list[str]:
        channels: list[str] = getattr(self, kind.value)
        return channels


class ResponseTargets(BaseModel):
    """How soon a human must respond (acknowledge, decide or resolve) to an incident of each severity;
    None: no target. A missed target moves the incident one level up its escalation ladder."""

    P0: timedelta | None = timedelta(minutes=5)
    P1: timedelta | None = timedelta(minutes=60)
    P2: timedelta | None = timedelta(hours=4)
    P3: timedelta | None = None

    def for_severity(self, severity: Severity) -> timedelta | None:
        target: timedelta | None = getattr(self, severity.value)
        return target


# IncidentPolicy objects decoded from JSON, by their canonical JSON: see IncidentPolicy.shared_when_equal.
_decoded_policies: OrderedDict[str, IncidentPolicy] = OrderedDict()
# Distinct policies kept: one per policy version a worker's incidents started under.
DECODED_POLICIES_KEPT = 32


class IncidentPolicy(BaseModel):
    """The slice of the policy file an incident needs, copied into its input so history shows what ruled.

    Frozen, and decoded once per distinct content (`shared_when_equal`): every parked incident keeps its
    input for its whole life, and ~10 KB of policy per incident (more with many people and keys) was most of
    what a parked runbook held beyond a bare workflow (bench.parked, issue 15)."""

    model_config = ConfigDict(frozen=True)

    roles: dict[str, list[str]] = Field(
        default_factory=dict, description="role → people who hold it; no roles at all: anyone may decide"
    )
    escalation: list[EscalationLevel] = Field(
        default_factory=lambda: [EscalationLevel(name="team-lead", notify=["team-lead"])]
    )
    approval_timeout: timedelta = timedelta(minutes=30)
    # After the last level: re-page it this often while the incident is `unattended` ...
    repeat_every: timedelta = timedelta(minutes=30)
    # ... an acknowledgement holds the clock this long, then the ladder resumes ...
    acknowledge_holds: timedelta = timedelta(minutes=30)
    # ... and this long after the question was asked, the gate closes on its safe default.
    give_up_after: timedelta = timedelta(hours=24)
    # "review": every customer message waits for a human's approval beside the runbook (see
    # workflows/steps/customer_message.py); "send": sent at once, as every input recorded before the key did.
    customer_messages: Literal["send", "review"] = "send"
    # Inputs recorded before response targets existed decode with the defaults (their runs ignore them).
    response_targets: ResponseTargets = Field(default_factory=ResponseTargets)
    guardrail_defaults: GuardrailLimits = Field(default_factory=GuardrailLimits)
    guardrail_subsystems: dict[str, GuardrailLimits] = Field(default_factory=dict)
    # People (name → channels by kind), so history shows who could be reached when the incident opened.
    # Empty in inputs recorded before people existed; they still decode and replay.
    people: dict[str, PersonChannels] = Field(default_factory=dict)
    # Where decisions must be signed, and the keys they are checked against (issue 13). Inputs recorded
    # before signatures existed decode as "optional" with no keys: their runs decide as they did.
    signatures: SignatureMode = "optional"
    keyring: Keyring = Field(default_factory=Keyring)

    @model_validator(mode="wrap")
    @classmethod
    def shared_when_equal(
        cls, data: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo
    ) -> IncidentPolicy:
        """From JSON (a workflow's input decoded by the worker), equal content gives the same object.

        Only JSON input is shared: its data is plain JSON, so its canonical text is its identity. The object
        is frozen and nothing mutates its lists or dicts (workflow code reads its policy), so sharing is safe,
        and replay sees the same values either way."""
        if info.mode != "json" or not isinstance(data, dict):
            return handler(data)
        key = json.dumps(data, sort_keys=True, separators=(",", ":"))
        shared = _decoded_policies.get(key)
        if shared is None:
            shared = handler(data)
            # Workflow tasks decode on the worker's threads: popitem is one step under the GIL, and a
            # thread that finds the oldest already evicted by another has nothing left to do.
            if len(_decoded_policies) >= DECODED_POLICIES_KEPT:
                with suppress(KeyError):
                    _decoded_policies.popitem(last=False)  # the oldest policy seen
            _decoded_policies[key] = shared
        return shared

    def guardrail_limits(self, subsystem: str) -> GuardrailLimits:
        """The limits the policy sets for one subsystem's guardrail."""
        return self.guardrail_subsystems.get(subsystem, self.guardrail_defaults)


class IncidentInput(BaseModel):
    incident_id: str
    runbook: str
    severity: Severity
    service: str
    summary: str
    alert: Alert
    target: dict[str, str] = Field(
        default_factory=dict, description="what the runbook acts on, e.g. agent_id"
    )
    policy: IncidentPolicy = Field(default_factory=IncidentPolicy)


class ActionTaken(BaseModel):
    action: str
    by: str
    at: datetime
    outcome: str


class IncidentResult(BaseModel):
    incident_id: str
    runbook: str
    final_state: str
    actions: list[ActionTaken] = Field(default_factory=list)
    approval: ApprovalOutcome | None = None
    resolved_by: str | None = None
    finished_at: datetime
