"""What runbooks ask the per-subsystem guardrail, what it answers, and what it carries across runs.

The rules themselves are written out in `workflows/guardrail.py`; these are only the shapes.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel, Field, computed_field, field_validator

from schemas.signatures import Keyring, SignatureMode, SignedDecision

# Names an operator or another process uses to reach a guardrail (Temporal UI, `temporal workflow update`).
GUARDRAIL_WORKFLOW = "guardrail"
CHECK_UPDATE = "check"
KILL_SWITCH_UPDATE = "set_kill_switch"
STATE_QUERY = "state"

# The restart limit is "per hour" in the policy file's own words, so its window is not configurable.
RESTART_KIND = "restart"
RESTART_WINDOW = timedelta(hours=1)


def guardrail_workflow_id(subsystem: str) -> str:
    return f"guardrail-{subsystem}"


class Risk(StrEnum):
    low = "low"
    medium = "medium"
    high = "high"
    critical = "critical"


class KillSwitchMode(StrEnum):
    """What a subsystem's kill switch does to destructive or critical automatic actions.

    - off: nothing; the other limits still apply (the seed's `kill_switch_enabled = false`).
    - armed: the shipped default (`kill_switch_enabled = true`): at most `critical_retries_per_window` in
      any `critical_window`; the next one needs approval.
    - engaged: every one needs approval, however few came before (a security incident, or a person).
    """

    off = "off"
    armed = "armed"
    engaged = "engaged"


def kill_switch_mode(value: object) -> object:
    """Before the modes the switch was a boolean: true (on) is armed, false is off. Policy files, recorded
    inputs and guardrail memories written then still decode."""
    if isinstance(value, bool):
        return KillSwitchMode.armed if value else KillSwitchMode.off
    return value


class GuardrailLimits(BaseModel):
    """One subsystem's limits, as resolved from the policy file (`Policy.guardrail_limits`)."""

    medium_interval: timedelta = Field(
        timedelta(minutes=10), description="at most one automatic action per interval for a medium ask"
    )
    high_restarts_per_hour: int = Field(3, ge=0, description="automatic restarts per rolling hour")
    critical_retries_per_window: int = Field(
        2, ge=0, description="critical or destructive actions per window while the kill switch is on"
    )
    critical_window: timedelta = timedelta(minutes=5)
    kill_switch_default: KillSwitchMode = Field(
        KillSwitchMode.armed, description="the mode a guardrail starts in; true/false mean armed/off"
    )

    @field_validator("kill_switch_default", mode="before")
    @classmethod
    def _old_boolean_default(cls, value: object) -> object:
        return kill_switch_mode(value)


class ActionCheck(BaseModel):
    """Input of the `check` update: one automatic action a runbook wants to take now.

    Fields are plain on purpose: a malformed ask is refused by the update validator with a sentence
    (see `problem`), not by a decoding error nobody can read.
    """

    requested_by: str = Field(description="workflow id of the runbook asking")
    idempotency_key: str = Field(description="workflow id + run id + step: a retried ask is counted once")
    action: str = Field(description="what would be done, for people: 'restart gateway'")
    kind: str = Field(description="restart, rollback, pause …; 'restart' counts against the hourly limit")
    risk: Risk
    reason: str = Field("", description="required for high and critical risk; kept with the action")
    destructive: bool = False

    def problem(self) -> str | None:
        """Why this ask is malformed, or None. Pure: the update validator and the runbook helper use it."""
        for name in ("requested_by", "idempotency_key", "action", "kind"):
            if not getattr(self, name).strip():
                return f"{name} must not be empty"
        if self.risk in (Risk.high, Risk.critical) and not self.reason.strip():
            return f"a {self.risk.value}-risk action ({self.action}) needs a documented reason"
        return None


class Ruling(StrEnum):
    allow = "allow"
    diagnose_only = "diagnose_only"
    needs_approval = "needs_approval"


class Verdict(BaseModel):
    """Output of the `check` update."""

    ruling: Ruling
    subsystem: str
    idempotency_key: str
    reason: str
    retry_after: timedelta | None = Field(
        None, description="when a needs_approval ask would pass on its own; None: not by waiting"
    )
    decided_at: datetime
    repeated: bool = Field(False, description="answered from memory: this key was asked before")

    @property
    def allowed(self) -> bool:
        return self.ruling is Ruling.allow


class RecordedAction(BaseModel):
    """An action the guardrail allowed; what the sliding windows count."""

    at: datetime
    requested_by: str
    idempotency_key: str
    action: str
    kind: str
    risk: Risk
    destructive: bool
    reason: str = ""

    @property
    def critical(self) -> bool:
        return self.risk is Risk.critical or self.destructive


class KillSwitchChange(BaseModel):
    """Input of the `set_kill_switch` update; audited with who and why.

    `mode` says what to set. Payloads from before the modes carry `enabled` instead (recorded histories, a
    person typing the old form): true arms the switch, false turns it off. Sending neither is refused.
    """

    by: str
    reason: str
    mode: KillSwitchMode | None = None
    enabled: bool | None = Field(None, description="old form: true = armed, false = off")
    # Turning the switch off or disengaging it undoes a safety: the policy may need it signed.
    signed: SignedDecision | None = None

    @property
    def target_mode(self) -> KillSwitchMode | None:
        if self.mode is not None or self.enabled is None:
            return self.mode
        return KillSwitchMode.armed if self.enabled else KillSwitchMode.off

    def problem(self) -> str | None:
        """Why this change is malformed, or None (the update validator's sentence)."""
        if not self.by.strip():
            return "by must name the operator"
        if not self.reason.strip():
            return "a kill-switch change needs a reason"
        if self.target_mode is None:
            return "say which mode: off, armed or engaged"
        if (
            self.mode is not None
            and self.enabled is not None
            and self.enabled is (self.mode is KillSwitchMode.off)
        ):
            return f"enabled={self.enabled} contradicts mode={self.mode.value}; send the mode alone"
        return None


class GuardrailCounters(BaseModel):
    """Lifetime totals of one guardrail, carried across continue-as-new."""

    asks: int = 0
    allowed: int = 0
    diagnose_only: int = 0
    needs_approval: int = 0
    repeated: int = 0
    kill_switch_changes: int = 0


class GuardrailMemory(BaseModel):
    """Everything a guardrail run hands to the next one when it continues-as-new."""

    kill_switch: KillSwitchMode
    mode_by: str | None = Field(None, description="who set the current mode; None: the policy's default")
    mode_reason: str | None = None
    actions: list[RecordedAction] = Field(default_factory=list)
    verdicts: list[Verdict] = Field(default_factory=list, description="recent answers, oldest first")
    counters: GuardrailCounters = Field(default_factory=GuardrailCounters)
    generation: int = Field(0, description="how many times this guardrail has continued-as-new")

    @field_validator("kill_switch", mode="before")
    @classmethod
    def _old_boolean_switch(cls, value: object) -> object:
        return kill_switch_mode(value)


class GuardrailInput(BaseModel):
    subsystem: str
    limits: GuardrailLimits = Field(default_factory=GuardrailLimits)
    continue_as_new_after: int = Field(500, ge=1, description="handled updates per run")
    remembered_keys: int = Field(1000, ge=1, description="idempotency keys kept to answer repeats")
    memory: GuardrailMemory | None = None
    # Who may sign a kill-switch change, and where a signature is needed (issue 13); "optional" with no keys
    # in inputs recorded before, which replay as they ran.
    signatures: SignatureMode = "optional"
    keyring: Keyring = Field(default_factory=Keyring)


class GuardrailRequest(BaseModel):
    """Input of the `ask_guardrail` activity: the guardrail is started with `limits` if it is not running."""

    subsystem: str
    check: ActionCheck
    limits: GuardrailLimits = Field(default_factory=GuardrailLimits)


class GuardrailState(BaseModel):
    """Output of the `state` query and the `set_kill_switch` update."""

    subsystem: str
    mode: KillSwitchMode
    limits: GuardrailLimits
    as_of: datetime
    recent_actions: list[RecordedAction]
    restarts_in_last_hour: int
    critical_in_window: int
    last_action_at: datetime | None
    counters: GuardrailCounters
    remembered_keys: int
    generation: int
    mode_by: str | None = Field(None, description="who set the current mode; None: the policy's default")
    mode_reason: str | None = None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def kill_switch(self) -> bool:
        """The switch's reading before the modes, kept for readers of that field: anything but off."""
        return self.mode is not KillSwitchMode.off
