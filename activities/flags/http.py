"""Feature flags over the documented HTTP contract (docs/platform-openapi.json), as the sandbox implements it.

The one call is `PUT /flags/{name}` with `schemas.flags.FlagSetting`, the model the sandbox reads.
"""

from __future__ import annotations

from activities.flags.interface import Flags
from activities.http import HttpConnection
from schemas.flags import FlagChange, FlagSetting, FlagState


class HttpFlags(HttpConnection, Flags):
    """Feature flags at the platform's base URL."""

    async def set_flag(self, request: FlagChange) -> FlagState:
        return await self._http.effect(
            "PUT",
            f"/flags/{request.name}",
            key=request.idempotency_key,
            body=FlagSetting(enabled=request.enabled),
            result=FlagState,
            what=f"feature flag {request.name}",
        )
