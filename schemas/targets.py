"""What each runbook acts on, as a typed model: the target an alert's labels (or a human) must supply.

`IncidentInput.target` stays a `dict[str, str]` (recorded histories carry dicts, and a label is a string);
these models say which keys a runbook reads, which it cannot do without, and what a value must look like
to work at all. The intake validates a routed alert's target against its runbook's model (an alert that
fails goes to a triage incident instead of a runbook that would fail on it), the worker checks every
route's labels against the models at start-up, and the `run_runbook` update of a triage incident validates
the target a human types.

The mapping below is plain data so the intake, the CLI and the triage workflow can import it without
importing the workflow classes; each runbook class names the same model (`target_model`), and a test keeps
the two equal. It holds the catalogue's runbooks; an installed pack's runbooks are registered beside them
once, at process start-up (`register_target_models`, called by `stanch.packs.installed_packs`), before any
worker polls: the triage workflow reads this module passed through its sandbox, so what it consults is
fixed for the worker's life and never read from disk inside a workflow.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, StringConstraints

if TYPE_CHECKING:
    from stanch.policy import Policy, Route

# Names of things on the platform (an agent, a gateway, a channel, a template, a service) go into URL paths
# and workflow ids. DNS and Kubernetes cap such names at 253 characters; a path separator, a query or
# fragment mark, a percent sign or whitespace in one would reach a different URL than the one meant, so a
# name is letters, digits and `. _ - : @ + ~`, starting with a letter or digit.
MAX_TARGET_CHARS = 253
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@+~-]*$"
# A guardrail subsystem becomes the id `guardrail-<subsystem>`; the policy's own subsystem names follow this.
SUBSYSTEM_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"

Name = Annotated[str, StringConstraints(min_length=1, max_length=MAX_TARGET_CHARS, pattern=NAME_PATTERN)]
Subsystem = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_TARGET_CHARS, pattern=SUBSYSTEM_PATTERN)
]
# Words a runbook only shows or matches leniently (a customer's name, a role, a priority it falls back from).
Text = Annotated[str, StringConstraints(min_length=1, max_length=MAX_TARGET_CHARS)]


def _a_number(value: str) -> str:
    # escalation_to_human reads it with float(); anything else would fail the runbook on its first step.
    try:
        float(value)
    except ValueError:
        raise ValueError("must be a number, e.g. 0.62") from None
    return value


Score = Annotated[Text, AfterValidator(_a_number)]


class Target(BaseModel):
    """A field the runbook does not read is refused: it would be a typo silently ignored."""

    model_config = ConfigDict(extra="forbid")


class AgentTarget(Target):
    agent_id: Name


class AgentStopTarget(AgentTarget):
    customer: Text | None = None


class AgentOnboardingTarget(AgentTarget):
    role: Text | None = None
    tools: Text | None = None  # comma-separated


class AgentUpgradeTarget(AgentTarget):
    to_version: Name


class HandoffTarget(Target):
    # Without an agent the handoff names the incident's service as its subject.
    agent_id: Name | None = None
    trigger: Text | None = None
    priority: Text | None = None
    options: Text | None = None  # comma-separated
    recommendation: Text | None = None
    quality_score: Score | None = None


class SecurityTarget(AgentTarget):
    kind: Text | None = None
    subsystem: Subsystem | None = None


class ChannelTarget(Target):
    channel: Name
    customer: Text | None = None


class ChannelDowntimeTarget(ChannelTarget):
    runtime: Name | None = None
    subsystem: Subsystem | None = None


class TemplateTarget(ChannelTarget):
    template: Name
    backup_template: Name | None = None


class GatewayTarget(Target):
    gateway: Name


class GatewayRestartTarget(GatewayTarget):
    subsystem: Subsystem | None = None


class ResourcePressureTarget(GatewayRestartTarget):
    risk: Text | None = None  # low or medium; anything else is treated as medium


class SessionTarget(GatewayTarget):
    session: Name


class WarRoomTarget(Target):
    # Without a service label the incident's own service is the one in crisis.
    service: Name | None = None
    priority: Text | None = None
    feature: Name | None = None
    issue: Text | None = None


class RollbackTarget(Target):
    service: Name | None = None
    kind: Text | None = None  # code, database or infrastructure; the runbook pages on anything else


class NoTarget(Target):
    """A runbook that acts on nothing outside Stanch (the dead man's switch only watches and pages)."""


# One entry per runbook a route may start (workflows.registry.RUNBOOKS); a test keeps them equal.
TARGET_MODELS: dict[str, type[Target]] = {
    "agent_emergency_stop": AgentStopTarget,
    "agent_onboarding": AgentOnboardingTarget,
    "agent_upgrade": AgentUpgradeTarget,
    "agent_termination": AgentTarget,
    "escalation_to_human": HandoffTarget,
    "security_incident": SecurityTarget,
    "gateway_safe_restart": GatewayRestartTarget,
    "retry_storm": GatewayTarget,
    "resource_pressure": ResourcePressureTarget,
    "lost_session": SessionTarget,
    "zombie_gateway": GatewayRestartTarget,
    "war_room": WarRoomTarget,
    "rollback": RollbackTarget,
    "channel_downtime": ChannelDowntimeTarget,
    "number_banned": ChannelTarget,
    "template_rejected": TemplateTarget,
    "dead_mans_switch": NoTarget,
}

# The catalogue's runbooks only; `runbook_names()` adds the installed packs'.
RUNBOOK_NAMES: tuple[str, ...] = tuple(sorted(TARGET_MODELS))

# The installed packs' runbooks (besides the catalogue's) → the target model their class names.
PACK_TARGET_MODELS: dict[str, type[BaseModel]] = {}


def register_target_models(models: Mapping[str, type[BaseModel]]) -> None:
    """Make the packs' runbooks known to the intake's target check, the triage hand-over and the console.

    Called once per process at start-up with every installed pack's runbooks; the catalogue's own entries
    are left as they are (its pack names the same models, a test keeps them equal). A name registered
    before with another model is refused: two packs cannot define one runbook (stanch.packs.combined)."""
    for runbook, model in models.items():
        if runbook in TARGET_MODELS:
            continue
        known = PACK_TARGET_MODELS.get(runbook)
        if known is not None and known is not model:
            raise ValueError(f"runbook {runbook!r} already has the target model {known.__qualname__}")
        PACK_TARGET_MODELS[runbook] = model


def runbook_names() -> tuple[str, ...]:
    """Every runbook a route may start or a human may hand a triage incident to: catalogue and packs."""
    return tuple(sorted({*TARGET_MODELS, *PACK_TARGET_MODELS}))


def target_model_for(runbook: str) -> type[BaseModel] | None:
    """The target model of a runbook a route may start; None for anything else (triage, guardrail …)."""
    return TARGET_MODELS.get(runbook) or PACK_TARGET_MODELS.get(runbook)


def required_fields(model: type[BaseModel]) -> list[str]:
    return [name for name, field in model.model_fields.items() if field.is_required()]


def route_target_problem(route: Route) -> str | None:
    """Why this route's labels cannot give its runbook a target, as `field: problem`; None when they can.

    A required field must come from `target_labels`: an optional label may be missing from an alert, and
    the runbook would then fail on its first step. A label mapped to a field the model does not have would
    make every alert of the route fail the model (and go to triage).
    """
    model = target_model_for(route.runbook)
    if model is None:
        return None  # an unknown runbook is check_runbooks' business; a runbook without a model takes any
    for field in required_fields(model):
        if field not in route.target_labels:
            where = "optional_target_labels" if field in route.optional_target_labels else "target_labels"
            return f"{where}: runbook {route.runbook!r} requires target field {field!r} in target_labels"
    for key in ("target_labels", "optional_target_labels"):
        for field in getattr(route, key):
            if field not in model.model_fields:
                known = ", ".join(model.model_fields)
                return (
                    f"{key}.{field}: runbook {route.runbook!r} has no target field {field!r} (it has {known})"
                )
    return None


def check_route_targets(policy: Policy) -> str | None:
    """The first route whose labels do not fit its runbook's target model, as one line; None if all fit."""
    for where, route in policy.keyed_routes():
        problem = route_target_problem(route)
        if problem:
            return f"{where} ({route.name!r}).{problem}"
    return None
