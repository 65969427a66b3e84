"""Discord webhook: POST {"content"} to the webhook URL (which holds the webhook's token).

Discord answers 204 No Content; a 4xx carries {"message", "code"}. `content` is at most 2000 characters.
"""

from __future__ import annotations

from typing import Any

import httpx
from pydantic import BaseModel, Field, SecretStr

from activities.notifiers.base import HttpNotifier, footer, headline, truncate, url_secrets
from schemas.actions import Notification

CONTENT_LIMIT = 2000


class DiscordConfig(BaseModel):
    url: SecretStr = Field(description="https://discord.com/api/webhooks/<id>/<token>")
    timeout: float = 5.0


def discord_payload(message: Notification) -> dict[str, Any]:
    content = f"**{headline(message)}**\n{message.text}\n-# {footer(message)}"
    return {
        "content": truncate(content, CONTENT_LIMIT),
        # Incident text is not ours to trust: an "@everyone" in an alert summary must not ping a server.
        "allowed_mentions": {"parse": []},
    }


class DiscordNotifier(HttpNotifier):
    transport = "discord"

    def __init__(self, name: str, config: DiscordConfig, client: httpx.AsyncClient) -> None:
        super().__init__(name, timeout=config.timeout, client=client)
        self._config = config

    def secrets(self) -> list[str]:
        return url_secrets(self._config.url.get_secret_value())

    async def send(self, message: Notification) -> None:
        await self.post_json(self._config.url.get_secret_value(), discord_payload(message))
