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
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, Self, TypeVar

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


T = TypeVar("T")


def _found(items: Mapping[str, T], key: str, detail: str) -> T:
    """`items[key]`, or the 404 (with `detail`) the platform answers for something it does not know."""
    if key not in items:
        raise HTTPException(404, detail)
    return items[key]


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
    # A hanging endpoint: hold the request this long before answering with `status`.
    hang_seconds: float = Field(0, ge=0, le=600)
    # A slow platform rather than a failing one: apply the call at once and hold only its own answer, so the
    # caller can give up or die although the effect happened (`status` is not used then).
    apply_first: bool = False


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
    infra: dict[str, InfraState] = field(default_factory=dict)  # deployments: per service
    external: dict[str, ExternalState] = field(default_factory=dict)  # deployments
    qa_scripts: dict[str, list[QaVerdict]] = field(default_factory=dict)  # deployments: verdicts to come
    qa_runs: list[QaRunRecord] = field(default_factory=list)  # deployments
    hotfix_failures: dict[str, int] = field(default_factory=dict)  # deployments: builds to fail
    hotfix_builds: dict[str, HotfixBuildRecord] = field(default_factory=dict)  # deployments
    databases: dict[str, ServiceDatabase] = field(default_factory=dict)  # deployments
    stories: list[StoryRecord] = field(default_factory=list)  # deployments: backlog
    calls: list[CallRecord] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    responses: dict[StoreKey, StoredResponse] = field(default_factory=dict)
    locks: dict[StoreKey, asyncio.Lock] = field(default_factory=dict)
    agent_lifecycles: dict[str, AgentLifecycle] = field(default_factory=lambda: _seed_agent_lifecycles())
    handoffs: dict[str, HandoffDesk] = field(default_factory=dict)  # reports and handoffs
    security_events: dict[str, list[SecurityEvent]] = field(default_factory=dict)  # reports and handoffs
    evidence: dict[str, Evidence] = field(default_factory=dict)  # reports and handoffs
    postmortems: dict[str, PostMortem] = field(default_factory=dict)  # reports and handoffs
    usage: dict[str, AgentUsage] = field(default_factory=lambda: _seed_usage())  # reports and handoffs
    reports: dict[str, Report] = field(default_factory=dict)  # reports and handoffs
    gateway_runtimes: dict[str, GatewayRuntime] = field(default_factory=lambda: _seed_gateway_runtimes())
    chat_channels: dict[str, ChatChannel] = field(default_factory=lambda: _seed_chat_channels())

    def agent(self, agent_id: str) -> Agent:
        return _found(self.agents, agent_id, f"unknown agent {agent_id}")

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


@control.get("/faults")
async def list_faults(sandbox: SandboxDep) -> list[Fault]:
    # A fault leaves this list once taken: a test can tell that its request has reached the platform.
    return sandbox.faults


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


# ---- agents: lifecycle ----
# What the platform keeps around an agent besides its versions, for onboarding, upgrade and termination: the
# workspace (files), the injected config, the memory, the credentials (tokens, secrets), the agents that
# depend on it, state snapshots to restore, archives, the retention date, and notices from other agents.
# Kept beside `Agent` (one record per agent id, created on first use) so an agent that never went through a
# lifecycle runbook looks exactly as before, and so an onboarding can prepare a record before the agent exists.


class AgentSnapshotData(BaseModel):
    snapshot_id: str
    version: str
    config: dict[str, Any]
    memory: list[str]
    at: str


class AgentArchive(BaseModel):
    archive_id: str
    version: str
    workspace: dict[str, str]
    memory: list[str]
    logs: list[HistoryEntry]
    at: str


class AgentNotice(BaseModel):
    from_agent: str
    text: str
    at: str


class AgentLifecycle(BaseModel):
    workspace: dict[str, str] | None = None
    config: dict[str, Any] = {}
    memory: list[str] = []
    secrets: list[str] = []
    tokens: list[str] = []
    dependents: list[str] = []
    healthy: bool = True
    # The config each known version would run with: what an upgrade diff is computed from.
    version_configs: dict[str, dict[str, Any]] = {}
    # Gold-set scores handed to the agent when a config deploy creates it (onboarding: it does not exist yet).
    gold_scores: dict[str, float] = {}
    fixes: int = 0
    snapshots: dict[str, AgentSnapshotData] = {}
    archives: dict[str, AgentArchive] = {}
    retention_until: str | None = None
    retention_archive: str | None = None
    revoked_tokens: list[str] = []
    deleted_secrets: list[str] = []
    notices: list[AgentNotice] = []


class AgentLifecycleSetup(BaseModel):
    """Scenario set-up: every field left out keeps its value."""

    workspace: dict[str, str] | None = None
    config: dict[str, Any] | None = None
    memory: list[str] | None = None
    secrets: list[str] | None = None
    tokens: list[str] | None = None
    dependents: list[str] | None = None
    healthy: bool | None = None
    version_configs: dict[str, dict[str, Any]] | None = None
    gold_scores: dict[str, Annotated[float, Field(ge=0, le=1)]] | None = None


class WorkspaceSpec(BaseModel):
    files: dict[str, str] = Field(min_length=1)


class WorkspaceEffect(BaseModel):
    agent_id: str
    files: list[str]
    replayed: bool = False


class AgentConfigSpec(BaseModel):
    version: str = Field(min_length=1)
    config: dict[str, Any] = {}
    reason: str = ""


class AgentConfigEffect(AgentEffect):
    config: dict[str, Any]


class AgentHealth(BaseModel):
    agent_id: str
    healthy: bool
    detail: str


class VersionChange(BaseModel):
    key: str
    before: Any = None
    after: Any = None


class VersionDiff(BaseModel):
    agent_id: str
    from_version: str
    to_version: str
    target_config: dict[str, Any]
    changes: list[VersionChange]


class DebugEffect(AgentEffect):
    findings: str


class AgentSnapshotEffect(AgentEffect):
    snapshot_id: str
    memory_items: int
    config_keys: list[str]


class RestoreEffect(AgentEffect):
    snapshot_id: str
    memory_items: int


class ArchiveEffect(BaseModel):
    agent_id: str
    archive_id: str
    files: int
    memory_items: int
    log_entries: int
    replayed: bool = False


class CredentialsEffect(BaseModel):
    agent_id: str
    removed: int
    replayed: bool = False


class RetentionSpec(BaseModel):
    archive_id: str
    until: str


class RetentionEffect(RetentionSpec):
    agent_id: str
    replayed: bool = False


class NoticeSpec(BaseModel):
    from_agent: str
    text: str


class NoticeEffect(BaseModel):
    agent_id: str
    notices: int
    replayed: bool = False


def _seed_agent_lifecycles() -> dict[str, AgentLifecycle]:
    # The demo agent of `make dev`, so `stanch fire agent-upgrade` and `agent-termination` have something real.
    support_bot = AgentLifecycle(
        workspace={"JOB.md": "Answer customer support chats for acme."},
        config={"model": "chat-small", "skills": ["faq", "orders"]},
        memory=["acme customers prefer email follow-ups"],
        tokens=["tok-chat", "tok-crm"],
        secrets=["CRM_API_KEY", "CHAT_TOKEN"],
        dependents=["triage-bot"],
        version_configs={"v4": {"model": "chat-large", "skills": ["faq", "orders", "summarise"]}},
    )
    return {"support-bot": support_bot}


def _lifecycle(sandbox: Sandbox, agent_id: str) -> AgentLifecycle:
    return sandbox.agent_lifecycles.setdefault(agent_id, AgentLifecycle())


def _archived(lifecycle: AgentLifecycle, agent_id: str, what: str) -> None:
    # The platform's own last line of defence: data that cannot be brought back needs an archive first.
    if not lifecycle.archives:
        raise HTTPException(409, f"agent {agent_id} has no archive; refusing to {what}")


@scenario.get("/agents/{agent_id}/lifecycle")
async def get_agent_lifecycle(sandbox: SandboxDep, agent_id: str) -> AgentLifecycle:
    return _lifecycle(sandbox, agent_id)


@scenario.put("/agents/{agent_id}/lifecycle")
async def put_agent_lifecycle(
    sandbox: SandboxDep, agent_id: str, setup: AgentLifecycleSetup
) -> AgentLifecycle:
    lifecycle = _lifecycle(sandbox, agent_id)
    for name, value in setup.model_dump(exclude_unset=True).items():
        setattr(lifecycle, name, value)
    return lifecycle


@scenario.get("/agents/{agent_id}/health")
async def agent_health(sandbox: SandboxDep, agent_id: str) -> AgentHealth:
    lifecycle = _lifecycle(sandbox, agent_id)
    agent = sandbox.agents.get(agent_id)
    if agent is None or agent.state == "terminated":
        return AgentHealth(agent_id=agent_id, healthy=False, detail="no running agent")
    if lifecycle.workspace is None:
        return AgentHealth(agent_id=agent_id, healthy=False, detail="no workspace")
    if not lifecycle.healthy:
        return AgentHealth(agent_id=agent_id, healthy=False, detail="agent does not answer its probe")
    return AgentHealth(agent_id=agent_id, healthy=True, detail=f"{agent.version} answers its probe")


@scenario.get("/agents/{agent_id}/versions/diff")
async def agent_version_diff(sandbox: SandboxDep, agent_id: str, to_version: str) -> VersionDiff:
    agent = sandbox.agent(agent_id)
    lifecycle = _lifecycle(sandbox, agent_id)
    if to_version not in lifecycle.version_configs and to_version not in agent.versions:
        raise HTTPException(404, f"agent {agent_id} has no version {to_version} to upgrade to")
    before = lifecycle.config
    after = lifecycle.version_configs.get(to_version, before)
    changes = [VersionChange(key="version", before=agent.version, after=to_version)]
    changes += [
        VersionChange(key=key, before=before.get(key), after=after.get(key))
        for key in sorted(set(before) | set(after))
        if before.get(key) != after.get(key)
    ]
    return VersionDiff(
        agent_id=agent_id,
        from_version=agent.version,
        to_version=to_version,
        target_config=dict(after),
        changes=changes,
    )


@scenario.get("/agents/{agent_id}/dependents")
async def agent_dependents(sandbox: SandboxDep, agent_id: str) -> list[str]:
    return list(_lifecycle(sandbox, agent_id).dependents)


@scenario.get("/agents/{agent_id}/archives/{archive_id}")
async def get_agent_archive(sandbox: SandboxDep, agent_id: str, archive_id: str) -> AgentArchive:
    archives = _lifecycle(sandbox, agent_id).archives
    return _found(archives, archive_id, f"agent {agent_id} has no archive {archive_id}")


@effects.put("/agents/{agent_id}/workspace")
async def put_agent_workspace(sandbox: SandboxDep, agent_id: str, spec: WorkspaceSpec) -> WorkspaceEffect:
    existing = sandbox.agents.get(agent_id)
    if existing is not None and existing.state != "terminated":
        raise HTTPException(409, f"agent {agent_id} already exists ({existing.state}); pick another name")
    lifecycle = _lifecycle(sandbox, agent_id)
    lifecycle.workspace = dict(spec.files)
    return WorkspaceEffect(agent_id=agent_id, files=sorted(spec.files))


@effects.put("/agents/{agent_id}/config")
async def put_agent_config(sandbox: SandboxDep, agent_id: str, spec: AgentConfigSpec) -> AgentConfigEffect:
    lifecycle = _lifecycle(sandbox, agent_id)
    agent = sandbox.agents.get(agent_id)
    if agent is None or agent.state == "terminated":
        if lifecycle.workspace is None:
            raise HTTPException(409, f"agent {agent_id} has no workspace to deploy into")
        # A new agent starts paused: it serves nobody until it has passed its gold set.
        agent = _new_agent(
            agent_id, AgentSpec(versions=[spec.version], state="paused", gold_scores=lifecycle.gold_scores)
        )
        sandbox.agents[agent_id] = agent
    elif spec.version != agent.version:
        if spec.version not in agent.versions:
            agent.versions.append(spec.version)
        agent.previous_version, agent.version = agent.version, spec.version
        agent.record("upgraded", spec.reason)
    lifecycle.config = dict(spec.config)
    agent.record("config_injected", spec.reason)
    return AgentConfigEffect.of(agent, config=lifecycle.config)


@effects.post("/agents/{agent_id}/debug")
async def debug_agent(
    sandbox: SandboxDep, agent_id: str, request: EffectRequest = EffectRequest()
) -> DebugEffect:
    # The platform's assistant reads the failed gold-set cases and ships a patched revision.
    agent = _alive(sandbox.agent(agent_id))
    lifecycle = _lifecycle(sandbox, agent_id)
    lifecycle.fixes += 1
    fixed = f"{agent.versions[0]}-fix{lifecycle.fixes}"
    failed = agent.version
    agent.versions.append(fixed)
    agent.previous_version, agent.version = agent.version, fixed
    agent.record("debugged", request.reason)
    return DebugEffect.of(agent, findings=f"gold-set failures of {failed} traced and patched as {fixed}")


@effects.post("/agents/{agent_id}/snapshots")
async def snapshot_agent_state(
    sandbox: SandboxDep, agent_id: str, request: EffectRequest = EffectRequest()
) -> AgentSnapshotEffect:
    agent = sandbox.agent(agent_id)
    lifecycle = _lifecycle(sandbox, agent_id)
    snapshot = AgentSnapshotData(
        snapshot_id=f"{agent_id}-state-{len(lifecycle.snapshots) + 1}",
        version=agent.version,
        config=dict(lifecycle.config),
        memory=list(lifecycle.memory),
        at=_now(),
    )
    lifecycle.snapshots[snapshot.snapshot_id] = snapshot
    agent.record("state_snapshot", request.reason)
    return AgentSnapshotEffect.of(
        agent,
        snapshot_id=snapshot.snapshot_id,
        memory_items=len(snapshot.memory),
        config_keys=sorted(snapshot.config),
    )


@effects.post("/agents/{agent_id}/snapshots/{snapshot_id}/restore")
async def restore_agent_snapshot(
    sandbox: SandboxDep, agent_id: str, snapshot_id: str, request: EffectRequest = EffectRequest()
) -> RestoreEffect:
    agent = _alive(sandbox.agent(agent_id))
    lifecycle = _lifecycle(sandbox, agent_id)
    snapshot = _found(lifecycle.snapshots, snapshot_id, f"agent {agent_id} has no snapshot {snapshot_id}")
    if agent.version != snapshot.version:
        agent.previous_version, agent.version = agent.version, snapshot.version
    lifecycle.config = dict(snapshot.config)
    lifecycle.memory = list(snapshot.memory)
    agent.record("restored", request.reason or snapshot_id)
    return RestoreEffect.of(agent, snapshot_id=snapshot_id, memory_items=len(lifecycle.memory))


@effects.post("/agents/{agent_id}/archives")
async def archive_agent_data(
    sandbox: SandboxDep, agent_id: str, request: EffectRequest = EffectRequest()
) -> ArchiveEffect:
    agent = sandbox.agent(agent_id)
    lifecycle = _lifecycle(sandbox, agent_id)
    agent.record("archived", request.reason)
    archive = AgentArchive(
        archive_id=f"{agent_id}-archive-{len(lifecycle.archives) + 1}",
        version=agent.version,
        workspace=dict(lifecycle.workspace or {}),
        memory=list(lifecycle.memory),
        logs=[entry.model_copy() for entry in agent.history],
        at=_now(),
    )
    lifecycle.archives[archive.archive_id] = archive
    return ArchiveEffect(
        agent_id=agent_id,
        archive_id=archive.archive_id,
        files=len(archive.workspace),
        memory_items=len(archive.memory),
        log_entries=len(archive.logs),
    )


@effects.delete("/agents/{agent_id}/tokens")
async def revoke_agent_access(sandbox: SandboxDep, agent_id: str) -> CredentialsEffect:
    agent = sandbox.agent(agent_id)
    lifecycle = _lifecycle(sandbox, agent_id)
    revoked = len(lifecycle.tokens)
    lifecycle.revoked_tokens += lifecycle.tokens
    lifecycle.tokens = []
    agent.record("access_revoked", f"{revoked} token(s)")
    return CredentialsEffect(agent_id=agent_id, removed=revoked)


@effects.delete("/agents/{agent_id}/secrets")
async def delete_agent_secrets(sandbox: SandboxDep, agent_id: str) -> CredentialsEffect:
    agent = sandbox.agent(agent_id)
    lifecycle = _lifecycle(sandbox, agent_id)
    _archived(lifecycle, agent_id, "delete its secrets")
    deleted = len(lifecycle.secrets)
    lifecycle.deleted_secrets += lifecycle.secrets
    lifecycle.secrets = []
    agent.record("secrets_deleted", f"{deleted} secret(s)")
    return CredentialsEffect(agent_id=agent_id, removed=deleted)


@effects.put("/agents/{agent_id}/retention")
async def set_agent_retention(sandbox: SandboxDep, agent_id: str, spec: RetentionSpec) -> RetentionEffect:
    agent = sandbox.agent(agent_id)
    lifecycle = _lifecycle(sandbox, agent_id)
    _found(lifecycle.archives, spec.archive_id, f"agent {agent_id} has no archive {spec.archive_id}")
    lifecycle.retention_archive, lifecycle.retention_until = spec.archive_id, spec.until
    agent.record("retention_set", f"{spec.archive_id} until {spec.until}")
    return RetentionEffect(agent_id=agent_id, archive_id=spec.archive_id, until=spec.until)


@effects.post("/agents/{agent_id}/notices")
async def notify_agent(sandbox: SandboxDep, agent_id: str, notice: NoticeSpec) -> NoticeEffect:
    # The recipient may be an agent this platform does not run (another team's): its inbox still exists.
    lifecycle = _lifecycle(sandbox, agent_id)
    lifecycle.notices.append(AgentNotice(from_agent=notice.from_agent, text=notice.text, at=_now()))
    return NoticeEffect(agent_id=agent_id, notices=len(lifecycle.notices))


# ---- end agents: lifecycle ----


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


# ---- chat channel ----
# Named customer channels (`/chat/channels/{name}`): the WhatsApp Cloud API account (webhook deliveries,
# balance, access token, the provider's status, the phone number and its quality, message templates and
# their reviews) and the runtime that answers its webhooks. One per name, so tests and demos never share a
# channel; `/chat/status` above stays the single default view. Token values never leave the sandbox: a
# rotation answers with the new version and expiry only.

ChatTemplateStatus = Literal["approved", "pending", "rejected"]
ChatTemplateVerdict = Literal["approved", "rejected"]
ChatNumberStatus = Literal["active", "flagged", "banned", "retired"]
CHAT_TOKEN_LIFETIME_S = 60 * 24 * 3600


class ChatTemplateSubmission(BaseModel):
    body: str
    category: str
    verdict: ChatTemplateVerdict
    at: str


class ChatTemplate(BaseModel):
    body: str
    category: str = "UTILITY"
    status: ChatTemplateStatus = "approved"
    rejection_reason: str = ""
    # Scenario knobs: the provider's next review verdicts in order (approval once they run out), and how many
    # reads a review stays pending before its verdict shows.
    reviews: list[ChatTemplateVerdict] = []
    pending_reads: int = Field(1, ge=0)
    submissions: list[ChatTemplateSubmission] = []
    reads_left: int = 0


class ChatSendStats(BaseModel):
    template_sends_24h: int = 0
    spam_reports_24h: int = 0
    blocks_24h: int = 0
    rejected_template_sends: dict[str, int] = {}


class ChatChannelSpec(ChatStatus):
    runtime: str = "chat-runtime"
    runtime_5xx_last_5m: int = 0
    payment_failed: bool = False
    # Scenario knob: the provider's status reads "up" again after this many reads; None: it stays as set.
    provider_recovers_after_reads: int | None = None
    number: str = "+5511900000001"
    number_status: ChatNumberStatus = "active"
    quality_rating: Literal["high", "medium", "low"] = "high"
    template_sends_enabled: bool = True
    sends: ChatSendStats = ChatSendStats()
    templates: dict[str, ChatTemplate] = {}


class ChatNumber(BaseModel):
    number: str
    status: ChatNumberStatus
    at: str
    reason: str = ""


class ChatAppeal(BaseModel):
    appeal_id: str
    number: str
    status: str = "open"
    reason: str = ""
    at: str


class ChatChannel(ChatChannelSpec):
    runtime_restarts: int = 0
    token_version: int = 1
    token_rotations: int = 0
    provider_reads: int = 0
    numbers: list[ChatNumber] = []
    appeals: list[ChatAppeal] = []
    template_in_use: dict[str, str] = Field(
        default_factory=dict, description="template → the template sent in its place (absent: itself)"
    )


class ChatSendsSetting(EffectRequest):
    enabled: bool


class ChatTemplateUse(EffectRequest):
    use: str


class ChatTemplateResubmit(BaseModel):
    body: str
    category: str


def _seed_chat_channels() -> dict[str, ChatChannel]:
    # The demo channel `stanch fire` uses for the three channel scenarios: its runtime answers webhooks with
    # server errors, its number was banned after a marketing push, and its order confirmation was rejected.
    demo = _new_chat_channel(
        "whatsapp-demo",
        ChatChannelSpec(
            runtime_5xx_last_5m=42,
            number_status="banned",
            quality_rating="low",
            sends=ChatSendStats(
                template_sends_24h=18000,
                spam_reports_24h=310,
                blocks_24h=950,
                rejected_template_sends={"promo_blackfriday": 4200},
            ),
            templates={
                "order_confirmation": ChatTemplate(
                    body="Seu pedido {{1}} foi confirmado! Aproveite 20% de desconto na próxima compra!",
                    category="MARKETING",
                    status="rejected",
                    rejection_reason="promotional content in a utility message",
                ),
                "generic_update": ChatTemplate(
                    body="Oi, tenho uma atualização sobre seu pedido, pode me responder?"
                ),
            },
        ),
    )
    return {demo.channel: demo}


def _new_chat_channel(name: str, spec: ChatChannelSpec) -> ChatChannel:
    channel = ChatChannel(**{**spec.model_dump(), "channel": name})
    channel.numbers = [ChatNumber(number=spec.number, status=spec.number_status, at=_now())]
    return channel


def _chat_channel(sandbox: Sandbox, name: str) -> ChatChannel:
    return _found(sandbox.chat_channels, name, f"unknown chat channel {name}")


def _chat_template(channel: ChatChannel, template: str) -> ChatTemplate:
    return _found(channel.templates, template, f"channel {channel.channel} has no template {template}")


def _chat_template_view(channel: ChatChannel, name: str, template: ChatTemplate) -> dict[str, Any]:
    return {
        "channel": channel.channel,
        "template": name,
        "body": template.body,
        "category": template.category,
        "status": template.status,
        "rejection_reason": template.rejection_reason,
        "submissions": len(template.submissions),
    }


@scenario.put("/chat/channels/{name}")
async def put_chat_channel(sandbox: SandboxDep, name: str, spec: ChatChannelSpec) -> ChatChannel:
    sandbox.chat_channels[name] = _new_chat_channel(name, spec)
    return sandbox.chat_channels[name]


@scenario.get("/chat/channels/{name}")
async def get_chat_channel(sandbox: SandboxDep, name: str) -> ChatChannel:
    return _chat_channel(sandbox, name)


@scenario.get("/chat/channels/{name}/webhook-events")
async def get_chat_webhook_events(sandbox: SandboxDep, name: str) -> dict[str, Any]:
    channel = _chat_channel(sandbox, name)
    return {
        "channel": name,
        "events_last_5m": channel.webhook_events_last_5m,
        "runtime_5xx_last_5m": channel.runtime_5xx_last_5m,
    }


@scenario.get("/chat/channels/{name}/balance")
async def get_chat_balance(sandbox: SandboxDep, name: str) -> dict[str, Any]:
    channel = _chat_channel(sandbox, name)
    return {"channel": name, "balance": channel.balance, "payment_failed": channel.payment_failed}


@scenario.get("/chat/channels/{name}/token")
async def get_chat_token(sandbox: SandboxDep, name: str) -> dict[str, Any]:
    channel = _chat_channel(sandbox, name)
    return {
        "channel": name,
        "token_version": channel.token_version,
        "expires_in_s": channel.token_expires_in_s,
    }


@scenario.get("/chat/channels/{name}/provider-status")
async def get_chat_provider_status(sandbox: SandboxDep, name: str) -> dict[str, Any]:
    channel = _chat_channel(sandbox, name)
    channel.provider_reads += 1
    recovers = channel.provider_recovers_after_reads
    if recovers is not None and channel.provider_reads >= recovers:
        channel.provider_status = "up"
    return {"channel": name, "status": channel.provider_status}


@scenario.get("/chat/channels/{name}/sends")
async def get_chat_sends(sandbox: SandboxDep, name: str) -> dict[str, Any]:
    channel = _chat_channel(sandbox, name)
    return {
        "channel": name,
        "number": channel.number,
        "quality_rating": channel.quality_rating,
        **channel.sends.model_dump(),
    }


@scenario.get("/chat/channels/{name}/templates/{template}")
async def get_chat_template(sandbox: SandboxDep, name: str, template: str) -> dict[str, Any]:
    channel = _chat_channel(sandbox, name)
    state = _chat_template(channel, template)
    if state.status == "pending" and state.submissions:
        if state.reads_left > 0:
            state.reads_left -= 1
        else:
            state.status = state.submissions[-1].verdict
            if state.status == "rejected":
                state.rejection_reason = "the provider still reads it as marketing"
    return _chat_template_view(channel, template, state)


@effects.post("/chat/channels/{name}/runtime/restart")
async def restart_chat_runtime(
    sandbox: SandboxDep, name: str, request: EffectRequest = EffectRequest()
) -> dict[str, Any]:
    channel = _chat_channel(sandbox, name)
    # A fresh runtime process answers the provider's webhooks again: the server errors stop.
    channel.runtime_restarts += 1
    channel.runtime_5xx_last_5m = 0
    return {
        "channel": name,
        "runtime": channel.runtime,
        "restarts": channel.runtime_restarts,
        "runtime_5xx_last_5m": channel.runtime_5xx_last_5m,
    }


@effects.post("/chat/channels/{name}/token/rotate")
async def rotate_chat_token(
    sandbox: SandboxDep, name: str, request: EffectRequest = EffectRequest()
) -> dict[str, Any]:
    channel = _chat_channel(sandbox, name)
    channel.token_version += 1
    channel.token_rotations += 1
    channel.token_expires_in_s = CHAT_TOKEN_LIFETIME_S
    return {"channel": name, "token_version": channel.token_version, "expires_in_s": CHAT_TOKEN_LIFETIME_S}


@effects.put("/chat/channels/{name}/template-sends")
async def set_chat_template_sends(
    sandbox: SandboxDep, name: str, setting: ChatSendsSetting
) -> dict[str, Any]:
    channel = _chat_channel(sandbox, name)
    channel.template_sends_enabled = setting.enabled
    return {"channel": name, "template_sends_enabled": channel.template_sends_enabled}


@effects.post("/chat/channels/{name}/appeals", status_code=201)
async def open_chat_appeal(
    sandbox: SandboxDep, name: str, request: EffectRequest = EffectRequest()
) -> dict[str, Any]:
    channel = _chat_channel(sandbox, name)
    appeal = ChatAppeal(
        appeal_id=f"appeal-{name}-{len(channel.appeals) + 1}",
        number=channel.number,
        reason=request.reason,
        at=_now(),
    )
    channel.appeals.append(appeal)
    return {"channel": name, "appeal_id": appeal.appeal_id, "number": appeal.number, "status": appeal.status}


@effects.post("/chat/channels/{name}/numbers", status_code=201)
async def provision_chat_number(
    sandbox: SandboxDep, name: str, request: EffectRequest = EffectRequest()
) -> dict[str, Any]:
    channel = _chat_channel(sandbox, name)
    previous = channel.number
    for number in channel.numbers:
        if number.number == previous:
            number.status = "retired"
    # A new number starts clean: active, and with no quality history yet.
    channel.number = f"+55119{len(channel.numbers) + 1:08d}"
    channel.number_status, channel.quality_rating = "active", "high"
    channel.numbers.append(
        ChatNumber(number=channel.number, status="active", at=_now(), reason=request.reason)
    )
    return {"channel": name, "number": channel.number, "previous_number": previous}


@effects.post("/chat/channels/{name}/templates/{template}/use")
async def use_chat_template(
    sandbox: SandboxDep, name: str, template: str, request: ChatTemplateUse
) -> dict[str, Any]:
    channel = _chat_channel(sandbox, name)
    _chat_template(channel, template)
    if _chat_template(channel, request.use).status != "approved":
        raise HTTPException(409, f"template {request.use} is not approved and cannot be sent")
    if request.use == template:
        channel.template_in_use.pop(template, None)
    else:
        channel.template_in_use[template] = request.use
    return {"channel": name, "template": template, "use": request.use}


@effects.post("/chat/channels/{name}/templates/{template}/submissions", status_code=201)
async def submit_chat_template(
    sandbox: SandboxDep, name: str, template: str, submission: ChatTemplateResubmit
) -> dict[str, Any]:
    channel = _chat_channel(sandbox, name)
    state = _chat_template(channel, template)
    verdict: ChatTemplateVerdict = state.reviews.pop(0) if state.reviews else "approved"
    state.submissions.append(
        ChatTemplateSubmission(body=submission.body, category=submission.category, verdict=verdict, at=_now())
    )
    state.body, state.category = submission.body, submission.category
    state.status, state.rejection_reason, state.reads_left = "pending", "", state.pending_reads
    return _chat_template_view(channel, template, state)


# ---- end chat channel ----


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


# ---- deployments ----
# The war room's view of one service: its deploys, infrastructure (status and config versions), the outside
# services it depends on, QA gate runs whose verdicts a test scripts, hotfix builds, its database
# (migrations, backups, integrity) and, after the incident, post-mortems and backlog stories. Everything is
# keyed by service name, so tests that pick their own service never see each other's state.

InfraHealth = Literal["healthy", "degraded", "down"]
QaVerdict = Literal["PASS", "CONCERNS", "FAIL", "BLOCKED"]


class ServiceDeploysSpec(BaseModel):
    versions: list[str] = Field(min_length=1, description="oldest first; the last one is live now")


class ServiceRollbackEffect(Deploy):
    restored_version: str
    replayed: bool = False


class InfraState(BaseModel):
    service: str
    status: InfraHealth = "healthy"
    detail: str = ""
    config_versions: list[str] = Field(default_factory=lambda: ["config-1"], description="oldest first")

    @property
    def config_version(self) -> str:
        return self.config_versions[-1]


class InfraView(BaseModel):
    service: str
    status: InfraHealth
    detail: str
    config_version: str
    previous_config_version: str | None
    config_versions: list[str]
    replayed: bool = False

    @classmethod
    def of(cls, infra: InfraState) -> InfraView:
        versions = infra.config_versions
        return cls(
            service=infra.service,
            status=infra.status,
            detail=infra.detail,
            config_version=versions[-1],
            previous_config_version=versions[-2] if len(versions) > 1 else None,
            config_versions=list(versions),
        )


class InfraUpdate(BaseModel):
    status: InfraHealth | None = None
    detail: str | None = None
    config_versions: list[str] | None = Field(None, min_length=1)


DependencyHealth = Literal["up", "degraded", "down"]


def _healthy_dependencies() -> dict[str, DependencyHealth]:
    return {"payments-api": "up", "identity-provider": "up"}


class ExternalState(BaseModel):
    service: str
    dependencies: dict[str, DependencyHealth] = Field(default_factory=_healthy_dependencies)


class ExternalUpdate(BaseModel):
    dependencies: dict[str, DependencyHealth]


class QaScript(BaseModel):
    service: str
    verdicts: list[QaVerdict] = Field(description="answers of the next runs, in order; then PASS again")


class QaRunBody(BaseModel):
    service: str
    subject: str


class QaRunRecord(BaseModel):
    id: str
    service: str
    subject: str
    verdict: QaVerdict
    at: str
    replayed: bool = False


class HotfixScript(BaseModel):
    service: str
    failures: int = Field(ge=0, description="how many of the next builds fail")


class HotfixBuildBody(BaseModel):
    service: str
    issue: str = ""
    iteration: int = 1
    attempt: int = 1


class HotfixBuildRecord(BaseModel):
    id: str
    service: str
    issue: str
    iteration: int
    attempt: int
    version: str
    status: Literal["succeeded", "failed", "deployed"]
    at: str
    replayed: bool = False


class DatabaseSpec(BaseModel):
    migrations: list[str] = Field(min_length=1, description="applied, oldest first")
    rows: int = Field(1000, ge=0)
    backup_verifies: bool = Field(True, description="False: every backup of it fails verification")
    integrity_ok: bool = Field(True, description="False: the integrity check after a migration fails")


class DatabaseBackupRecord(BaseModel):
    id: str
    service: str
    migration: str
    rows: int
    verified: bool = False
    at: str
    replayed: bool = False


class ServiceDatabase(BaseModel):
    service: str
    migrations: list[str]
    rows: int
    backups: list[str] = Field(default_factory=list)
    verified_backups: list[str] = Field(default_factory=list)
    reversed_migrations: list[str] = Field(default_factory=list)
    integrity_checks: int = 0
    replayed: bool = False
    backup_verifies: bool = Field(True, exclude=True)
    integrity_ok: bool = Field(True, exclude=True)
    backup_records: dict[str, DatabaseBackupRecord] = Field(default_factory=dict, exclude=True)


class MigrateDownBody(BaseModel):
    backup_id: str
    migration: str


class IntegrityResult(BaseModel):
    service: str
    ok: bool
    detail: str
    replayed: bool = False


class StoryBody(BaseModel):
    incident_id: str
    title: str


class StoryRecord(StoryBody):
    id: str
    at: str
    replayed: bool = False


def _service_deploys(sandbox: Sandbox, service: str) -> list[Deploy]:
    return [deploy for deploy in sandbox.deploys if deploy.service == service]


def _infra(sandbox: Sandbox, service: str) -> InfraState:
    return sandbox.infra.setdefault(service, InfraState(service=service))


def _database(sandbox: Sandbox, service: str) -> ServiceDatabase:
    return _found(sandbox.databases, service, f"no database known for {service}")


@scenario.put("/deploys/services/{service}")
async def put_service_deploys(sandbox: SandboxDep, service: str, spec: ServiceDeploysSpec) -> list[Deploy]:
    others = [deploy for deploy in sandbox.deploys if deploy.service != service]
    mine = [
        Deploy(id=f"deploy-{service}-{index + 1}", service=service, version=version, at=_now())
        for index, version in enumerate(spec.versions)
    ]
    sandbox.deploys = [*reversed(mine), *others]
    return _service_deploys(sandbox, service)


@effects.post("/deploys/services/{service}/rollback")
async def rollback_service_deploy(
    sandbox: SandboxDep, service: str, request: EffectRequest = EffectRequest()
) -> ServiceRollbackEffect:
    live = [deploy for deploy in _service_deploys(sandbox, service) if deploy.status == "live"]
    if len(live) < 2:
        raise HTTPException(409, f"{service} has no earlier live deploy to roll back to")
    live[0].status = "rolled_back"
    return ServiceRollbackEffect(**live[0].model_dump(), restored_version=live[1].version)


@scenario.get("/infra/{service}")
async def get_infra(sandbox: SandboxDep, service: str) -> InfraView:
    return InfraView.of(_infra(sandbox, service))


@scenario.put("/infra/{service}")
async def put_infra(sandbox: SandboxDep, service: str, update: InfraUpdate) -> InfraView:
    infra = _infra(sandbox, service)
    sandbox.infra[service] = infra.model_copy(update=update.model_dump(exclude_unset=True))
    return InfraView.of(sandbox.infra[service])


@effects.post("/infra/{service}/config/revert")
async def revert_infra_config(
    sandbox: SandboxDep, service: str, request: EffectRequest = EffectRequest()
) -> InfraView:
    infra = _infra(sandbox, service)
    if len(infra.config_versions) < 2:
        raise HTTPException(409, f"{service} has no earlier config to revert to")
    dropped = infra.config_versions.pop()
    # The stand-in's promise: the previous config is the one that worked.
    infra.status, infra.detail = "healthy", f"reverted from {dropped}: {request.reason}".strip(": ")
    return InfraView.of(infra)


@scenario.get("/external/{service}")
async def get_external(sandbox: SandboxDep, service: str) -> ExternalState:
    return sandbox.external.setdefault(service, ExternalState(service=service))


@scenario.put("/external/{service}")
async def put_external(sandbox: SandboxDep, service: str, update: ExternalUpdate) -> ExternalState:
    sandbox.external[service] = ExternalState(service=service, dependencies=update.dependencies)
    return sandbox.external[service]


@scenario.put("/qa/script")
async def put_qa_script(sandbox: SandboxDep, script: QaScript) -> QaScript:
    sandbox.qa_scripts[script.service] = list(script.verdicts)
    return script


@scenario.get("/qa/runs")
async def list_qa_runs(sandbox: SandboxDep, service: str = "") -> list[QaRunRecord]:
    return [run for run in sandbox.qa_runs if not service or run.service == service]


@effects.post("/qa/runs")
async def run_qa_gate(sandbox: SandboxDep, body: QaRunBody) -> QaRunRecord:
    script = sandbox.qa_scripts.get(body.service) or []
    verdict: QaVerdict = script.pop(0) if script else "PASS"
    run = QaRunRecord(
        id=f"qa-{len(sandbox.qa_runs) + 1}",
        service=body.service,
        subject=body.subject,
        verdict=verdict,
        at=_now(),
    )
    sandbox.qa_runs.append(run)
    return run


@scenario.put("/hotfix/script")
async def put_hotfix_script(sandbox: SandboxDep, script: HotfixScript) -> HotfixScript:
    sandbox.hotfix_failures[script.service] = script.failures
    return script


@scenario.get("/hotfix/builds")
async def list_hotfix_builds(sandbox: SandboxDep, service: str = "") -> list[HotfixBuildRecord]:
    return [build for build in sandbox.hotfix_builds.values() if not service or build.service == service]


@effects.post("/hotfix/builds")
async def build_hotfix(sandbox: SandboxDep, body: HotfixBuildBody) -> HotfixBuildRecord:
    failures = sandbox.hotfix_failures.get(body.service, 0)
    if failures:
        sandbox.hotfix_failures[body.service] = failures - 1
    number = len(sandbox.hotfix_builds) + 1
    live = next((d for d in _service_deploys(sandbox, body.service) if d.status == "live"), None)
    build = HotfixBuildRecord(
        id=f"hotfix-{number}",
        service=body.service,
        issue=body.issue,
        iteration=body.iteration,
        attempt=body.attempt,
        version=f"{live.version if live else '0.0.0'}-hotfix.{number}",
        status="failed" if failures else "succeeded",
        at=_now(),
    )
    sandbox.hotfix_builds[build.id] = build
    return build


@effects.post("/hotfix/builds/{build_id}/deploy")
async def deploy_hotfix(sandbox: SandboxDep, build_id: str) -> Deploy:
    build = _found(sandbox.hotfix_builds, build_id, f"unknown build {build_id}")
    if build.status != "succeeded":
        raise HTTPException(409, f"build {build_id} is {build.status}; only a succeeded build ships")
    build.status = "deployed"
    deploy = Deploy(id=f"deploy-{build_id}", service=build.service, version=build.version, at=_now())
    sandbox.deploys.insert(0, deploy)
    return deploy


@scenario.put("/databases/{service}")
async def put_database(sandbox: SandboxDep, service: str, spec: DatabaseSpec) -> ServiceDatabase:
    sandbox.databases[service] = ServiceDatabase(
        service=service,
        migrations=list(spec.migrations),
        rows=spec.rows,
        backup_verifies=spec.backup_verifies,
        integrity_ok=spec.integrity_ok,
    )
    return sandbox.databases[service]


@scenario.get("/databases/{service}")
async def get_database(sandbox: SandboxDep, service: str) -> ServiceDatabase:
    return _database(sandbox, service)


@effects.post("/databases/{service}/backups")
async def backup_database(sandbox: SandboxDep, service: str) -> DatabaseBackupRecord:
    database = _database(sandbox, service)
    backup = DatabaseBackupRecord(
        id=f"backup-{service}-{len(database.backups) + 1}",
        service=service,
        migration=database.migrations[-1],
        rows=database.rows,
        at=_now(),
    )
    database.backups.append(backup.id)
    database.backup_records[backup.id] = backup
    return backup


@effects.post("/databases/{service}/backups/{backup_id}/verify")
async def verify_database_backup(sandbox: SandboxDep, service: str, backup_id: str) -> DatabaseBackupRecord:
    database = _database(sandbox, service)
    backup = _found(database.backup_records, backup_id, f"unknown backup {backup_id}")
    backup.verified = database.backup_verifies
    if backup.verified and backup_id not in database.verified_backups:
        database.verified_backups.append(backup_id)
    return backup


@effects.post("/databases/{service}/migrate-down")
async def migrate_database_down(sandbox: SandboxDep, service: str, body: MigrateDownBody) -> ServiceDatabase:
    database = _database(sandbox, service)
    backup = database.backup_records.get(body.backup_id)
    # The platform refuses on its own too: no reverse migration without a verified backup of the data as
    # it stands now, whatever the caller believes.
    if backup is None or not backup.verified:
        raise HTTPException(
            409, f"backup {body.backup_id} is missing or unverified; refusing to migrate down"
        )
    if backup.migration != database.migrations[-1] or backup.rows != database.rows:
        raise HTTPException(409, f"backup {body.backup_id} does not match the current data")
    if body.migration != database.migrations[-1]:
        raise HTTPException(409, f"{body.migration} is not the latest applied migration")
    database.reversed_migrations.append(database.migrations.pop())
    return database


@effects.post("/databases/{service}/integrity-check")
async def check_database_integrity(sandbox: SandboxDep, service: str) -> IntegrityResult:
    database = _database(sandbox, service)
    database.integrity_checks += 1
    detail = "constraints and row counts consistent" if database.integrity_ok else "orphaned rows found"
    return IntegrityResult(service=service, ok=database.integrity_ok, detail=detail)


@effects.post("/backlog/stories", status_code=201)
async def file_story(sandbox: SandboxDep, body: StoryBody) -> StoryRecord:
    story = StoryRecord(**body.model_dump(), id=f"story-{len(sandbox.stories) + 1}", at=_now())
    sandbox.stories.append(story)
    return story


@scenario.get("/backlog/stories")
async def list_stories(sandbox: SandboxDep, incident_id: str = "") -> list[StoryRecord]:
    return [story for story in sandbox.stories if not incident_id or story.incident_id == incident_id]


# ---- end deployments ----


# ---- gateway/runtime ----
# Named gateway runtimes (`/runtimes/{name}`), one per gateway a runbook looks after: memory against its
# cgroup high watermark, scheduled runs, junk files on disk, the safe restart path and the health check it
# is confirmed by, risky spawns, the review queue, sessions and their tasks, the chained-execution freeze and
# the service log. A separate path from `/gateway` so a fault injected on one never trips the other.

RunStatus = Literal["alive", "dead"]
TaskStatus = Literal["running", "queued", "done", "review"]


class RuntimeTask(BaseModel):
    task_id: str
    state: TaskStatus = "running"


class RuntimeSession(BaseModel):
    session_id: str
    alive: bool = True
    tasks: list[RuntimeTask] = []
    # Failures of this session's tasks the platform remembers (last 7 days): what a retry policy rests on.
    past_failures: int = 0


class RetrySetting(BaseModel):
    mode: Literal["retry", "retry_with_backoff", "manual_only"]
    max_attempts: int = Field(ge=0)
    backoff_s: int = Field(ge=0)
    reason: str = ""


class RetrySettingEffect(RetrySetting):
    session_id: str
    task_ids: list[str]
    replayed: bool = False


class ReviewItem(BaseModel):
    id: int
    kind: str
    title: str
    detail: str = ""
    at: str = ""


class ReviewRequest(BaseModel):
    kind: str
    title: str
    detail: str = ""


class ReviewReceipt(ReviewItem):
    replayed: bool = False


class RuntimeEvent(BaseModel):
    at: str
    event: str
    detail: str = ""


class GatewayRuntime(BaseModel):
    name: str
    memory_mb: float = 620.0
    high_watermark_mb: float = 1536.0
    healthy: bool = True
    zombie: bool = False
    restarts: int = 0
    resource_pressure: bool = False
    spawns_blocked: bool = False
    chain_frozen: bool = False
    chain_frozen_until: str | None = None
    scheduled_runs: dict[str, RunStatus] = {}
    files: list[str] = []
    sessions: dict[str, RuntimeSession] = {}
    retry_settings: dict[str, RetrySetting] = {}
    reviews: list[ReviewItem] = []
    events: list[RuntimeEvent] = []
    log_lines: list[str] = []
    # Internal, set by a scenario: what a restart leaves of the memory, and how many health checks after a
    # restart still answer "starting" (a large number: the gateway never comes back).
    restart_memory_ratio: float = Field(0.4, exclude=True)
    unhealthy_checks_after_restart: int = Field(1, exclude=True)
    pending_unhealthy_checks: int = Field(0, exclude=True)

    def record(self, event: str, detail: str = "") -> None:
        self.events.append(RuntimeEvent(at=_now(), event=event, detail=detail))
        self.log_lines.append(f"{_now()} {self.name}[{event}]: {detail}".rstrip(": "))


class GatewayRuntimeSpec(BaseModel):
    memory_mb: float = 620.0
    high_watermark_mb: float = Field(1536.0, gt=0)
    healthy: bool = True
    zombie: bool = False
    scheduled_runs: dict[str, RunStatus] = {}
    files: list[str] = []
    sessions: list[RuntimeSession] = []
    log_lines: list[str] = []
    restart_memory_ratio: float = Field(0.4, ge=0, le=1)
    unhealthy_checks_after_restart: int = Field(1, ge=0)


class RuntimeStatus(BaseModel):
    name: str
    memory_mb: float
    high_watermark_mb: float
    memory_ratio: float
    healthy: bool
    zombie: bool
    restarts: int
    chain_frozen: bool
    spawns_blocked: bool

    @classmethod
    def of(cls, runtime: GatewayRuntime, *, healthy: bool | None = None) -> RuntimeStatus:
        return cls(
            name=runtime.name,
            memory_mb=runtime.memory_mb,
            high_watermark_mb=runtime.high_watermark_mb,
            memory_ratio=round(runtime.memory_mb / runtime.high_watermark_mb, 4),
            healthy=runtime.healthy if healthy is None else healthy,
            zombie=runtime.zombie,
            restarts=runtime.restarts,
            chain_frozen=runtime.chain_frozen,
            spawns_blocked=runtime.spawns_blocked,
        )


class RuntimeFlagEffect(BaseModel):
    name: str
    resource_pressure: bool
    spawns_blocked: bool
    chain_frozen: bool
    chain_frozen_until: str | None = None
    replayed: bool = False

    @classmethod
    def of(cls, runtime: GatewayRuntime) -> RuntimeFlagEffect:
        return cls(
            name=runtime.name,
            resource_pressure=runtime.resource_pressure,
            spawns_blocked=runtime.spawns_blocked,
            chain_frozen=runtime.chain_frozen,
            chain_frozen_until=runtime.chain_frozen_until,
        )


class FreezeRequest(EffectRequest):
    minutes: int = Field(30, ge=1)
    until: str | None = None


class CleanupEffect(BaseModel):
    name: str
    removed: int
    removed_items: list[str]
    remaining: int
    replayed: bool = False


class SafeRestartEffect(BaseModel):
    name: str
    memory_before_mb: float
    memory_mb: float
    restarts: int
    reason: str
    replayed: bool = False


class MovedTasks(BaseModel):
    name: str
    session_id: str
    task_ids: list[str]
    replayed: bool = False


class FailureHistory(BaseModel):
    name: str
    session_id: str
    past_failures: int


class RetrySettingRequest(RetrySetting):
    task_ids: list[str] = []


class ServiceLogs(BaseModel):
    name: str
    lines: list[str]
    replayed: bool = False


class StateSnapshot(RuntimeStatus):
    sessions: int
    live_sessions: int
    scheduled_runs: int
    pending_reviews: int
    replayed: bool = False


JUNK_SUFFIXES = (".deleted", ".corrupt")


def _seed_gateway_runtimes() -> dict[str, GatewayRuntime]:
    # `stanch fire` scenarios act on this gateway: memory at 85 % of its watermark, two dead scheduled runs,
    # leftovers on disk and a dead session with work in flight.
    demo = _new_runtime(
        "openclaw-gateway",
        GatewayRuntimeSpec(
            memory_mb=1310.0,
            scheduled_runs={"nightly-digest": "alive", "cron-7f2": "dead", "cron-9a1": "dead"},
            files=["sessions.json", "s-41.jsonl.deleted", "s-42.jsonl.corrupt", "s-43.jsonl"],
            sessions=[
                RuntimeSession(
                    session_id="sess-demo",
                    alive=False,
                    tasks=[RuntimeTask(task_id="task-101"), RuntimeTask(task_id="task-102", state="queued")],
                    past_failures=1,
                )
            ],
        ),
    )
    return {demo.name: demo}


def _new_runtime(name: str, spec: GatewayRuntimeSpec) -> GatewayRuntime:
    runtime = GatewayRuntime(
        name=name,
        memory_mb=spec.memory_mb,
        high_watermark_mb=spec.high_watermark_mb,
        healthy=spec.healthy,
        zombie=spec.zombie,
        scheduled_runs=dict(spec.scheduled_runs),
        files=list(spec.files),
        sessions={session.session_id: session.model_copy(deep=True) for session in spec.sessions},
        log_lines=list(spec.log_lines),
        restart_memory_ratio=spec.restart_memory_ratio,
        unhealthy_checks_after_restart=spec.unhealthy_checks_after_restart,
    )
    runtime.record("created")
    return runtime


def _runtime(sandbox: Sandbox, name: str) -> GatewayRuntime:
    return _found(sandbox.gateway_runtimes, name, f"unknown gateway {name}")


def _set_flags(sandbox: Sandbox, name: str, event: str, detail: str, **flags: Any) -> RuntimeFlagEffect:
    """Set the runtime's flags (in the order given), record `event` in its history, answer its flags."""
    runtime = _runtime(sandbox, name)
    for flag, value in flags.items():
        setattr(runtime, flag, value)
    runtime.record(event, detail)
    return RuntimeFlagEffect.of(runtime)


def _session(runtime: GatewayRuntime, session_id: str) -> RuntimeSession:
    return _found(runtime.sessions, session_id, f"gateway {runtime.name} has no session {session_id}")


@scenario.put("/runtimes/{name}")
async def put_runtime(sandbox: SandboxDep, name: str, spec: GatewayRuntimeSpec) -> GatewayRuntime:
    sandbox.gateway_runtimes[name] = _new_runtime(name, spec)
    return sandbox.gateway_runtimes[name]


@scenario.get("/runtimes/{name}")
async def get_runtime(sandbox: SandboxDep, name: str) -> GatewayRuntime:
    return _runtime(sandbox, name)


@scenario.get("/runtimes/{name}/status")
async def runtime_status(sandbox: SandboxDep, name: str) -> RuntimeStatus:
    return RuntimeStatus.of(_runtime(sandbox, name))


@scenario.get("/runtimes/{name}/health")
async def runtime_health(sandbox: SandboxDep, name: str) -> RuntimeStatus:
    # Right after a restart the health check answers "starting" a configured number of times.
    runtime = _runtime(sandbox, name)
    if runtime.pending_unhealthy_checks > 0:
        runtime.pending_unhealthy_checks -= 1
        if runtime.pending_unhealthy_checks == 0:
            runtime.healthy = True
            runtime.record("healthy", "health check passed after restart")
        return RuntimeStatus.of(runtime, healthy=False)
    return RuntimeStatus.of(runtime)


@scenario.get("/runtimes/{name}/sessions/{session_id}/failures")
async def runtime_session_failures(sandbox: SandboxDep, name: str, session_id: str) -> FailureHistory:
    session = _session(_runtime(sandbox, name), session_id)
    return FailureHistory(name=name, session_id=session_id, past_failures=session.past_failures)


@effects.post("/runtimes/{name}/pressure")
async def mark_runtime_pressure(
    sandbox: SandboxDep, name: str, request: EffectRequest = EffectRequest()
) -> RuntimeFlagEffect:
    return _set_flags(sandbox, name, "resource_pressure", request.reason, resource_pressure=True)


@effects.post("/runtimes/{name}/spawns/block")
async def block_runtime_spawns(
    sandbox: SandboxDep, name: str, request: EffectRequest = EffectRequest()
) -> RuntimeFlagEffect:
    return _set_flags(sandbox, name, "risky_spawns_blocked", request.reason, spawns_blocked=True)


@effects.post("/runtimes/{name}/reviews", status_code=201)
async def open_runtime_review(sandbox: SandboxDep, name: str, request: ReviewRequest) -> ReviewReceipt:
    runtime = _runtime(sandbox, name)
    item = ReviewItem(id=len(runtime.reviews) + 1, at=_now(), **request.model_dump())
    runtime.reviews.append(item)
    runtime.record("review_opened", f"{request.kind}: {request.title}")
    return ReviewReceipt(**item.model_dump())


@effects.post("/runtimes/{name}/scheduled-runs/clean")
async def clean_runtime_scheduled_runs(
    sandbox: SandboxDep, name: str, request: EffectRequest = EffectRequest()
) -> CleanupEffect:
    runtime = _runtime(sandbox, name)
    dead = sorted(run for run, status in runtime.scheduled_runs.items() if status == "dead")
    for run in dead:
        del runtime.scheduled_runs[run]
    runtime.record("scheduled_runs_cleaned", f"removed {len(dead)}")
    return CleanupEffect(
        name=name, removed=len(dead), removed_items=dead, remaining=len(runtime.scheduled_runs)
    )


@effects.post("/runtimes/{name}/files/clean")
async def clean_runtime_files(
    sandbox: SandboxDep, name: str, request: EffectRequest = EffectRequest()
) -> CleanupEffect:
    runtime = _runtime(sandbox, name)
    junk = [path for path in runtime.files if path.endswith(JUNK_SUFFIXES)]
    runtime.files = [path for path in runtime.files if path not in junk]
    runtime.record("junk_files_removed", f"removed {len(junk)}")
    return CleanupEffect(name=name, removed=len(junk), removed_items=junk, remaining=len(runtime.files))


@effects.post("/runtimes/{name}/safe-restart")
async def safe_restart_runtime(
    sandbox: SandboxDep, name: str, request: EffectRequest = EffectRequest()
) -> SafeRestartEffect:
    # The only restart this stand-in offers: the wrapper that checks, announces and restarts the service.
    runtime = _runtime(sandbox, name)
    if not request.reason.strip():
        raise HTTPException(422, "a safe restart needs a documented reason")
    before = runtime.memory_mb
    runtime.memory_mb = round(before * runtime.restart_memory_ratio, 1)
    runtime.restarts += 1
    runtime.zombie = False
    runtime.pending_unhealthy_checks = runtime.unhealthy_checks_after_restart
    runtime.healthy = runtime.pending_unhealthy_checks == 0
    runtime.record("safe_restart", request.reason)
    return SafeRestartEffect(
        name=name,
        memory_before_mb=before,
        memory_mb=runtime.memory_mb,
        restarts=runtime.restarts,
        reason=request.reason,
    )


@effects.post("/runtimes/{name}/sessions/{session_id}/tasks/review")
async def move_runtime_tasks_to_review(
    sandbox: SandboxDep, name: str, session_id: str, request: EffectRequest = EffectRequest()
) -> MovedTasks:
    runtime = _runtime(sandbox, name)
    session = _session(runtime, session_id)
    moved = [task.task_id for task in session.tasks if task.state in ("running", "queued")]
    for task in session.tasks:
        if task.task_id in moved:
            task.state = "review"
    runtime.record("tasks_to_review", f"{session_id}: {', '.join(moved) or 'none'}")
    return MovedTasks(name=name, session_id=session_id, task_ids=moved)


@effects.post("/runtimes/{name}/sessions/{session_id}/retry-policy")
async def set_runtime_retry_policy(
    sandbox: SandboxDep, name: str, session_id: str, request: RetrySettingRequest
) -> RetrySettingEffect:
    runtime = _runtime(sandbox, name)
    _session(runtime, session_id)
    setting = RetrySetting(**request.model_dump(exclude={"task_ids"}))
    for task_id in request.task_ids:
        runtime.retry_settings[task_id] = setting
    runtime.record("retry_policy", f"{session_id}: {setting.mode} x{setting.max_attempts}")
    return RetrySettingEffect(session_id=session_id, task_ids=request.task_ids, **setting.model_dump())


@effects.post("/runtimes/{name}/chain/freeze")
async def freeze_runtime_chain(sandbox: SandboxDep, name: str, request: FreezeRequest) -> RuntimeFlagEffect:
    detail = f"{request.minutes} min: {request.reason}"
    return _set_flags(
        sandbox, name, "chain_frozen", detail, chain_frozen=True, chain_frozen_until=request.until
    )


@effects.post("/runtimes/{name}/chain/unfreeze")
async def unfreeze_runtime_chain(
    sandbox: SandboxDep, name: str, request: EffectRequest = EffectRequest()
) -> RuntimeFlagEffect:
    return _set_flags(
        sandbox, name, "chain_unfrozen", request.reason, chain_frozen=False, chain_frozen_until=None
    )


@effects.post("/runtimes/{name}/logs/collect")
async def collect_runtime_logs(
    sandbox: SandboxDep, name: str, request: EffectRequest = EffectRequest()
) -> ServiceLogs:
    # A POST with a key: the bundle handed to a human must be the same one the audit log points at.
    runtime = _runtime(sandbox, name)
    lines = runtime.log_lines[-200:]
    runtime.record("logs_collected", f"{len(lines)} lines")
    return ServiceLogs(name=name, lines=lines)


@effects.post("/runtimes/{name}/state/collect")
async def collect_runtime_state(
    sandbox: SandboxDep, name: str, request: EffectRequest = EffectRequest()
) -> StateSnapshot:
    runtime = _runtime(sandbox, name)
    runtime.record("state_collected", request.reason)
    return StateSnapshot(
        **RuntimeStatus.of(runtime).model_dump(),
        sessions=len(runtime.sessions),
        live_sessions=sum(1 for session in runtime.sessions.values() if session.alive),
        scheduled_runs=len(runtime.scheduled_runs),
        pending_reviews=len(runtime.reviews),
    )


# ---- end gateway/runtime ----


# ---- reports and handoffs ----
# The operator's desk for decisions handed to humans, the security evidence locker and post-mortems, the
# per-agent usage meter and the cockpit's report shelf.


class HandoffIn(BaseModel):
    handoff_id: str
    incident_id: str
    priority: str
    subject: str
    markdown: str
    handoff: dict[str, Any] = {}


class HandoffDesk(BaseModel):
    handoff_id: str
    incident_id: str
    priority: str
    subject: str
    markdown: str
    handoff: dict[str, Any] = {}
    status: Literal["open", "executed"] = "open"
    executed_option: str | None = None
    decided_by: str | None = None
    comment: str = ""
    log: list[str] = []


class HandoffExecute(BaseModel):
    option: str
    decided_by: str
    comment: str = ""


class HandoffReceipt(BaseModel):
    handoff_id: str
    status: str
    executed_option: str | None = None
    decided_by: str | None = None
    replayed: bool = False


class SecurityEvent(BaseModel):
    at: str
    kind: str = Field(description="prompt_injection, exfiltration, tool_abuse, anomaly …")
    detail: str
    tool: str | None = None


class EvidenceIn(BaseModel):
    incident_id: str
    agent_id: str
    cause: str
    impact: str
    events: list[SecurityEvent] = []
    agent_history: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []


class Evidence(EvidenceIn):
    evidence_id: str
    at: str


class EvidenceReceipt(BaseModel):
    evidence_id: str
    events: int
    replayed: bool = False


class PostMortemIn(BaseModel):
    incident_id: str
    subject: str
    what_happened: str
    root_cause: str
    impact: str
    remediation: str
    prevention: list[str] = []
    timeline: list[str] = []
    markdown: str = ""  # the whole report, as a person reads it (post-incident reports)


class PostMortem(PostMortemIn):
    postmortem_id: str
    at: str


class DocumentReceipt(BaseModel):
    id: str
    replayed: bool = False


class AgentUsage(BaseModel):
    agent_id: str
    tokens: int = 0
    tokens_daily_avg: int = 0
    tasks_done: int = 0
    tasks_failed: int = 0


class AgentUsageUpdate(BaseModel):
    tokens: int | None = Field(None, ge=0)
    tokens_daily_avg: int | None = Field(None, ge=0)
    tasks_done: int | None = Field(None, ge=0)
    tasks_failed: int | None = Field(None, ge=0)


class ReportIn(BaseModel):
    report_id: str
    title: str
    markdown: str
    urgent: bool = False
    data: dict[str, Any] = {}


class Report(ReportIn):
    at: str


def _seed_usage() -> dict[str, AgentUsage]:
    return {
        "support-bot": AgentUsage(
            agent_id="support-bot", tokens=182_000, tokens_daily_avg=170_000, tasks_done=412, tasks_failed=9
        )
    }


@effects.post("/handoffs", status_code=201)
async def open_handoff(sandbox: SandboxDep, body: HandoffIn) -> HandoffReceipt:
    desk = HandoffDesk(**body.model_dump(), log=[f"{_now()} opened ({body.priority})"])
    sandbox.handoffs[body.handoff_id] = desk
    return HandoffReceipt(handoff_id=desk.handoff_id, status=desk.status)


@scenario.get("/handoffs")
async def list_handoffs(sandbox: SandboxDep) -> list[HandoffDesk]:
    return list(sandbox.handoffs.values())


@scenario.get("/handoffs/{handoff_id}")
async def get_handoff(sandbox: SandboxDep, handoff_id: str) -> HandoffDesk:
    return _found(sandbox.handoffs, handoff_id, f"unknown handoff {handoff_id}")


@effects.post("/handoffs/{handoff_id}/execute")
async def execute_handoff(sandbox: SandboxDep, handoff_id: str, body: HandoffExecute) -> HandoffReceipt:
    desk = await get_handoff(sandbox, handoff_id)
    if desk.status == "executed":
        raise HTTPException(409, f"handoff {handoff_id} was already carried out ({desk.executed_option})")
    names = [option.get("name") for option in desk.handoff.get("options", [])]
    if names and body.option not in names:
        raise HTTPException(409, f"{body.option!r} is not an option of handoff {handoff_id}: {names}")
    desk.status, desk.executed_option = "executed", body.option
    desk.decided_by, desk.comment = body.decided_by, body.comment
    desk.log.append(f"{_now()} {body.decided_by} chose {body.option}; carried out")
    return HandoffReceipt(
        handoff_id=handoff_id, status=desk.status, executed_option=body.option, decided_by=body.decided_by
    )


@scenario.get("/agents/{agent_id}/security-events")
async def get_security_events(sandbox: SandboxDep, agent_id: str) -> list[SecurityEvent]:
    sandbox.agent(agent_id)
    return sandbox.security_events.get(agent_id, [])


@scenario.put("/agents/{agent_id}/security-events")
async def put_security_events(
    sandbox: SandboxDep, agent_id: str, events: list[SecurityEvent]
) -> list[SecurityEvent]:
    sandbox.agent(agent_id)
    sandbox.security_events[agent_id] = events
    return events


@effects.post("/evidence", status_code=201)
async def store_evidence(sandbox: SandboxDep, body: EvidenceIn) -> EvidenceReceipt:
    evidence = Evidence(**body.model_dump(), evidence_id=f"evidence-{len(sandbox.evidence) + 1}", at=_now())
    sandbox.evidence[evidence.evidence_id] = evidence
    return EvidenceReceipt(evidence_id=evidence.evidence_id, events=len(evidence.events))


@scenario.get("/evidence")
async def list_evidence(sandbox: SandboxDep, incident_id: str = "") -> list[Evidence]:
    return [e for e in sandbox.evidence.values() if e.incident_id.startswith(incident_id)]


@effects.post("/postmortems", status_code=201)
async def publish_postmortem(sandbox: SandboxDep, body: PostMortemIn) -> DocumentReceipt:
    document = PostMortem(**body.model_dump(), postmortem_id=f"pm-{len(sandbox.postmortems) + 1}", at=_now())
    sandbox.postmortems[document.postmortem_id] = document
    return DocumentReceipt(id=document.postmortem_id)


@scenario.get("/postmortems")
async def list_postmortems(sandbox: SandboxDep, incident_id: str = "") -> list[PostMortem]:
    return [p for p in sandbox.postmortems.values() if p.incident_id.startswith(incident_id)]


@scenario.get("/usage")
async def list_usage(sandbox: SandboxDep) -> list[AgentUsage]:
    """One meter per known agent; an agent nobody metered yet reads as zero."""
    return [
        sandbox.usage.get(agent_id, AgentUsage(agent_id=agent_id))
        for agent_id, agent in sandbox.agents.items()
        if agent.state != "terminated"
    ]


@scenario.get("/agents/{agent_id}/usage")
async def get_usage(sandbox: SandboxDep, agent_id: str) -> AgentUsage:
    sandbox.agent(agent_id)
    return sandbox.usage.get(agent_id, AgentUsage(agent_id=agent_id))


@scenario.put("/agents/{agent_id}/usage")
async def put_usage(sandbox: SandboxDep, agent_id: str, update: AgentUsageUpdate) -> AgentUsage:
    sandbox.agent(agent_id)
    current = sandbox.usage.get(agent_id, AgentUsage(agent_id=agent_id))
    sandbox.usage[agent_id] = current.model_copy(update=update.model_dump(exclude_unset=True))
    return sandbox.usage[agent_id]


@effects.post("/reports", status_code=201)
async def publish_report(sandbox: SandboxDep, body: ReportIn) -> DocumentReceipt:
    sandbox.reports[body.report_id] = Report(**body.model_dump(), at=_now())
    return DocumentReceipt(id=body.report_id)


@scenario.get("/reports")
async def list_reports(sandbox: SandboxDep) -> list[Report]:
    return list(sandbox.reports.values())


@scenario.get("/reports/{report_id}")
async def get_report(sandbox: SandboxDep, report_id: str) -> Report:
    return _found(sandbox.reports, report_id, f"unknown report {report_id}")


# ---- end reports and handoffs ----


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
