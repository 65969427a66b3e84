"""Generic JSON webhook: POST the Notification's fields plus `sent_at`, with an `Idempotency-Key` header.

The key is the notification's own (plus the person and kind for a person's copy of a message to a role),
the same on every channel and every retry: a receiver that dedupes on it shows a message once even when two
of our channels reach it (in the dev stack the sandbox chat is both the cockpit and the on-call group) or
when a retried activity posts again, while alice's and bob's pages stay two messages.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
from pydantic import BaseModel, Field, SecretStr

from activities.notifiers.base import HttpNotifier, url_secrets
from schemas.actions import Notification


class WebhookConfig(BaseModel):
    url: SecretStr = Field(description="a secret when the receiver authenticates by URL")
    timeout: float = 5.0


def webhook_payload(message: Notification, sent_at: datetime) -> dict[str, Any]:
    return {**message.model_dump(mode="json"), "sent_at": sent_at.isoformat()}


class WebhookNotifier(HttpNotifier):
    transport = "webhook"

    def __init__(self, name: str, config: WebhookConfig, client: httpx.AsyncClient) -> None:
        super().__init__(name, timeout=config.timeout, client=client)
        self._config = config

    def secrets(self) -> list[str]:
        return url_secrets(self._config.url.get_secret_value())

    async def send(self, message: Notification) -> None:
        await self.post_json(
            self._config.url.get_secret_value(),
            webhook_payload(message, datetime.now(UTC)),
            headers={"Idempotency-Key": message.delivery_key},
        )
