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
    incident_id: str = ""
    escalation: bool = Field(
        False, description="an escalation level's message: goes to the policy's escalation groups"
    )


class Delivery(BaseModel):
    """One try of one configured channel; never carries a URL, token or password, only names."""

    channel: str = Field(description="configured channel name, e.g. slack-oncall")
    group: str = Field(description="the group it was tried for, e.g. instant")
    transport: str = Field(description="slack, telegram, discord, webhook or email")
    delivered: bool
    replayed: bool = Field(False, description="already delivered under this idempotency key; not re-sent")
    error: str = ""


class NotificationReceipt(BaseModel):
    idempotency_key: str
    channel: str
    delivered: bool
    status_code: int | None = None
    deliveries: list[Delivery] = Field(
        default_factory=list, description="every channel tried, in order, failures included"
    )
