"""Wire models of the default chat channel: the messages notifiers post, and its status."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


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
