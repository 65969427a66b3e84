"""Adapters: how Stanch reaches each system the runbooks act on.

Every system (`schemas/systems.py`) is one typed interface, `activities/<system>/interface.py`, an abstract
subclass of `Adapter`. An adapter implements it for one kind of system — `http` speaks the documented
contract (docs/platform-openapi.json) to STANCH_PLATFORM_URL, `command` runs the operator's scripts, `git`,
`postgres` act on the real thing — and the activities of that system call whichever adapter the policy
names:

    [systems.gateway]
    adapter = "command"
    ...the adapter's own settings, validated by its `Settings` model...

Stanch's adapters are listed in `BUILTIN_ADAPTERS`; anyone else's are found through the entry-point group
`stanch.adapters`, named `<system>.<adapter>` (e.g. `gateway.nomad = "acme_stanch:NomadGateway"`), so a
team ships its own without forking. An adapter's settings are a pydantic model that forbids unknown keys; a
`SecretStr` setting is never written in the policy: its key `<setting>_env` names the environment variable
that holds it, and `${NAME}` in a string setting is the environment variable NAME.

The rule every adapter keeps: an effect carries the idempotency key its workflow chose and is applied once
per key; a refusal (the system said no, or the request can never succeed) raises `refused()` — not
retried, the runbook pages — and anything else raises an ordinary error that Temporal retries.
"""

from __future__ import annotations

import importlib
import os
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, ClassVar, get_args

import httpx
from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError
from temporalio.exceptions import ApplicationError

from schemas.systems import SYSTEMS, SystemCheck, SystemName

ENTRY_POINT_GROUP = "stanch.adapters"

# (system, adapter) → "module:Class". Imported only when the policy names it, so a worker that never acts
# on git does not import the git adapter.
BUILTIN_ADAPTERS: dict[tuple[SystemName, str], str] = {
    ("agents", "http"): "activities.agents.http:HttpAgents",
    ("gateway", "http"): "activities.gateway.http:HttpGateway",
    ("channel", "http"): "activities.channel.http:HttpChannel",
    ("gateway", "command"): "activities.gateway.command:CommandGateway",
    ("deploys", "http"): "activities.deploys.http:HttpDeploys",
    ("deploys", "git"): "activities.deploys.git:GitDeploys",
    ("flags", "http"): "activities.flags.http:HttpFlags",
    ("database", "http"): "activities.database.http:HttpDatabase",
    ("database", "postgres"): "activities.database.postgres:PostgresDatabase",
    ("database", "command"): "activities.database.command:CommandDatabase",
    ("documents", "http"): "activities.documents.http:HttpDocuments",
}


class AdapterConfigError(ValueError):
    """A `[systems.<name>]` table names an adapter that does not exist, or settings it does not accept."""


class AdapterSettings(BaseModel):
    """The settings an adapter takes from its `[systems.<name>]` table; unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class AdapterContext:
    """What every adapter may use besides its own settings, built once by the worker."""

    # STANCH_PLATFORM_URL, the http adapters' default base URL, and the worker's client for it.
    platform_url: str
    platform_http: httpx.AsyncClient | None = None
    # Relative paths in adapter settings are relative to the policy file's directory.
    base_dir: Path = field(default_factory=Path.cwd)
    # Extra environment for the adapter's processes (the dev stack points the examples at its own ports).
    environ: dict[str, str] = field(default_factory=dict)

    def resolve(self, path: str | Path) -> Path:
        candidate = Path(path).expanduser()
        return candidate if candidate.is_absolute() else (self.base_dir / candidate).resolve()


class Adapter(ABC):
    """One implementation of one system's interface. Subclasses set `system` (the interface does) and
    `adapter` (the name the policy uses), and may declare their `Settings`."""

    system: ClassVar[SystemName]
    adapter: ClassVar[str]
    Settings: ClassVar[type[AdapterSettings]] = AdapterSettings

    def __init__(self, settings: AdapterSettings, context: AdapterContext) -> None:
        self.settings = settings
        self.context = context

    @abstractmethod
    async def check(self) -> SystemCheck:
        """Whether the system is reachable and configured; never raises, never changes anything."""

    async def aclose(self) -> None:  # noqa: B027 — most adapters hold nothing to release
        """Release what the adapter opened (clients, connections); the worker calls it on shutdown."""

    def checked(self, ok: bool, detail: str) -> SystemCheck:
        return SystemCheck(system=self.system, adapter=self.adapter, ok=ok, detail=detail)


def refused(what: str, detail: str, *, kind: str = "SystemRefused") -> ApplicationError:
    """The error for an effect the system refused or that can never succeed as asked: not retried, so the
    runbook's failure path pages at once instead of a retry loop asking the same thing again."""
    return ApplicationError(f"{what} refused: {detail}", type=kind, non_retryable=True)


def require_idempotency_key(what: str, key: str | None) -> None:
    """Refuse an effect whose key is empty before anything reaches the system: it was sent outside
    `IncidentWorkflow.act`, which sets it, and a retry of it could not be told from a new call."""
    if key is not None and not key:
        raise ApplicationError(
            f"{what}: the request's idempotency_key is empty; a runbook sends effects through "
            "IncidentWorkflow.act, which sets it from the step",
            type="IdempotencyKeyMissing",
            non_retryable=True,
        )


# ---- finding an adapter -------------------------------------------------------------------------------


def _load(reference: str) -> Any:
    module, _, name = reference.partition(":")
    return getattr(importlib.import_module(module), name)


def _third_party(system: SystemName) -> dict[str, Any]:
    prefix = f"{system}."
    return {
        point.name.removeprefix(prefix): point
        for point in entry_points(group=ENTRY_POINT_GROUP)
        if point.name.startswith(prefix)
    }


def available_adapters(system: SystemName) -> list[str]:
    builtin = [name for (owner, name) in BUILTIN_ADAPTERS if owner == system]
    return sorted({*builtin, *_third_party(system)})


def adapter_class(system: SystemName, name: str) -> type[Adapter]:
    """The class behind `[systems.<system>] adapter = "<name>"`: Stanch's own first, then entry points."""
    reference = BUILTIN_ADAPTERS.get((system, name))
    if reference is not None:
        found = _load(reference)
    else:
        point = _third_party(system).get(name)
        if point is None:
            known = ", ".join(available_adapters(system)) or "none"
            raise AdapterConfigError(f"adapter: unknown adapter {name!r} for {system} (known: {known})")
        found = point.load()
    if not (isinstance(found, type) and issubclass(found, Adapter) and found.system == system):
        raise AdapterConfigError(f"adapter: {name!r} is not an adapter of the {system} interface")
    return found


_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def expand_variables(value: Any, environ: dict[str, str], where: str = "") -> Any:
    """`${NAME}` in a setting's string is the environment variable NAME as the worker sees it, so one
    policy serves hosts whose paths differ (the dev stack's example systems live under its own home).
    A variable that is not set is an error naming the key, never an empty string."""
    if isinstance(value, str):

        def substitute(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in environ:
                raise AdapterConfigError(f"{where or 'settings'}: environment variable {name!r} is not set")
            return environ[name]

        return _VARIABLE.sub(substitute, value)
    if isinstance(value, list):
        return [
            expand_variables(item, environ, f"{where}.{index}" if where else str(index))
            for index, item in enumerate(value)
        ]
    if isinstance(value, dict):
        return {
            key: expand_variables(item, environ, f"{where}.{key}" if where else key)
            for key, item in value.items()
        }
    return value


def _is_secret(annotation: Any) -> bool:
    return annotation is SecretStr or SecretStr in get_args(annotation)


def settings_from_policy(
    cls: type[Adapter], raw: dict[str, Any], environ: dict[str, str] | None = None
) -> AdapterSettings:
    """Validate a `[systems.<name>]` table for `cls`, reading each secret from the variable its
    `<setting>_env` key names. Errors name the key as the policy spells it."""
    environ = dict(os.environ) if environ is None else environ
    values = expand_variables(dict(raw), environ)
    for name, spec in cls.Settings.model_fields.items():
        if not _is_secret(spec.annotation):
            continue
        if name in values:
            raise AdapterConfigError(
                f"{name}: a secret is never written in the policy; name its variable in {name}_env"
            )
        variable = values.pop(f"{name}_env", None)
        if variable is None:
            continue
        if not isinstance(variable, str) or variable not in environ:
            raise AdapterConfigError(f"{name}_env: environment variable {variable!r} is not set")
        values[name] = environ[variable]
    try:
        return cls.Settings.model_validate(values)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "settings"
        raise AdapterConfigError(f"{where}: {first['msg']}") from None


def open_adapter(system: SystemName, name: str, raw: dict[str, Any], context: AdapterContext) -> Adapter:
    """The adapter the policy names for `system`, with its settings validated; `AdapterConfigError` names
    the key at fault (the caller prefixes `systems.<system>.`)."""
    if system not in SYSTEMS:
        raise AdapterConfigError(f"unknown system {system!r} (known: {', '.join(SYSTEMS)})")
    cls = adapter_class(system, name)
    return cls(settings_from_policy(cls, raw, {**os.environ, **context.environ}), context)
