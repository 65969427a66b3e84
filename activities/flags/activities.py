"""The feature flags system's activities: each calls the adapter the policy names (`[systems.flags]`).

The activity type names are those recorded histories hold (`deploys_…`); new ones follow `<system>_<verb>`.
"""

from __future__ import annotations

from temporalio import activity

from activities.flags.interface import Flags
from activities.heartbeat import heartbeating
from schemas.flags import (
    FlagChange,
    FlagState,
)


class FlagActivities:
    """Built once in the worker around the feature flags adapter."""

    def __init__(self, system: Flags) -> None:
        self._system = system

    @activity.defn(name="deploys_set_flag")
    @heartbeating
    async def set_flag(self, request: FlagChange) -> FlagState:
        return await self._system.set_flag(request)

    def all(self) -> list[object]:
        """Every activity of this class, for the worker's list."""
        return [
            self.set_flag,
        ]
