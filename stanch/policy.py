"""The policy file: who approves, how escalation runs, and which runbook each alert starts.

Loaded and validated once at start-up by every process; unknown keys are errors, so a typo cannot
silently switch a rule off.
"""

from __future__ import annotations

import re
import sys
import tomllib
from datetime import timedelta
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from schemas.incidents import EscalationLevel, IncidentPolicy
from schemas.severity import Severity


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ApprovalSettings(Strict):
    timeout_minutes: float = Field(30, gt=0)


class EscalationStep(Strict):
    name: str
    notify: list[str] = Field(default_factory=list)
    after_minutes: float = Field(30, gt=0)


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


class Policy(Strict):
    approvals: ApprovalSettings = Field(default_factory=ApprovalSettings)
    roles: dict[str, list[str]] = Field(default_factory=dict)
    escalation: list[EscalationStep] = Field(default_factory=list)
    routes: list[Route] = Field(default_factory=list)

    def route_for(self, labels: dict[str, str]) -> Route | None:
        """First match wins."""
        return next((route for route in self.routes if route.matches(labels)), None)

    def route_named(self, name: str) -> Route | None:
        return next((route for route in self.routes if route.name == name), None)

    def incident_policy(self) -> IncidentPolicy:
        return IncidentPolicy(
            roles=self.roles,
            escalation=[
                EscalationLevel(
                    name=step.name, notify=step.notify, after=timedelta(minutes=step.after_minutes)
                )
                for step in self.escalation
            ],
            approval_timeout=timedelta(minutes=self.approvals.timeout_minutes),
        )


class PolicyError(Exception):
    pass


def load_policy(path: Path) -> Policy:
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise PolicyError(f"policy file {path} not found (set STANCH_CONFIG)") from None
    except tomllib.TOMLDecodeError as error:
        raise PolicyError(f"policy file {path}: {error}") from None
    try:
        return Policy.model_validate(raw)
    except ValidationError as error:
        first = error.errors()[0]
        key = ".".join(str(part) for part in first["loc"])
        raise PolicyError(f"policy file {path}: {key}: {first['msg']}") from None


def load_policy_or_exit(path: Path) -> Policy:
    try:
        return load_policy(path)
    except PolicyError as error:
        print(f"stanch: {error}", file=sys.stderr)
        raise SystemExit(2) from None
