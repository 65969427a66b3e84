"""The one way activities speak to the operator's platform (the sandbox platform in dev and tests).

An effect carries the idempotency key its workflow chose, so a retried activity reaches the platform once;
a read carries no key. Either way a 4xx fails without retrying and a 5xx is retried
(`activities.errors.raise_for_status`), and the answer is parsed into the activity's result model.
"""

from __future__ import annotations

from typing import Any, TypeVar

import httpx
from pydantic import BaseModel
from temporalio.exceptions import ApplicationError

from activities.errors import raise_for_status

M = TypeVar("M", bound=BaseModel)


class PlatformHttp:
    """Wraps the worker's shared `httpx.AsyncClient`; `what` names the call in the error a failure raises."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client

    async def call(
        self,
        method: str,
        path: str,
        *,
        what: str,
        key: str | None = None,
        body: Any = None,
        params: dict[str, str] | None = None,
    ) -> Any:
        """Send one request (with an `Idempotency-Key` header when `key` is given) and return its JSON.

        An empty `key` is a request that was sent outside `IncidentWorkflow.act`, which sets it: refused
        here, before anything reaches the system, since a retry of it could not be told from a new call.
        """
        if key is not None and not key:
            raise ApplicationError(
                f"{what}: the request's idempotency_key is empty; a runbook sends effects through "
                "IncidentWorkflow.act, which sets it from the step",
                type="IdempotencyKeyMissing",
                non_retryable=True,
            )
        headers = None if key is None else {"Idempotency-Key": key}
        response = await self._client.request(method, path, json=body, params=params, headers=headers)
        raise_for_status(response, what)
        return response.json()

    async def effect(
        self, method: str, path: str, *, key: str, body: Any = None, result: type[M], what: str
    ) -> M:
        """A keyed call whose answer is one `result`."""
        return result.model_validate(await self.call(method, path, what=what, key=key, body=body))

    async def read(self, path: str, result: type[M], what: str, params: dict[str, str] | None = None) -> M:
        """A GET without a key whose answer is one `result`."""
        return result.model_validate(await self.call("GET", path, what=what, params=params))
