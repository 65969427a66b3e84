"""The example systems `make dev` acts on for real: the gateway under supervisord, the deploy repository
and the application database (examples/). Each is one `ExampleSystem`; the dev stack starts them after
Postgres and Temporal and before its own processes, and gives the worker the environment they return, which
config/dev.toml's `[systems.*]` settings read as `${NAME}`.

An example lives under `<dev home>/examples/<name>/`, so two dev stacks (the tests run one per xdist
worker) never share one. Starting one that is already there keeps its state: `make dev` after `make dev`
finds the gateway's sessions and the repository's commits where they were.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from stanch.ops.devstack.example_database import ExampleDatabase
from stanch.ops.devstack.example_deploys import ExampleDeploys
from stanch.ops.devstack.example_gateway import ExampleGateway
from stanch.ops.devstack.supervisor import Child, LogFn
from stanch.settings import Settings


class ExampleSystem(Protocol):
    """One example system of the dev stack."""

    # The part's name in the dev stack ("gateway", "deploys", "database"): `DevStack(examples=[...])`.
    name: str

    def start(self, home: Path, settings: Settings, log: LogFn) -> Child | None:
        """Create or reuse the example under `home` (its own directory) and start what it runs; return
        the child process the dev stack must stop (supervisord), or None when nothing keeps running (a
        repository, a database inside the stack's Postgres). Raise `StartupFailed` with the reason."""
        ...

    def environment(self, home: Path, settings: Settings) -> dict[str, str]:
        """What the worker's adapters need to reach it, as environment variables (`STANCH_EXAMPLE_*`)."""
        ...


# An example may also have `describe(home, settings) -> str`: its line in `stanch dev`'s banner (without
# one, the banner lists the environment it gives the worker).


def default_examples() -> Sequence[ExampleSystem]:
    """The examples `stanch dev` runs, in start order."""
    return [ExampleGateway(), ExampleDeploys(), ExampleDatabase()]
