"""The call-recording middleware: injected faults, idempotent replay and the call log.

It runs before any route, so a test can prove that a retried activity reached the outside world exactly
once: every effectful call is recorded with its `Idempotency-Key`, and a key seen before is answered from the
stored response instead of being applied again. The control paths are never faulted nor logged."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fastapi import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from workers.sandbox.common import now_iso
from workers.sandbox.models.calls import CallRecord

if TYPE_CHECKING:
    from workers.sandbox.state import Sandbox


# Paths that inspect or steer the sandbox itself: never faulted, never logged, or a test could not see
# what happened or clean up after itself. `/healthz` is the contract's, but the readiness probe of every
# stack that starts the sandbox: a fault on it would keep the stack from starting, not test a runbook.
CONTROL_PATHS = ("/faults", "/calls", "/healthz")


def _is_control(path: str) -> bool:
    return any(path == prefix or path.startswith(prefix + "/") for prefix in CONTROL_PATHS)


def _decode(raw: bytes) -> Any:
    """A request or response body as JSON when it is JSON; the call log must keep even malformed bodies."""
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", errors="replace")


StoreKey = tuple[str, str, str]


@dataclass(frozen=True)
class StoredResponse:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes

    @classmethod
    def of_json(cls, status: int, payload: Any) -> StoredResponse:
        body = json.dumps(payload).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        return cls(status, headers, body)

    def as_replay(self) -> StoredResponse:
        payload = _decode(self.body)
        if not isinstance(payload, dict):
            return self
        return StoredResponse.of_json(self.status, {**payload, "replayed": True})

    async def send(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status, "headers": self.headers})
        await send({"type": "http.response.body", "body": self.body})


class CallRecorder:
    """Runs before any route, so injected faults and replays never reach the handlers, and every
    effectful request — refused, faulted or replayed — lands in the call log with the status it got."""

    def __init__(self, app: ASGIApp, sandbox: Sandbox) -> None:
        self.app = app
        self.sandbox = sandbox

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or _is_control(scope["path"]):
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        raw_body = await request.body()
        key = request.headers.get("idempotency-key") or None
        # Reads are never answered from the store, even if a client sends a key with every request.
        effectful = request.method not in ("GET", "HEAD")
        store_key = (request.method, request.url.path, key) if key and effectful else None
        async with self.sandbox.lock(store_key):
            response, replayed = await self._answer(scope, receive, raw_body, store_key)
        if effectful:
            self.sandbox.calls.append(
                CallRecord(
                    method=request.method,
                    path=request.url.path,
                    idempotency_key=key,
                    body=_decode(raw_body),
                    replayed=replayed,
                    status_code=response.status,
                    at=now_iso(),
                )
            )
        await response.send(send)

    async def _answer(
        self, scope: Scope, receive: Receive, raw_body: bytes, store_key: StoreKey | None
    ) -> tuple[StoredResponse, bool]:
        fault = self.sandbox.take_fault(scope["path"])
        if fault is not None and not fault.apply_first:
            await asyncio.sleep(fault.hang_seconds)
            return StoredResponse.of_json(fault.status, {"detail": "injected fault"}), False
        if store_key is not None and store_key in self.sandbox.responses:
            return self.sandbox.responses[store_key].as_replay(), True
        response = await self._run(scope, receive, raw_body)
        # Only a success is the key's answer: a refused or failed attempt must be retryable.
        if store_key is not None and 200 <= response.status < 300:
            self.sandbox.responses[store_key] = response
        if fault is not None:
            await asyncio.sleep(fault.hang_seconds)
        return response, False

    async def _run(self, scope: Scope, receive: Receive, raw_body: bytes) -> StoredResponse:
        body_sent = False

        async def replay_body() -> Message:
            # The body was read up front for the log; hand it to the route once, then the real stream.
            nonlocal body_sent
            if body_sent:
                return await receive()
            body_sent = True
            return {"type": "http.request", "body": raw_body, "more_body": False}

        status = 500
        headers: list[tuple[bytes, bytes]] = []
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            nonlocal status, headers
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, replay_body, capture)
        return StoredResponse(status, headers, b"".join(chunks))
