"""The sandbox platform: an in-memory stand-in for the operator's systems, for the dev stack and the tests.

It plays the AI-agent platform, the gateway/runtime, the chat channel and the deploy system. What makes it
useful as evidence is the call log: every effectful call is recorded with its idempotency key, and a key
seen before is answered from the stored response instead of being applied again, so a test can prove that
a retried activity reached the outside world exactly once. Never used in production.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, Self

import uvicorn
from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException, Request
from pydantic import BaseModel, Field
from starlette.types import ASGIApp, Message, Receive, Scope, Send

GOLD_SET_THRESHOLD = 0.8
# Versions without a configured gold-set score pass comfortably; a test that needs a failing version sets it.
DEFAULT_GOLD_SCORE = 0.93
# Paths that inspect or steer the sandbox itself: never faulted, never logged, or a test could not see
# what happened or clean up after itself.
CONTROL_PATHS = ("/faults", "/calls", "/healthz")

AgentStatus = Literal["active", "paused", "terminated"]
DeployStatus = Literal["live", "rolled_back"]


def _now() -> str:
    return datetime.now(UTC).isoformat()


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


# --- wire models -------------------------------------------------------------------------------------


class HistoryEntry(BaseModel):
    at: str
    event: str
    version: str
    reason: str = ""


class Agent(BaseModel):
    agent_id: str
    state: AgentStatus
    version: str
    previous_version: str | None
    versions: list[str]
    history: list[HistoryEntry] = []
    # Internal: lets a test decide which versions fail the gold set, without exposing it as platform data.
    gold_scores: dict[str, float] = Field(default_factory=dict, exclude=True)
    snapshots: int = Field(default=0, exclude=True)

    def record(self, event: str, reason: str) -> None:
        self.history.append(HistoryEntry(at=_now(), event=event, version=self.version, reason=reason))


class AgentSpec(BaseModel):
    versions: list[str] = Field(min_length=1)
    state: AgentStatus = "active"
    gold_scores: dict[str, Annotated[float, Field(ge=0, le=1)]] = {}


class EffectRequest(BaseModel):
    reason: str = ""


class RollbackRequest(EffectRequest):
    to_version: str | None = None


class AgentEffect(BaseModel):
    agent_id: str
    state: AgentStatus
    version: str
    previous_version: str | None
    replayed: bool = False

    @classmethod
    def of(cls, agent: Agent, **extra: Any) -> Self:
        return cls(
            agent_id=agent.agent_id,
            state=agent.state,
            version=agent.version,
            previous_version=agent.previous_version,
            **extra,
        )


class SnapshotEffect(AgentEffect):
    snapshot_id: str


class GoldSetEffect(AgentEffect):
    score: float
    threshold: float
    passed: bool


class ChatMessage(BaseModel):
    id: int
    body: dict[str, Any]
    idempotency_key: str
    at: str


class ChatReceipt(BaseModel):
    id: int
    replayed: bool = False


class ChatStatus(BaseModel):
    channel: str = "customer-support"
    webhook_events_last_5m: int = 120
    balance: float = 250.0
    token_expires_in_s: int = 30 * 24 * 3600
    provider_status: str = "up"


class ChatStatusUpdate(BaseModel):
    webhook_events_last_5m: int | None = None
    balance: float | None = None
    token_expires_in_s: int | None = None
    provider_status: str | None = None


class Gateway(BaseModel):
    memory_mb: float = 620.0
    high_watermark_mb: float = 1536.0
    healthy: bool = True
    restarts: int = 0


class GatewayUpdate(BaseModel):
    memory_mb: float | None = None
    high_watermark_mb: float | None = None
    healthy: bool | None = None
    restarts: int | None = None


class GatewayRestart(Gateway):
    replayed: bool = False


class Deploy(BaseModel):
    id: str
    service: str
    version: str
    at: str
    status: DeployStatus = "live"


class DeployRollback(Deploy):
    replayed: bool = False


class FlagSetting(BaseModel):
    enabled: bool


class Flag(BaseModel):
    name: str
    enabled: bool
    replayed: bool = False


class CallRecord(BaseModel):
    method: str
    path: str
    idempotency_key: str | None
    body: Any
    replayed: bool
    status_code: int
    at: str


class CallCount(BaseModel):
    applied: int
    replayed: int


class Fault(BaseModel):
    path_prefix: str
    status: int = Field(500, ge=400, le=599)
    times: int = Field(1, ge=1)


# --- state -------------------------------------------------------------------------------------------

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


def _seed_agents() -> dict[str, Agent]:
    agent = _new_agent("support-bot", AgentSpec(versions=["v1", "v2", "v3"], gold_scores={"v3": 0.62}))
    return {agent.agent_id: agent}


def _new_agent(agent_id: str, spec: AgentSpec) -> Agent:
    agent = Agent(
        agent_id=agent_id,
        state=spec.state,
        version=spec.versions[-1],
        previous_version=spec.versions[-2] if len(spec.versions) > 1 else None,
        versions=list(spec.versions),
        gold_scores=dict(spec.gold_scores),
    )
    agent.record("created", "")
    return agent


def _seed_deploys() -> list[Deploy]:
    return [
        Deploy(id="deploy-3", service="support-bot-api", version="1.42.0", at="2026-11-21T09:12:00+00:00"),
        Deploy(id="deploy-2", service="gateway", version="2.7.1", at="2026-11-20T16:40:00+00:00"),
        Deploy(id="deploy-1", service="support-bot-api", version="1.41.3", at="2026-11-19T11:05:00+00:00"),
    ]


@dataclass
class Sandbox:
    agents: dict[str, Agent] = field(default_factory=_seed_agents)
    messages: list[ChatMessage] = field(default_factory=list)
    chat_status: ChatStatus = field(default_factory=ChatStatus)
    gateway: Gateway = field(default_factory=Gateway)
    deploys: list[Deploy] = field(default_factory=_seed_deploys)  # newest first
    flags: dict[str, bool] = field(default_factory=lambda: {"agent-tool-calls": True})
    calls: list[CallRecord] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    responses: dict[StoreKey, StoredResponse] = field(default_factory=dict)
    locks: dict[StoreKey, asyncio.Lock] = field(default_factory=dict)

    def agent(self, agent_id: str) -> Agent:
        if agent_id not in self.agents:
            raise HTTPException(404, f"unknown agent {agent_id}")
        return self.agents[agent_id]

    def take_fault(self, path: str) -> Fault | None:
        for fault in self.faults:
            if path.startswith(fault.path_prefix):
                fault.times -= 1
                if fault.times == 0:
                    self.faults.remove(fault)
                return fault
        return None

    def lock(self, key: StoreKey | None) -> contextlib.AbstractAsyncContextManager[Any]:
        # A retry can arrive while the first attempt is still being applied; holding the key's lock
        # makes the second wait and then replay instead of applying the effect a second time.
        if key is None:
            return contextlib.nullcontext()
        return self.locks.setdefault(key, asyncio.Lock())


# --- middleware: faults, idempotent replay, call log ---------------------------------------------------


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
                    at=_now(),
                )
            )
        await response.send(send)

    async def _answer(
        self, scope: Scope, receive: Receive, raw_body: bytes, store_key: StoreKey | None
    ) -> tuple[StoredResponse, bool]:
        fault = self.sandbox.take_fault(scope["path"])
        if fault is not None:
            return StoredResponse.of_json(fault.status, {"detail": "injected fault"}), False
        if store_key is not None and store_key in self.sandbox.responses:
            return self.sandbox.responses[store_key].as_replay(), True
        response = await self._run(scope, receive, raw_body)
        # Only a success is the key's answer: a refused or failed attempt must be retryable.
        if store_key is not None and 200 <= response.status < 300:
            self.sandbox.responses[store_key] = response
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


# --- routes ------------------------------------------------------------------------------------------


def _sandbox(request: Request) -> Sandbox:
    sandbox: Sandbox = request.app.state.sandbox
    return sandbox


def require_idempotency_key(idempotency_key: Annotated[str | None, Header()] = None) -> str:
    if not idempotency_key:
        raise HTTPException(400, "Idempotency-Key header is required")
    return idempotency_key


SandboxDep = Annotated[Sandbox, Depends(_sandbox)]
IdempotencyKey = Annotated[str, Depends(require_idempotency_key)]

control = APIRouter()
# Reading the stand-in, or setting up a scenario: not effects a runbook performs, so no key is needed.
scenario = APIRouter()
# Everything on this router changes the stand-in's state, so it must be safe to retry.
effects = APIRouter(dependencies=[Depends(require_idempotency_key)])


@control.get("/healthz")
async def healthz() -> dict[str, bool]:
    return {"ok": True}


@control.get("/calls")
async def list_calls(sandbox: SandboxDep, path_prefix: str = "") -> list[CallRecord]:
    return [call for call in sandbox.calls if call.path.startswith(path_prefix)]


@control.get("/calls/count")
async def count_calls(sandbox: SandboxDep, path: str, method: str = "POST") -> CallCount:
    matching = [call for call in sandbox.calls if call.path == path and call.method == method.upper()]
    return CallCount(
        applied=sum(1 for call in matching if not call.replayed and 200 <= call.status_code < 300),
        replayed=sum(1 for call in matching if call.replayed),
    )


@control.post("/faults")
async def add_fault(sandbox: SandboxDep, fault: Fault) -> list[Fault]:
    sandbox.faults.append(fault)
    return sandbox.faults


@control.delete("/faults")
async def clear_faults(sandbox: SandboxDep) -> list[Fault]:
    sandbox.faults.clear()
    return sandbox.faults


@scenario.get("/agents/{agent_id}")
async def get_agent(sandbox: SandboxDep, agent_id: str) -> Agent:
    return sandbox.agent(agent_id)


@scenario.put("/agents/{agent_id}")
async def put_agent(sandbox: SandboxDep, agent_id: str, spec: AgentSpec) -> Agent:
    sandbox.agents[agent_id] = _new_agent(agent_id, spec)
    return sandbox.agents[agent_id]


def _alive(agent: Agent) -> Agent:
    if agent.state == "terminated":
        raise HTTPException(409, f"agent {agent.agent_id} is terminated")
    return agent


@effects.post("/agents/{agent_id}/pause")
async def pause_agent(
    sandbox: SandboxDep, agent_id: str, request: EffectRequest = EffectRequest()
) -> AgentEffect:
    agent = _alive(sandbox.agent(agent_id))
    agent.state = "paused"
    agent.record("paused", request.reason)
    return AgentEffect.of(agent)


@effects.post("/agents/{agent_id}/resume")
async def resume_agent(
    sandbox: SandboxDep, agent_id: str, request: EffectRequest = EffectRequest()
) -> AgentEffect:
    agent = _alive(sandbox.agent(agent_id))
    agent.state = "active"
    agent.record("resumed", request.reason)
    return AgentEffect.of(agent)


@effects.post("/agents/{agent_id}/rollback")
async def rollback_agent(
    sandbox: SandboxDep, agent_id: str, request: RollbackRequest = RollbackRequest()
) -> AgentEffect:
    agent = _alive(sandbox.agent(agent_id))
    current = agent.versions.index(agent.version)
    if request.to_version is None:
        if current == 0:
            raise HTTPException(409, f"agent {agent_id} is at its earliest version {agent.version}")
        target = agent.versions[current - 1]
    elif request.to_version not in agent.versions:
        raise HTTPException(409, f"agent {agent_id} has no version {request.to_version}")
    elif agent.versions.index(request.to_version) >= current:
        raise HTTPException(409, f"{request.to_version} is not earlier than the current {agent.version}")
    else:
        target = request.to_version
    agent.previous_version, agent.version = agent.version, target
    agent.record("rolled_back", request.reason)
    return AgentEffect.of(agent)


@effects.post("/agents/{agent_id}/snapshot")
async def snapshot_agent(
    sandbox: SandboxDep, agent_id: str, request: EffectRequest = EffectRequest()
) -> SnapshotEffect:
    agent = sandbox.agent(agent_id)
    agent.snapshots += 1
    agent.record("snapshot", request.reason)
    return SnapshotEffect.of(agent, snapshot_id=f"snap-{agent_id}-{agent.snapshots}")


@effects.post("/agents/{agent_id}/gold-set")
async def run_gold_set(
    sandbox: SandboxDep, agent_id: str, request: EffectRequest = EffectRequest()
) -> GoldSetEffect:
    agent = sandbox.agent(agent_id)
    score = agent.gold_scores.get(agent.version, DEFAULT_GOLD_SCORE)
    agent.record("gold_set", request.reason)
    return GoldSetEffect.of(
        agent, score=score, threshold=GOLD_SET_THRESHOLD, passed=score >= GOLD_SET_THRESHOLD
    )


@effects.post("/agents/{agent_id}/archive")
async def archive_agent(
    sandbox: SandboxDep, agent_id: str, request: EffectRequest = EffectRequest()
) -> AgentEffect:
    agent = sandbox.agent(agent_id)
    agent.record("archived", request.reason)
    return AgentEffect.of(agent)


@effects.post("/agents/{agent_id}/revoke-tokens")
async def revoke_agent_tokens(
    sandbox: SandboxDep, agent_id: str, request: EffectRequest = EffectRequest()
) -> AgentEffect:
    agent = sandbox.agent(agent_id)
    agent.record("tokens_revoked", request.reason)
    return AgentEffect.of(agent)


@effects.post("/agents/{agent_id}/terminate")
async def terminate_agent(
    sandbox: SandboxDep, agent_id: str, request: EffectRequest = EffectRequest()
) -> AgentEffect:
    agent = sandbox.agent(agent_id)
    agent.state = "terminated"
    agent.record("terminated", request.reason)
    return AgentEffect.of(agent)


@effects.post("/chat/messages", status_code=201)
async def post_chat_message(sandbox: SandboxDep, key: IdempotencyKey, body: dict[str, Any]) -> ChatReceipt:
    message = ChatMessage(id=len(sandbox.messages) + 1, body=body, idempotency_key=key, at=_now())
    sandbox.messages.append(message)
    return ChatReceipt(id=message.id)


@scenario.get("/chat/messages")
async def list_chat_messages(sandbox: SandboxDep) -> list[ChatMessage]:
    return sandbox.messages


@scenario.get("/chat/status")
async def get_chat_status(sandbox: SandboxDep) -> ChatStatus:
    return sandbox.chat_status


@scenario.put("/chat/status")
async def put_chat_status(sandbox: SandboxDep, update: ChatStatusUpdate) -> ChatStatus:
    sandbox.chat_status = sandbox.chat_status.model_copy(update=update.model_dump(exclude_unset=True))
    return sandbox.chat_status


@scenario.get("/gateway")
async def get_gateway(sandbox: SandboxDep) -> Gateway:
    return sandbox.gateway


@scenario.put("/gateway")
async def put_gateway(sandbox: SandboxDep, update: GatewayUpdate) -> Gateway:
    sandbox.gateway = sandbox.gateway.model_copy(update=update.model_dump(exclude_unset=True))
    return sandbox.gateway


@effects.post("/gateway/restart")
async def restart_gateway(sandbox: SandboxDep) -> GatewayRestart:
    # A restart frees what leaked but not the working set: memory comes back at 40 %.
    gateway = sandbox.gateway
    sandbox.gateway = Gateway(
        memory_mb=round(gateway.memory_mb * 0.4, 1),
        high_watermark_mb=gateway.high_watermark_mb,
        healthy=True,
        restarts=gateway.restarts + 1,
    )
    return GatewayRestart(**sandbox.gateway.model_dump())


@scenario.get("/deploys")
async def list_deploys(sandbox: SandboxDep) -> list[Deploy]:
    return sandbox.deploys


@effects.post("/deploys/rollback")
async def rollback_deploy(sandbox: SandboxDep) -> DeployRollback:
    latest = next((deploy for deploy in sandbox.deploys if deploy.status == "live"), None)
    if latest is None:
        raise HTTPException(409, "no live deploy to roll back")
    latest.status = "rolled_back"
    return DeployRollback(**latest.model_dump())


@scenario.get("/flags")
async def list_flags(sandbox: SandboxDep) -> list[Flag]:
    return [Flag(name=name, enabled=enabled) for name, enabled in sandbox.flags.items()]


@effects.put("/flags/{name}")
async def set_flag(sandbox: SandboxDep, name: str, setting: FlagSetting) -> Flag:
    sandbox.flags[name] = setting.enabled
    return Flag(name=name, enabled=setting.enabled)


def create_app() -> FastAPI:
    """A fresh platform: one demo agent, one customer channel, a healthy gateway, recent deploys."""
    app = FastAPI(title="Stanch sandbox platform", description=__doc__)
    app.state.sandbox = Sandbox()
    app.add_middleware(CallRecorder, sandbox=app.state.sandbox)
    for router in (control, scenario, effects):
        app.include_router(router)
    return app


def main(host: str, port: int) -> None:
    uvicorn.run(create_app(), host=host, port=port, log_level="warning")
