"""The adapters a worker acts through: one per system, as the policy's `[systems.<name>]` tables name them.

A system the policy does not name is reached with the `http` adapter at STANCH_PLATFORM_URL, which is what
the sandbox serves in dev and tests. `open_systems` validates every table before anything is opened, so a
worker with a typo in one refuses to start, naming the key (`systems.gateway.actions.safe_restart.argv`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, fields
from typing import Any, TypeVar

from activities.adapters import (
    Adapter,
    AdapterConfigError,
    AdapterContext,
    adapter_class,
    open_adapter,
    settings_from_policy,
)
from activities.agents.interface import Agents
from activities.channel.interface import Channel
from activities.database.interface import Database
from activities.deploys.interface import Deploys
from activities.documents.interface import Documents
from activities.flags.interface import Flags
from activities.gateway.interface import Gateway
from schemas.systems import SystemCheck, SystemName
from stanch.policy import Policy

A = TypeVar("A", bound=Adapter)

# The systems a worker opens, each with its interface (Systems has one field per entry).
INTERFACES: dict[SystemName, Any] = {
    "agents": Agents,
    "gateway": Gateway,
    "channel": Channel,
    "deploys": Deploys,
    "flags": Flags,
    "database": Database,
    "documents": Documents,
}


@dataclass(frozen=True)
class Systems:
    """One open adapter per system; the field names are the system names."""

    agents: Agents
    gateway: Gateway
    channel: Channel
    deploys: Deploys
    flags: Flags
    database: Database
    documents: Documents

    def all(self) -> list[Adapter]:
        return [getattr(self, spec.name) for spec in fields(self)]

    async def check(self) -> list[SystemCheck]:
        """Every system's check, side by side (`stanch systems`, the console's health page)."""
        return list(await asyncio.gather(*(adapter.check() for adapter in self.all())))


def check_systems(policy: Policy, context: AdapterContext) -> None:
    """Validate every `[systems.<name>]` table without opening anything: the adapter exists, is one of
    that system's, and takes these settings (secrets' variables set). Raises `AdapterConfigError`."""
    for system in INTERFACES:
        config = policy.systems.get(system)
        if config is None:
            continue
        try:
            settings_from_policy(
                adapter_class(system, config.adapter),
                config.adapter_settings(),
                {**os.environ, **context.environ},
            )
        except AdapterConfigError as error:
            raise AdapterConfigError(f"systems.{system}.{error}") from None


def _open(policy: Policy, system: SystemName, interface: type[A], context: AdapterContext) -> A:
    config = policy.systems.get(system)
    name, raw = ("http", {}) if config is None else (config.adapter, config.adapter_settings())
    try:
        adapter = open_adapter(system, name, raw, context)
    except AdapterConfigError as error:
        raise AdapterConfigError(f"systems.{system}.{error}") from None
    assert isinstance(adapter, interface)
    return adapter


@contextlib.asynccontextmanager
async def open_systems(policy: Policy, context: AdapterContext) -> AsyncIterator[Systems]:
    """Every system's adapter, open for as long as the block runs; `AdapterConfigError` before any opens."""
    opened: dict[str, Any] = {
        system: _open(policy, system, interface, context) for system, interface in INTERFACES.items()
    }
    systems = Systems(**opened)
    try:
        yield systems
    finally:
        for adapter in systems.all():
            await adapter.aclose()
