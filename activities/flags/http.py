"""Feature flags over the documented HTTP contract (docs/platform-openapi.json), as the sandbox implements it.

Reads carry the idempotency key too: the platform ignores it for a GET, and the call log stays uniform.
"""

from __future__ import annotations

from typing import Any

from activities.flags.interface import Flags
from activities.http import HttpConnection, M
from schemas.flags import (
    FlagChange,
    FlagState,
)


class HttpFlags(HttpConnection, Flags):
    """Feature flags at the platform's base URL."""

    async def _call(
        self, method: str, path: str, key: str, result: type[M], what: str, body: Any = None
    ) -> M:
        return await self._http.effect(method, path, key=key, body=body, result=result, what=what)

    async def set_flag(self, request: FlagChange) -> FlagState:
        body = {"enabled": request.enabled}
        what = f"feature flag {request.name}"
        return await self._call(
            "PUT", f"/flags/{request.name}", request.idempotency_key, FlagState, what, body
        )
