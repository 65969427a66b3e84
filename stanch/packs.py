"""Runbook packs: the runbooks, their activities, default routes and sample alerts, as one plugin.

A pack is a `temporalio.plugin.SimplePlugin` that carries its workflows (so the Worker and the Replayer
take it as a plugin, the same way) plus what Stanch needs beside them: the runbooks by the route name
that starts them, default `[[routes]]`, sample alerts for `stanch fire`, and a function from the worker's
shared resources (`PackContext`) to its activities. Packs are found through the `stanch.packs`
entry-point group; Stanch's own catalogue is one of them (workflows/pack.py), so a team's pack installs
with `pip install` and nothing else changes.

Core: the worker, the intake, the Replayer and the CLI import this; it imports no operator tool, and
nothing here runs inside a workflow (entry points are read once, at start-up, outside the sandbox).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING, Any, NamedTuple

from temporalio.plugin import SimplePlugin

from stanch.policy import Policy, Route

if TYPE_CHECKING:
    import httpx
    from psycopg_pool import AsyncConnectionPool
    from temporalio.client import Client

    from activities.systems import Systems
    from stanch.metrics import WorkerMetrics
    from stanch.settings import Settings

ENTRY_POINT_GROUP = "stanch.packs"


class Sample(NamedTuple):
    """A sample alert for `stanch fire`: `{agent}` in a label or the summary is the chosen agent."""

    alertname: str
    summary: str
    labels: dict[str, str]


@dataclass(frozen=True)
class PackContext:
    """What the worker opens once and every pack's activities share, for as long as the worker runs."""

    settings: Settings
    client: Client
    policy: Policy
    systems: Systems
    pool: AsyncConnectionPool
    platform_http: httpx.AsyncClient
    notify_http: httpx.AsyncClient
    metrics: WorkerMetrics


ActivityFactory = Callable[[PackContext], Sequence[Callable[..., Any]]]


class PackError(Exception):
    """A pack that cannot be loaded beside the others; the message is one line naming what is wrong."""


class Pack(SimplePlugin):
    """One pack. `runbooks`: route name → workflow class; `workflows`: the others it runs (no route may
    start them); `activities`: the worker's shared resources → its activity callables; `routes`: default
    `[[routes]]` tables, appended after the policy's; `samples`: scenario name → sample alert;
    `long_lived`: those of its workflows that must not pin a worker version (they run for days, or for
    ever) → each one's AUTO_UPGRADE copy, made with `workflows.long_lived.auto_upgrade_copy`, which a
    versioned worker registers in its place (docs/deployment.md)."""

    def __init__(
        self,
        name: str,
        *,
        runbooks: Mapping[str, type],
        workflows: Sequence[type] = (),
        activities: ActivityFactory | None = None,
        routes: Sequence[Mapping[str, Any]] = (),
        samples: Mapping[str, Sample] = {},
        long_lived: Mapping[type, type] = {},
        **plugin_options: Any,
    ) -> None:
        self.runbooks: dict[str, type] = dict(runbooks)
        self.other_workflows: list[type] = [cls for cls in workflows if cls not in self.runbooks.values()]
        self.activity_factory = activities
        # Validated here, so a pack with a bad route fails at load time, naming the pack.
        try:
            self.routes: list[Route] = [Route.model_validate(dict(route)) for route in routes]
        except ValueError as error:
            raise PackError(f"pack {name!r}: a route is invalid: {error}".splitlines()[0]) from None
        self.samples: dict[str, Sample] = dict(samples)
        self.long_lived: dict[type, type] = dict(long_lived)
        for original, copy in self.long_lived.items():
            if original not in self.runbooks.values() and original not in self.other_workflows:
                raise PackError(f"pack {name!r}: long-lived {original.__name__} is not one of its workflows")
            if not (isinstance(copy, type) and issubclass(copy, original) and auto_upgrade(copy)):
                raise PackError(
                    f"pack {name!r}: long-lived {original.__name__} needs an AUTO_UPGRADE copy made with "
                    f"workflows.long_lived.auto_upgrade_copy, not {getattr(copy, '__name__', copy)!r}"
                )
        super().__init__(name, workflows=[*self.runbooks.values(), *self.other_workflows], **plugin_options)

    @property
    def all_workflows(self) -> list[type]:
        return [*self.runbooks.values(), *self.other_workflows]

    def activities_for(self, context: PackContext) -> list[Callable[..., Any]]:
        return list(self.activity_factory(context)) if self.activity_factory else []

    def roles_used(self) -> dict[str, tuple[str, ...]]:
        """Each workflow → the roles it asks to decide or notifies (its `uses_roles`)."""
        names = {cls: name for name, cls in self.runbooks.items()}
        return {
            names.get(cls, cls.__module__.rpartition(".")[2]): tuple(getattr(cls, "uses_roles", ()))
            for cls in self.all_workflows
        }


@dataclass(frozen=True)
class Packs:
    """The installed packs, checked to fit together: no runbook or sample name in two of them."""

    packs: tuple[Pack, ...]

    def __iter__(self) -> Any:
        return iter(self.packs)

    @property
    def runbooks(self) -> dict[str, type]:
        return {name: cls for pack in self.packs for name, cls in pack.runbooks.items()}

    @property
    def workflows(self) -> list[type]:
        return [cls for pack in self.packs for cls in pack.all_workflows]

    @property
    def routes(self) -> list[Route]:
        return [route for pack in self.packs for route in pack.routes]

    @property
    def long_lived(self) -> dict[type, type]:
        return {original: copy for pack in self.packs for original, copy in pack.long_lived.items()}

    @property
    def samples(self) -> dict[str, Sample]:
        return {name: sample for pack in self.packs for name, sample in pack.samples.items()}

    def roles_used(self) -> dict[str, tuple[str, ...]]:
        return {name: roles for pack in self.packs for name, roles in pack.roles_used().items()}

    def target_models(self) -> dict[str, type]:
        """Runbook → the target model its class names (`target_model`), for the runbooks that name one."""
        return {name: cls.target_model for name, cls in self.runbooks.items() if hasattr(cls, "target_model")}

    def register_target_models(self) -> None:
        """Make these packs' runbooks known wherever a runbook's target is checked (the intake, the triage
        hand-over, the console's new-incident form, the start-up route check): schemas.targets."""
        from schemas.targets import register_target_models

        register_target_models(self.target_models())

    def activities_for(self, context: PackContext) -> list[Callable[..., Any]]:
        return [fn for pack in self.packs for fn in pack.activities_for(context)]

    def policy_with_routes(self, policy: Policy) -> Policy:
        """The policy with the packs' routes appended after its own `[[routes]]`: the policy's routes match
        first, and a pack route named like one of the policy's is left out (the policy redefined it)."""
        named = {route.name for route in policy.routes}
        defaults = [route for route in self.routes if route.name not in named]
        if not defaults:
            return policy
        return policy.model_copy(update={"routes": [*policy.routes, *defaults]})


def auto_upgrade(cls: type) -> bool:
    """Whether the workflow class's definition says AUTO_UPGRADE."""
    from temporalio.common import VersioningBehavior
    from temporalio.workflow import _Definition

    definition = _Definition.from_class(cls)
    return definition is not None and definition.versioning_behavior == VersioningBehavior.AUTO_UPGRADE


def combined(packs: Iterable[Pack]) -> Packs:
    """The packs as one catalogue; a runbook (or sample) name two packs define is a `PackError`."""
    listed = tuple(packs)
    for kind in ("runbooks", "samples"):
        owner: dict[str, str] = {}
        for pack in listed:
            for name in getattr(pack, kind):
                if name in owner:
                    raise PackError(
                        f"{kind[:-1]} {name!r} is defined by two packs, {owner[name]!r} and {pack.name()!r}: "
                        "uninstall one, or rename it in one of them"
                    )
                owner[name] = pack.name()
    return Packs(listed)


def load_pack(entry_point: EntryPoint) -> Pack:
    """An entry point names a `Pack` or a function that returns one."""
    try:
        loaded = entry_point.load()
    except Exception as error:  # a broken pack: say which one, not a traceback from deep in its import
        raise PackError(f"pack entry point {entry_point.name!r} ({entry_point.value}): {error}") from None
    pack = loaded() if callable(loaded) and not isinstance(loaded, Pack) else loaded
    if not isinstance(pack, Pack):
        raise PackError(
            f"pack entry point {entry_point.name!r} ({entry_point.value}) gives {type(pack).__name__}, "
            "not a stanch.packs.Pack"
        )
    return pack


def load_packs(found: Iterable[EntryPoint] | None = None) -> Packs:
    """The packs of the `stanch.packs` entry points (or of `found`), in name order for a stable result."""
    listed = entry_points(group=ENTRY_POINT_GROUP) if found is None else found
    return combined(load_pack(entry_point) for entry_point in sorted(listed, key=lambda ep: ep.name))


@cache
def installed_packs() -> Packs:
    """The installed packs, loaded once per process (a worker, an intake, a console, a CLI command), their
    runbooks' target models registered before anything checks a target or a worker polls a task."""
    packs = load_packs()
    try:
        packs.register_target_models()
    except ValueError as error:
        raise PackError(str(error)) from None
    return packs


def installed_packs_or_exit() -> Packs:
    """`installed_packs()`, or stop the process with one clear line."""
    try:
        return installed_packs()
    except PackError as error:
        print(f"stanch: {error}", file=sys.stderr)
        raise SystemExit(2) from None
