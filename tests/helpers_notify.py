"""Local receivers for notification tests: a real HTTP server that records every request, a real SMTP
server (aiosmtpd), and a sample Notification. Shared by the notifier tests and the markup tests, which both
read what a channel really received."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import uvicorn
from aiosmtpd.controller import Controller
from starlette.types import Receive, Scope, Send

from schemas.actions import Notification
from stanch.tls import default_tls_context
from tests.helpers import Mailbox, ThreadedServer, free_port


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return httpx.Response(200, content=self.body).json()


@dataclass
class Receiver:
    """A real HTTP server that records every request and answers as each path is told to."""

    url: str = ""
    requests: list[Received] = field(default_factory=list)
    answers: dict[str, tuple[int, bytes, str]] = field(default_factory=dict)

    def answer(self, path: str, status: int, body: bytes = b"", content_type: str = "text/plain") -> None:
        self.answers[path] = (status, body, content_type)

    def to(self, path: str) -> list[Received]:
        return [request for request in self.requests if request.path == path]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # lifespan
            return
        body = b""
        while True:
            event = await receive()
            body += event.get("body", b"")
            if not event.get("more_body"):
                break
        headers = {key.decode().lower(): value.decode() for key, value in scope["headers"]}
        self.requests.append(Received(scope["method"], scope["path"], headers, body))
        status, answer, content_type = self.answers.get(scope["path"], (200, b"ok", "text/plain"))
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", content_type.encode())],
            }
        )
        await send({"type": "http.response.body", "body": answer})


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    app = Receiver()
    port = free_port()
    server = ThreadedServer(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "receiver did not start"
        time.sleep(0.02)
    app.url = f"http://127.0.0.1:{port}"
    yield app
    server.should_exit = True
    thread.join(timeout=5)


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    box = Mailbox()
    controller = Controller(
        box,
        hostname="127.0.0.1",
        port=free_port(),
        authenticator=box.authenticate,
        auth_require_tls=False,
    )
    controller.start()
    try:
        yield box, controller.port
    finally:
        controller.stop()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(verify=default_tls_context()) as client:
        yield client


def notification(**changes: Any) -> Notification:
    values: dict[str, Any] = {
        "idempotency_key": f"incident-test-{uuid.uuid4().hex[:8]}/run/tell-oncall",
        "channel": "on-call",
        "severity": "P1",
        "title": "Agent support-bot paused",
        "text": "It promised a 90% discount. Approve a rollback to v2 when ready.",
        "incident_id": "incident-test-1",
    }
    return Notification(**(values | changes))


def prefix() -> str:
    return f"/t-{uuid.uuid4().hex[:8]}"
