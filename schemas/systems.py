"""The systems the runbooks act on, each one interface under `activities/<system>/` with its adapters.

The names are the keys of the policy's `[systems.<name>]` tables (docs/connect-your-systems.md).
"""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import BaseModel

SystemName = Literal["agents", "gateway", "channel", "deploys", "flags", "database", "documents"]
SYSTEMS: tuple[SystemName, ...] = get_args(SystemName)

SYSTEM_DESCRIPTIONS: dict[SystemName, str] = {
    "agents": "the AI-agent platform: pause, roll back, onboard, upgrade, terminate, security events",
    "gateway": "the gateway/runtime and its sub-agents: memory, health, cleaning, the safe restart",
    "channel": "the customer messaging channel: provider account, webhooks, numbers, templates",
    "deploys": "deploys and code: recent deploys, service rollback, infra config, QA, hotfix builds",
    "flags": "feature flags",
    "database": "the application database: state, backups, reverse migrations, integrity checks",
    "documents": "documents and reviews: post-mortems, backlog stories, hand-offs, reports",
}


class EffectReason(BaseModel):
    """The body of an effect whose one argument is why it is done: the system keeps the reason with it."""

    reason: str = ""


class Health(BaseModel):
    """What the contract's `GET /healthz` answers (with 200) when the system's side of it is up."""

    ok: bool


class SystemCheck(BaseModel):
    """Whether one system is reachable and configured, as its adapter sees it (`stanch systems`)."""

    system: SystemName
    adapter: str
    ok: bool
    detail: str
