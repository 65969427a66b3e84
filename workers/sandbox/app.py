"""The sandbox platform: an in-memory stand-in for the operator's systems, for the dev stack and the tests.

It plays the AI-agent platform, the gateway/runtime, the chat channel and the deploy system. What makes it
useful as evidence is the call log: every effectful call is recorded with its idempotency key, and a key
seen before is answered from the stored response instead of being applied again, so a test can prove that
a retried activity reached the outside world exactly once. Never used in production.
"""

from __future__ import annotations

import uvicorn
from fastapi import FastAPI

from workers.sandbox.recording import CallRecorder
from workers.sandbox.routers import (
    agent_lifecycle,
    agents,
    chat,
    chat_channels,
    control,
    databases,
    deploys,
    documents,
    flags,
    gateway,
    scenarios,
    security,
    usage,
)
from workers.sandbox.state import Sandbox


def create_app() -> FastAPI:
    """A fresh platform: one demo agent, one customer channel, a healthy gateway, recent deploys."""
    app = FastAPI(title="Stanch sandbox platform", description=__doc__)
    app.state.sandbox = Sandbox()
    app.add_middleware(CallRecorder, sandbox=app.state.sandbox)
    # The test controls first, as before the split; no two routes match the same method and path, so the
    # order of the systems' routers does not change which route answers.
    systems = (agents, agent_lifecycle, chat, chat_channels, gateway, deploys, flags, databases, documents)
    for module in (control, scenarios, *systems, security, usage):
        app.include_router(module.router)
    return app


def main(host: str, port: int) -> None:
    uvicorn.run(create_app(), host=host, port=port, log_level="warning")
