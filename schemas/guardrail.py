"""What runbooks ask the per-subsystem guardrail, what it answers, and what it carries across runs.

The rules themselves are written out in `workflows/guardrail.py`; these are only the shapes.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel, Field

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
    kill_switch_default: bool = True


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
    """Input of the `set_kill_switch` update; audited with who and why."""

    by: str
    enabled: bool
    reason: str


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

    kill_switch: bool
    actions: list[RecordedAction] = Field(default_factory=list)
    verdicts: list[Verdict] = Field(default_factory=list, description="recent answers, oldest first")
    counters: GuardrailCounters = Field(default_factory=GuardrailCounters)
    generation: int = Field(0, description="how many times this guardrail has continued-as-new")


class GuardrailInput(BaseModel):
    subsystem: str
    limits: GuardrailLimits = Field(default_factory=GuardrailLimits)
    continue_as_new_after: int = Field(500, ge=1, description="handled updates per run")
    remembered_keys: int = Field(1000, ge=1, description="idempotency keys kept to answer repeats")
    memory: GuardrailMemory | None = None


class GuardrailRequest(BaseModel):
    """Input of the `ask_guardrail` activity: the guardrail is started with `limits` if it is not running."""

    subsystem: str
    check: ActionCheck
    limits: GuardrailLimits = Field(default_factory=GuardrailLimits)


class GuardrailState(BaseModel):
    """Output of the `state` query and the `set_kill_switch` update."""

    subsystem: str
    kill_switch: bool
    limits: GuardrailLimits
    as_of: datetime
    recent_actions: list[RecordedAction]
    restarts_in_last_hour: int
    critical_in_window: int
    last_action_at: datetime | None
    counters: GuardrailCounters
    remembered_keys: int
    generation: int
