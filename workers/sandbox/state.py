"""The sandbox's whole in-memory state: one `Sandbox` per app, seeded with the demo systems of `make dev`."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any

from schemas.deploys import Verdict
from workers.sandbox.common import found_or_404
from workers.sandbox.models.agent_lifecycle import AgentLifecycle, seed_agent_lifecycles
from workers.sandbox.models.agents import Agent, seed_agents
from workers.sandbox.models.calls import CallRecord, Fault
from workers.sandbox.models.chat import ChatMessage, ChatStatus
from workers.sandbox.models.chat_channels import ChatChannel, seed_chat_channels
from workers.sandbox.models.databases import ServiceDatabase
from workers.sandbox.models.deploys import (
    Deploy,
    ExternalState,
    HotfixBuildRecord,
    InfraState,
    QaRunRecord,
    seed_deploys,
)
from workers.sandbox.models.documents import HandoffDesk, PostMortem, Report, StoryRecord
from workers.sandbox.models.gateway import GatewayRuntime, seed_gateway_runtimes
from workers.sandbox.models.security import Evidence, SecurityEvent
from workers.sandbox.models.usage import AgentUsage, seed_usage
from workers.sandbox.recording import StoredResponse, StoreKey


@dataclass
class Sandbox:
    agents: dict[str, Agent] = field(default_factory=seed_agents)
    messages: list[ChatMessage] = field(default_factory=list)
    chat_status: ChatStatus = field(default_factory=ChatStatus)
    deploys: list[Deploy] = field(default_factory=seed_deploys)  # newest first
    flags: dict[str, bool] = field(default_factory=lambda: {"agent-tool-calls": True})
    infra: dict[str, InfraState] = field(default_factory=dict)  # deployments: per service
    external: dict[str, ExternalState] = field(default_factory=dict)  # deployments
    qa_scripts: dict[str, list[Verdict]] = field(default_factory=dict)  # deployments: verdicts to come
    qa_runs: list[QaRunRecord] = field(default_factory=list)  # deployments
    hotfix_failures: dict[str, int] = field(default_factory=dict)  # deployments: builds to fail
    hotfix_builds: dict[str, HotfixBuildRecord] = field(default_factory=dict)  # deployments
    databases: dict[str, ServiceDatabase] = field(default_factory=dict)  # deployments
    stories: list[StoryRecord] = field(default_factory=list)  # deployments: backlog
    calls: list[CallRecord] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    responses: dict[StoreKey, StoredResponse] = field(default_factory=dict)
    locks: dict[StoreKey, asyncio.Lock] = field(default_factory=dict)
    agent_lifecycles: dict[str, AgentLifecycle] = field(default_factory=lambda: seed_agent_lifecycles())
    handoffs: dict[str, HandoffDesk] = field(default_factory=dict)  # reports and handoffs
    security_events: dict[str, list[SecurityEvent]] = field(default_factory=dict)  # reports and handoffs
    evidence: dict[str, Evidence] = field(default_factory=dict)  # reports and handoffs
    postmortems: dict[str, PostMortem] = field(default_factory=dict)  # reports and handoffs
    usage: dict[str, AgentUsage] = field(default_factory=lambda: seed_usage())  # reports and handoffs
    reports: dict[str, Report] = field(default_factory=dict)  # reports and handoffs
    gateway_runtimes: dict[str, GatewayRuntime] = field(default_factory=lambda: seed_gateway_runtimes())
    chat_channels: dict[str, ChatChannel] = field(default_factory=lambda: seed_chat_channels())

    def agent(self, agent_id: str) -> Agent:
        return found_or_404(self.agents, agent_id, f"unknown agent {agent_id}")

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
