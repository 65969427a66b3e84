"""The one way activities speak to the operator's platform (the sandbox platform in dev and tests).

An effect carries the idempotency key its workflow chose, so a retried activity reaches the platform once;
a read carries no key. Either way a 4xx fails without retrying and a 5xx is retried
(`activities.errors.raise_for_status`), and the answer is parsed into the activity's result model.
"""

from __future__ import annotations

from typing import Any, ClassVar, TypeVar

import httpx
from pydantic import BaseModel, Field, SecretStr

from activities.adapters import AdapterContext, AdapterSettings, require_idempotency_key
from activities.errors import raise_for_status
from schemas.systems import SystemCheck, SystemName
from stanch.tls import default_tls_context

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

        A `body` that is a model (the contract's request models in `schemas/<system>.py`) is sent as its JSON.
        An empty `key` is a request that was sent outside `IncidentWorkflow.act`, which sets it: refused
        here, before anything reaches the system, since a retry of it could not be told from a new call.
        """
        require_idempotency_key(what, key)
        headers = None if key is None else {"Idempotency-Key": key}
        if isinstance(body, BaseModel):
            body = body.model_dump(mode="json")
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


class HttpSettings(AdapterSettings):
    """`[systems.<name>] adapter = "http"`: where the system's side of the contract answers."""

    # None: STANCH_PLATFORM_URL, through the worker's shared client.
    base_url: str | None = None
    # Sent as `Authorization: Bearer …`; in the policy as `token_env = "VARIABLE"`.
    token: SecretStr | None = None
    timeout_s: float = Field(20.0, gt=0, le=300)


class HttpConnection:
    """The part every http adapter shares: its client, `check()` and closing. Mixed in before the
    system's interface: `class HttpGateway(HttpConnection, Gateway)`."""

    Settings: ClassVar[type[AdapterSettings]] = HttpSettings
    adapter: ClassVar[str] = "http"
    system: ClassVar[SystemName]
    settings: AdapterSettings
    context: AdapterContext

    def __init__(self, settings: AdapterSettings, context: AdapterContext) -> None:
        assert isinstance(settings, HttpSettings)
        self.settings = settings
        self.context = context
        self._own: httpx.AsyncClient | None = None
        shared = context.platform_http
        if settings.base_url is None and settings.token is None and shared is not None:
            client = shared
        else:
            headers = (
                {}
                if settings.token is None
                else {"Authorization": f"Bearer {settings.token.get_secret_value()}"}
            )
            client = self._own = httpx.AsyncClient(
                base_url=settings.base_url or context.platform_url,
                timeout=settings.timeout_s,
                headers=headers,
                verify=default_tls_context(),
            )
        self.base_url = str(client.base_url)
        self._http = PlatformHttp(client)

    async def check(self) -> SystemCheck:
        # The contract's `GET /healthz`: 200 when the system's side of the contract is up.
        try:
            await self._http.call("GET", "/healthz", what="health")
        except Exception as error:
            return SystemCheck(
                system=self.system, adapter=self.adapter, ok=False, detail=f"{self.base_url}: {error}"
            )
        return SystemCheck(
            system=self.system, adapter=self.adapter, ok=True, detail=f"{self.base_url} answers"
        )

    async def aclose(self) -> None:
        if self._own is not None:
            await self._own.aclose()


class KeyedCalls(HttpConnection):
    """For systems whose contract routes all carry the step's key, reads too (deploys, database): the
    platform ignores it on a GET, and its call log stays uniform."""

    async def _call(
        self, method: str, path: str, key: str, result: type[M], what: str, body: BaseModel | None = None
    ) -> M:
        return await self._http.effect(method, path, key=key, body=body, result=result, what=what)

    async def _read(self, path: str, key: str, result: type[M], what: str) -> M:
        return await self._call("GET", path, key, result, what)

    async def _post(
        self, path: str, key: str, result: type[M], what: str, body: BaseModel | None = None
    ) -> M:
        """A POST; an effect the contract gives no body (a backup, shipping a build) sends none."""
        return await self._call("POST", path, key, result, what, body)
