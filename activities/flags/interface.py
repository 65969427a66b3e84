"""The feature flags system: the interface its runbooks act through; adapters implement it."""

from __future__ import annotations

from abc import abstractmethod
from typing import ClassVar

from activities.adapters import Adapter
from schemas.flags import (
    FlagChange,
    FlagState,
)
from schemas.systems import SystemName


class Flags(Adapter):
    system: ClassVar[SystemName] = "flags"

    @abstractmethod
    async def set_flag(self, request: FlagChange) -> FlagState:
        """Turn a feature flag on or off, once per key."""
