"""The sandbox platform: an in-memory stand-in for the operator's systems, for the dev stack and the tests.

It plays the AI-agent platform, the gateway/runtime, the chat channel and the deploy system. What makes it
useful as evidence is the call log: every effectful call is recorded with its idempotency key, and a key
seen before is answered from the stored response instead of being applied again, so a test can prove that
a retried activity reached the outside world exactly once. Never used in production.
"""

from __future__ import annotations

from types import ModuleType

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
    health,
    scenarios,
    security,
    usage,
)
from workers.sandbox.state import Sandbox

# The platform contract: what Stanch's http adapters call, and all a real system behind
# STANCH_PLATFORM_URL implements (docs/platform-openapi.json is generated from these alone, by
# `python -m workers.sandbox.contract`). One router per system, plus the health check every `check()` reads.
CONTRACT_ROUTERS: tuple[ModuleType, ...] = (
    health,
    agents,
    agent_lifecycle,
    chat,
    chat_channels,
    gateway,
    deploys,
    flags,
    databases,
    documents,
    security,
    usage,
)
# The test controls: they steer and inspect the sandbox itself (call log, faults, scenario set-up), so no
# real system implements them and the spec leaves them out.
CONTROL_ROUTERS: tuple[ModuleType, ...] = (control, scenarios)


def router_tag(module: ModuleType) -> str:
    """The OpenAPI tag of a router module: its own name (`gateway`, `chat_channels` …)."""
    return module.__name__.rsplit(".", 1)[-1]


def create_app() -> FastAPI:
    """A fresh platform: one demo agent, one customer channel, a healthy gateway, recent deploys."""
    app = FastAPI(title="Stanch sandbox platform", description=__doc__)
    app.state.sandbox = Sandbox()
    app.add_middleware(CallRecorder, sandbox=app.state.sandbox)
    # The test controls first, as before the split; no two routes match the same method and path, so the
    # order of the systems' routers does not change which route answers.
    for module in CONTROL_ROUTERS:
        app.include_router(module.router, tags=[f"sandbox {router_tag(module)}"])
    for module in CONTRACT_ROUTERS:
        app.include_router(module.router, tags=[router_tag(module)])
    return app


def main(host: str, port: int) -> None:
    uvicorn.run(create_app(), host=host, port=port, log_level="warning")
