"""Requests to, and results from, the systems runbooks act on."""

from __future__ import annotations

from pydantic import BaseModel, Field


class AgentAction(BaseModel):
    """Act on one AI agent; idempotency_key makes a retried call a no-op at the platform."""

    agent_id: str
    idempotency_key: str
    reason: str = ""
    to_version: str | None = None


class AgentState(BaseModel):
    agent_id: str
    state: str
    version: str
    previous_version: str | None = None
    replayed: bool = Field(False, description="True when the platform had already applied this key")


class Notification(BaseModel):
    idempotency_key: str
    channel: str = Field(description="where it goes: on-call, customer, escalation level name …")
    severity: str
    title: str
    text: str
    recipient: str | None = None


class NotificationReceipt(BaseModel):
    idempotency_key: str
    channel: str
    delivered: bool
    status_code: int | None = None
