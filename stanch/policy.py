"""The policy file: who approves, how escalation runs, which runbook each alert starts, and the guardrails' limits.

Loaded and validated once at start-up by every process; unknown keys are errors, so a typo cannot
silently switch a rule off.
"""

from __future__ import annotations

import re
import sys
import tomllib
from collections.abc import Iterable, Mapping
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from schemas.guardrail import GuardrailLimits, KillSwitchMode, kill_switch_mode
from schemas.incidents import ChannelKind, EscalationLevel, IncidentPolicy, PersonChannels, ResponseTargets
from schemas.severity import Severity
from schemas.signatures import Keyring, SignatureMode
from schemas.systems import SystemName
from stanch.signing import SigningKeyError, parse_public_key


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ServiceSigner(Strict):
    """A trusted service (the console) that signs decisions for the people it signed in (issue 13 §6)."""

    keys: list[str] = Field(min_length=1, description="OpenSSH one-line Ed25519 public keys")
    demo: bool = Field(False, description="every key of this service is a committed demo key")

    @field_validator("keys")
    @classmethod
    def _keys_parse(cls, keys: list[str]) -> list[str]:
        return _parsed_keys(keys)


class ApprovalSettings(Strict):
    timeout_minutes: float = Field(30, gt=0)
    # Where a decision must be signed (docs in config/stanch.toml): "required" everywhere, "destructive"
    # where it can destroy or undo a safety, "optional" nowhere (a signature given is still checked).
    signatures: SignatureMode = "destructive"
    services: dict[str, ServiceSigner] = Field(default_factory=dict)


class EscalationStep(Strict):
    name: str
    notify: list[str] = Field(default_factory=list)
    after_minutes: float = Field(30, gt=0)


class EscalationPolicy(Strict):
    """What happens when the ladder runs out or an acknowledgement goes quiet (never silence)."""

    repeat_every_minutes: float = Field(30, gt=0)
    acknowledge_holds_minutes: float = Field(30, gt=0)
    give_up_after_hours: float = Field(24, gt=0)


class ResponseTargetSettings(Strict):
    """Minutes within which a human must respond to an incident of each severity; 0: no target."""

    P0_minutes: float = Field(5, ge=0)
    P1_minutes: float = Field(60, ge=0)
    P2_minutes: float = Field(240, ge=0)
    P3_minutes: float = Field(0, ge=0)

    def targets(self) -> ResponseTargets:
        def target(minutes: float) -> timedelta | None:
            return timedelta(minutes=minutes) if minutes else None

        return ResponseTargets(
            P0=target(self.P0_minutes),
            P1=target(self.P1_minutes),
            P2=target(self.P2_minutes),
            P3=target(self.P3_minutes),
        )


class DedupeBy(StrEnum):
    fingerprint = "fingerprint"
    group_key = "group_key"
    labels = "labels"


class Route(Strict):
    name: str
    runbook: str
    severity: Severity = Severity.P2
    match: dict[str, str] = Field(default_factory=dict, description="label → regex, all must match in full")
    dedupe_by: DedupeBy = DedupeBy.fingerprint
    dedupe_labels: list[str] = Field(default_factory=list)
    target_labels: dict[str, str] = Field(
        default_factory=dict, description="runbook target field → alert label that must carry it"
    )
    optional_target_labels: dict[str, str] = Field(default_factory=dict)

    @field_validator("match")
    @classmethod
    def _regexes_compile(cls, match: dict[str, str]) -> dict[str, str]:
        for label, pattern in match.items():
            try:
                re.compile(pattern)
            except re.error as error:
                raise ValueError(f"match.{label}: invalid regex {pattern!r}: {error}") from None
        return match

    def matches(self, labels: dict[str, str]) -> bool:
        return all(re.fullmatch(pattern, labels.get(label, "")) for label, pattern in self.match.items())


class GuardrailRules(Strict):
    """Limits of the per-subsystem guardrail; a key left out inherits (subsystem → defaults → built-in)."""

    medium_interval_minutes: float | None = Field(None, gt=0)
    high_restarts_per_hour: int | None = Field(None, ge=0)
    critical_retries_per_window: int | None = Field(None, ge=0)
    critical_window_minutes: float | None = Field(None, gt=0)
    kill_switch_default: KillSwitchMode | None = Field(
        None, description='"armed" (the default), "engaged" or "off"; true and false still mean armed and off'
    )

    @field_validator("kill_switch_default", mode="before")
    @classmethod
    def _old_boolean_switch(cls, value: object) -> object:
        return kill_switch_mode(value)

    def applied_to(self, limits: GuardrailLimits) -> GuardrailLimits:
        changes: dict[str, object] = {
            "medium_interval": _minutes(self.medium_interval_minutes),
            "high_restarts_per_hour": self.high_restarts_per_hour,
            "critical_retries_per_window": self.critical_retries_per_window,
            "critical_window": _minutes(self.critical_window_minutes),
            "kill_switch_default": self.kill_switch_default,
        }
        return limits.model_copy(update={key: value for key, value in changes.items() if value is not None})


def _minutes(value: float | None) -> timedelta | None:
    return None if value is None else timedelta(minutes=value)


class GuardrailSettings(Strict):
    defaults: GuardrailRules = Field(default_factory=GuardrailRules)
    subsystems: dict[str, GuardrailRules] = Field(default_factory=dict)

    @field_validator("subsystems")
    @classmethod
    def _names_fit_a_workflow_id(cls, subsystems: dict[str, GuardrailRules]) -> dict[str, GuardrailRules]:
        for name in subsystems:
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
                raise ValueError(f"subsystem name {name!r}: use letters, digits, '-', '_' or '.'")
        return subsystems


# ---- people and roles ----------------------------------------------------------------------------------
# A role is a list of people; a person is where they are reached, by kind of channel. Runbooks ask roles to
# decide and notify roles (the audience "on-call" is the role `oncall`); the notify activity pages each of a
# role's people on the kinds the incident's priority picks (`[notify.kinds]`). A person's `keys` are the
# Ed25519 public keys their signed decisions are checked against (issue 13, stanch/signing.py); later keys
# of a person (sign-in) join `Person` here.

ON_CALL_ROLE = "oncall"
OWNER_ROLE = "owner"  # the seeds' CEO: onboarding, upgrade validation, termination, escalation to a human
# Audiences runbooks name that are roles under another name (every other audience naming a role is that
# role): on-call is the `oncall` role, and the daily cockpit report's urgent signals go to the owner.
AUDIENCE_ROLES = {"on-call": ON_CALL_ROLE, "cockpit-report": OWNER_ROLE}


def _parsed_keys(keys: list[str]) -> list[str]:
    seen: set[str] = set()
    for index, line in enumerate(keys):
        try:
            fingerprint = parse_public_key(line).fingerprint
        except SigningKeyError as error:
            raise ValueError(f"key {index + 1}: {error}") from None
        if fingerprint in seen:
            raise ValueError(f"key {index + 1}: {fingerprint} is listed twice")
        seen.add(fingerprint)
    return keys


class Person(Strict):
    instant: list[str] = Field(default_factory=list, description="channel names, tried in order")
    cockpit: list[str] = Field(default_factory=list)
    email: list[str] = Field(default_factory=list)
    keys: list[str] = Field(
        default_factory=list, description="OpenSSH one-line Ed25519 public keys (`ssh-ed25519 AAAA… comment`)"
    )
    # The dev stack's and the tests' people sign with key pairs committed to the repository
    # (config/dev-keys/); this flag says so, so that a process can refuse to trust them outside the dev
    # stack. It marks every key of the person: a real key never sits beside demo ones.
    demo: bool = Field(False, description="every key of this person is a committed demo key")
    # Sign-in to the console (issue 14). A local account: an Argon2id hash (argon2-cffi's
    # `PasswordHasher().hash(...)`), never the password itself. With OpenID Connect: the e-mail address the
    # provider asserts for this person (its verified `email` claim); nobody else's maps to them.
    password_hash: str | None = Field(None, description="$argon2id$... of the console password")
    sign_in_email: str | None = Field(None, description="the OpenID Connect e-mail that signs in as them")

    @field_validator("keys")
    @classmethod
    def _keys_parse(cls, keys: list[str]) -> list[str]:
        return _parsed_keys(keys)

    @field_validator("password_hash")
    @classmethod
    def _argon2id(cls, value: str | None) -> str | None:
        # A plain password or another scheme pasted here would be a password in a file, or one nothing checks.
        if value is not None and not value.startswith("$argon2id$"):
            raise ValueError("must be an Argon2id hash ($argon2id$...), never the password itself")
        return value

    @field_validator("sign_in_email")
    @classmethod
    def _an_address(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if "@" not in value.strip(" @"):
            raise ValueError(f"{value!r} is not an e-mail address")
        return value.strip().lower()

    @model_validator(mode="after")
    def _demo_has_keys(self) -> Person:
        if self.demo and not self.keys:
            raise ValueError("demo = true marks the person's keys, and there are none")
        return self

    def fingerprints(self) -> list[str]:
        return [parse_public_key(line).fingerprint for line in self.keys]

    def channels(self) -> PersonChannels:
        return PersonChannels(instant=self.instant, cockpit=self.cockpit, email=self.email)


class Role(Strict):
    people: list[str] = Field(min_length=1, description="names under [people]")

    @model_validator(mode="before")
    @classmethod
    def _old_form(cls, value: object) -> object:
        # `[roles] oncall = ["alice", "bob"]`, the form before roles were people, means the same.
        return {"people": value} if isinstance(value, list) else value


def people_problem(policy: Policy) -> str | None:
    """The first name among people, roles and escalation levels that refers to nothing, as `key: problem`."""
    for name, person in policy.people.items():
        if name in policy.roles:
            return f"people.{name}: a person may not share a name with a role"
        for kind in ChannelKind:
            for channel in getattr(person, kind.value):
                if channel not in policy.channels:
                    return f"people.{name}.{kind.value}: unknown channel {channel!r}"
    # One key, one owner (a person or a trusted service): a signature must name its signer without doubt.
    signers = [(f"people.{name}", name, person.keys) for name, person in policy.people.items()]
    signers += [
        (f"approvals.services.{name}", f"service {name}", service.keys)
        for name, service in policy.approvals.services.items()
    ]
    owners: dict[str, str] = {}
    for key_path, owner, lines in signers:
        for line in lines:
            fingerprint = parse_public_key(line).fingerprint
            if fingerprint in owners:
                return f"{key_path}.keys: key {fingerprint} is already {owners[fingerprint]}'s"
            owners[fingerprint] = owner
    emails: dict[str, str] = {}
    for name, person in policy.people.items():
        if person.sign_in_email is None:
            continue
        if person.sign_in_email in emails:
            return f"people.{name}.sign_in_email: {person.sign_in_email} already signs in as {emails[person.sign_in_email]}"
        emails[person.sign_in_email] = name
    for name, role in policy.roles.items():
        for person_name in role.people:
            if person_name not in policy.people:
                return f"roles.{name}.people: unknown person {person_name!r} (add [people.{person_name}])"
    for index, step in enumerate(policy.escalation):
        for who in step.notify:
            if who not in policy.people and who not in policy.roles:
                return f"escalation.{index}.notify: unknown person or role {who!r}"
    return None


# ---- notifications: channels, groups, priorities ------------------------------------------------------
# Secrets are never in this file: a channel names the environment variable that holds each one (`url_env`,
# `token_env`, `password_env`), and the worker reads it at start-up; a missing variable stops it.

EnvName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="an environment variable")]


class ChannelBase(Strict):
    # One try of one channel; a hung endpoint costs at most this before the next channel is tried, so keep
    # a priority's channels together well inside the notify activity's 30 s timeout.
    timeout_seconds: float = Field(5, gt=0, le=10)


class SlackChannel(ChannelBase):
    type: Literal["slack"]
    url_env: EnvName


class TelegramChannel(ChannelBase):
    type: Literal["telegram"]
    token_env: EnvName
    chat_id: str = Field(min_length=1)
    api_base: str = "https://api.telegram.org"


class DiscordChannel(ChannelBase):
    type: Literal["discord"]
    url_env: EnvName


class WebhookChannel(ChannelBase):
    type: Literal["webhook"]
    url_env: EnvName | None = None
    # The dev stack's receiver is the sandbox, whose address is a setting (STANCH_NOTIFY_WEBHOOK_URL) that
    # `stanch dev` and the tests move around; naming the setting keeps one source for that address.
    url_setting: Literal["notify_webhook_url"] | None = None

    @model_validator(mode="after")
    def _one_url(self) -> WebhookChannel:
        if (self.url_env is None) == (self.url_setting is None):
            raise ValueError("give exactly one of url_env or url_setting")
        return self


class EmailChannel(ChannelBase):
    type: Literal["email"]
    host: str
    port: int = Field(587, ge=1, le=65535)
    starttls: bool = True
    username: str | None = None
    password_env: EnvName | None = None
    from_address: str = Field(min_length=3)
    to: list[str] = Field(min_length=1)


Channel = Annotated[
    SlackChannel | TelegramChannel | DiscordChannel | WebhookChannel | EmailChannel,
    Field(discriminator="type"),
]
GroupList = Annotated[list[str], Field(min_length=1)]


KindList = Annotated[list[ChannelKind], Field(min_length=1)]


class KindsByPriority(Strict):
    """Which of a person's channel kinds a message to a role reaches them on, by the incident's priority."""

    P0: KindList = Field(default_factory=lambda: [ChannelKind.instant])  # at once
    P1: KindList = Field(default_factory=lambda: [ChannelKind.cockpit, ChannelKind.instant])
    P2: KindList = Field(default_factory=lambda: [ChannelKind.cockpit])
    P3: KindList = Field(default_factory=lambda: [ChannelKind.cockpit])

    def for_severity(self, severity: Severity) -> list[ChannelKind]:
        kinds: list[ChannelKind] = getattr(self, severity.value)
        return kinds


class NotifyRouting(Strict):
    """Which groups hear a message; within a group, channels are tried in order until one takes it.

    A message to a role goes to its people instead (on the `kinds` of the priority); the groups then hear
    it only when nobody in the role can be reached on one of those kinds.
    """

    P0: GroupList
    P1: GroupList
    P2: GroupList
    P3: GroupList
    customer: GroupList = Field(description="the end customer's chat")
    escalation: GroupList = Field(description="escalation levels; their `notify` people are the recipients")
    groups: dict[str, GroupList] = Field(default_factory=dict)
    kinds: KindsByPriority = Field(default_factory=KindsByPriority)

    def for_severity(self, severity: Severity) -> list[str]:
        return {Severity.P0: self.P0, Severity.P1: self.P1, Severity.P2: self.P2, Severity.P3: self.P3}[
            severity
        ]

    def channels_of(self, group: str) -> list[str]:
        """A channel's own name works as a group of one, so a single channel needs no group entry."""
        return self.groups.get(group, [group])

    def unknown_name(self, channels: set[str]) -> str | None:
        """The first name that refers to nothing, as `key: problem`; None when every name resolves."""
        for group, members in self.groups.items():
            if group in channels:
                return f"groups.{group}: a group may not share its name with a channel"
            for member in members:
                if member not in channels:
                    return f"groups.{group}: unknown channel {member!r}"
        audiences = {
            "P0": self.P0,
            "P1": self.P1,
            "P2": self.P2,
            "P3": self.P3,
            "customer": self.customer,
            "escalation": self.escalation,
        }
        for key, groups in audiences.items():
            for group in groups:
                if group not in self.groups and group not in channels:
                    return f"{key}: unknown group or channel {group!r}"
        return None


# ---- the intake: what happens to an alert no runbook can act on --------------------------------------------


class SeverityFromLabels(Strict):
    """The severity of a triage incident no route gave one: read from one label of the alert."""

    label: str = Field("severity", min_length=1)
    # Compared case-insensitively: monitoring spells `Critical` and `critical` alike.
    values: dict[str, Severity] = Field(
        default_factory=lambda: {"critical": Severity.P1, "page": Severity.P1, "warning": Severity.P2}
    )
    default: Severity = Severity.P3

    def severity_for(self, labels: dict[str, str]) -> Severity:
        wanted = labels.get(self.label, "").strip().lower()
        return next(
            (severity for value, severity in self.values.items() if value.lower() == wanted), self.default
        )


class IntakeSettings(Strict):
    # "triage": an alert no route can act on (unrouted, a target label missing or invalid, an unreadable
    # item) opens a triage incident that pages a human. "audit": the behaviour before triage incidents
    # existed: unrouted alerts are only audited (`unrouted_alert`), and a body with a bad alert is a 422.
    unroutable: Literal["triage", "audit"] = "triage"
    severity_from_labels: SeverityFromLabels = Field(default_factory=SeverityFromLabels)


class SystemConfig(BaseModel):
    """`[systems.<name>]`: which adapter speaks to the system, and that adapter's own settings.

    The settings are the table's other keys; the adapter validates them when the worker opens it
    (`activities/adapters.py`), so a typo stops the worker in one line naming the key. A secret is never
    written here: its setting `<name>_env` names the environment variable that holds it.
    """

    model_config = ConfigDict(extra="allow")

    adapter: str = Field("http", min_length=1)

    def adapter_settings(self) -> dict[str, object]:
        return dict(self.model_extra or {})


class Policy(Strict):
    # "review": a customer message waits for a human's approval, beside the runbook, before it is sent;
    # "send": it goes out at once. See docs/customer-messages.md.
    customer_messages: Literal["send", "review"] = "send"
    intake: IntakeSettings = Field(default_factory=IntakeSettings)
    approvals: ApprovalSettings = Field(default_factory=ApprovalSettings)
    people: dict[str, Person] = Field(default_factory=dict)
    roles: dict[str, Role] = Field(default_factory=dict)
    escalation: list[EscalationStep] = Field(default_factory=list)
    escalation_policy: EscalationPolicy = Field(default_factory=EscalationPolicy)
    response_targets: ResponseTargetSettings = Field(default_factory=ResponseTargetSettings)
    routes: list[Route] = Field(default_factory=list)
    guardrails: GuardrailSettings = Field(default_factory=GuardrailSettings)
    # Notifications: read by the worker only (see activities/notify.py); optional here so that a policy
    # used by the intake or the CLI alone needs no channels.
    channels: dict[str, Channel] = Field(default_factory=dict)
    notify: NotifyRouting | None = None
    # The systems the runbooks act on and the adapter for each; a system not named here is reached over the
    # documented HTTP contract at STANCH_PLATFORM_URL (docs/connect-your-systems.md).
    systems: dict[SystemName, SystemConfig] = Field(default_factory=dict)

    @field_validator("notify")
    @classmethod
    def _notify_names_resolve(
        cls, notify: NotifyRouting | None, info: ValidationInfo
    ) -> NotifyRouting | None:
        channels = info.data.get("channels")  # absent when the channels themselves failed validation
        if notify is not None and channels is not None:
            problem = notify.unknown_name(set(channels))
            if problem:
                raise PydanticCustomError("unknown_name", "{problem}", {"problem": problem})
        return notify

    # Where an alert no rule matches goes. None: the intake answers `unrouted` and audits the alert.
    default_route: Route | None = None

    @model_validator(mode="after")
    def _people_and_roles_resolve(self) -> Policy:
        problem = people_problem(self)
        if problem:
            raise PydanticCustomError("unknown_name", "{problem}", {"problem": problem})
        return self

    def role_people(self) -> dict[str, list[str]]:
        """Role → the people who hold it, in the policy's order."""
        return {name: list(role.people) for name, role in self.roles.items()}

    def people_of(self, names: list[str]) -> list[str]:
        """People named directly or through a role, each once, in order (escalation levels' `notify`)."""
        found: list[str] = []
        for name in names:
            for person in self.roles[name].people if name in self.roles else [name]:
                if person not in found:
                    found.append(person)
        return found

    @field_validator("default_route")
    @classmethod
    def _default_route_matches_everything(cls, route: Route | None) -> Route | None:
        # A `match` here could only mislead: the default takes whatever no rule matched, regardless.
        if route is not None and route.match:
            raise ValueError("a default route takes every alert no rule matched; remove its `match`")
        return route

    def route_for(self, labels: dict[str, str]) -> Route | None:
        """First match wins; then the default route, if there is one."""
        return next((route for route in self.routes if route.matches(labels)), self.default_route)

    def keyed_routes(self) -> list[tuple[str, Route]]:
        """Every route, the default last, with the key that names it in the policy file."""
        keyed = [(f"routes.{index}", route) for index, route in enumerate(self.routes)]
        return keyed + ([("default_route", self.default_route)] if self.default_route else [])

    def route_named(self, name: str) -> Route | None:
        return next((route for route in self.routes if route.name == name), None)

    def guardrail_limits(self, subsystem: str) -> GuardrailLimits:
        """The limits one subsystem's guardrail enforces: its own keys, then the defaults, then built-ins."""
        limits = self.guardrails.defaults.applied_to(GuardrailLimits())
        override = self.guardrails.subsystems.get(subsystem)
        return override.applied_to(limits) if override else limits

    def incident_policy(self) -> IncidentPolicy:
        return IncidentPolicy(
            roles=self.role_people(),
            escalation=[
                EscalationLevel(
                    name=step.name, notify=step.notify, after=timedelta(minutes=step.after_minutes)
                )
                for step in self.escalation
            ],
            approval_timeout=timedelta(minutes=self.approvals.timeout_minutes),
            repeat_every=timedelta(minutes=self.escalation_policy.repeat_every_minutes),
            acknowledge_holds=timedelta(minutes=self.escalation_policy.acknowledge_holds_minutes),
            give_up_after=timedelta(hours=self.escalation_policy.give_up_after_hours),
            customer_messages=self.customer_messages,
            response_targets=self.response_targets.targets(),
            guardrail_defaults=self.guardrails.defaults.applied_to(GuardrailLimits()),
            guardrail_subsystems={name: self.guardrail_limits(name) for name in self.guardrails.subsystems},
            people={name: person.channels() for name, person in self.people.items()},
            signatures=self.approvals.signatures,
            keyring=self.keyring(),
        )

    def keyring(self) -> Keyring:
        """The public keys decisions are checked against, as incidents and guardrails carry them.

        Every person is listed, with no key when they have none: a trusted service (the console) signs for
        a person it signed in by password or OpenID Connect, who need not hold a key of their own; a
        person's own signature still needs one of their keys."""
        return Keyring(
            people={name: list(person.keys) for name, person in self.people.items()},
            services={name: list(service.keys) for name, service in self.approvals.services.items()},
        )

    def demo_signers(self) -> list[str]:
        """The people and services whose keys are committed demo keys (config/dev-keys/)."""
        people = [name for name, person in self.people.items() if person.demo]
        services = [f"approvals.services.{name}" for name, s in self.approvals.services.items() if s.demo]
        return people + services


class PolicyError(Exception):
    pass


def check_runbooks(policy: Policy, known: set[str]) -> None:
    """A route naming a runbook no worker runs would start workflows that never make progress."""
    for where, route in policy.keyed_routes():
        if route.runbook not in known:
            raise PolicyError(
                f"{where}.runbook: unknown runbook {route.runbook!r}; known: {', '.join(sorted(known))}"
            )


def check_roles(policy: Policy, uses: Mapping[str, Iterable[str]]) -> None:
    """A role a runbook asks to decide or notifies, missing from the policy, would leave that decision to
    nobody and that page to whoever the priority's groups reach: refuse it before anything starts."""
    for runbook, roles in uses.items():
        for role in roles:
            if role not in policy.roles:
                raise PolicyError(
                    f"runbook {runbook} uses role {role!r}, which [roles] does not define "
                    f"(add [roles.{role}] people = [...])"
                )


def merged(base: dict[str, object], override: dict[str, object]) -> dict[str, object]:
    """`override` laid over `base`: tables merge key by key, anything else (a list, a value) replaces."""
    result = dict(base)
    for key, value in override.items():
        below = result.get(key)
        if isinstance(below, dict) and isinstance(value, dict):
            result[key] = merged(below, value)
        else:
            result[key] = value
    return result


def read_policy_table(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, object]:
    """The policy file as one table. `extends = "other.toml"` (relative to this file) lays this file over
    another, so the dev policy is the production-shaped example plus what only `make dev` needs."""
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise PolicyError(f"policy file {path} not found (set STANCH_CONFIG)") from None
    except tomllib.TOMLDecodeError as error:
        raise PolicyError(f"policy file {path}: {error}") from None
    base = raw.pop("extends", None)
    if base is None:
        return raw
    if not isinstance(base, str):
        raise PolicyError(f"policy file {path}: extends: give the path of the policy file this one extends")
    parent = (path.parent / base).resolve()
    if parent in seen or parent == path.resolve():
        raise PolicyError(f"policy file {path}: extends: {base} extends this file again (a loop)")
    return merged(read_policy_table(parent, (*seen, path.resolve())), raw)


def load_policy(path: Path) -> Policy:
    raw = read_policy_table(path)
    try:
        return Policy.model_validate(raw)
    except ValidationError as error:
        first = error.errors()[0]
        key = ".".join(str(part) for part in first["loc"])
        # A check across sections (people, roles, escalation) names its own key in the message.
        where = f"{key}: " if key else ""
        raise PolicyError(f"policy file {path}: {where}{first['msg']}") from None


def load_policy_or_exit(
    path: Path, runbooks: set[str] | None = None, roles: Mapping[str, Iterable[str]] | None = None
) -> Policy:
    """`roles`: runbook → the roles it uses (workflows.registry.roles_used()); each must be defined."""
    try:
        policy = load_policy(path)
        if runbooks is not None:
            check_runbooks(policy, runbooks)
        if roles is not None:
            try:
                check_roles(policy, roles)
            except PolicyError as error:
                raise PolicyError(f"policy file {path}: {error}") from None
        return policy
    except PolicyError as error:
        print(f"stanch: {error}", file=sys.stderr)
        raise SystemExit(2) from None
