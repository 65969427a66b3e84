"""Discord webhook: POST {"content"} to the webhook URL (which holds the webhook's token).

Discord answers 204 No Content; a 4xx carries {"message", "code"}. `content` is at most 2000 characters.
"""

from __future__ import annotations

from typing import Any

import httpx
from pydantic import BaseModel, Field, SecretStr

from activities.notifiers.base import HttpNotifier, footer, headline, url_secrets
from schemas.actions import Notification
from stanch.markup import discord_markdown, one_line

CONTENT_LIMIT = 2000
# A title or footer longer than this is cut, leaving the body most of the message.
TITLE_LIMIT = 300


class DiscordConfig(BaseModel):
    url: SecretStr = Field(description="https://discord.com/api/webhooks/<id>/<token>")
    timeout: float = 5.0


def discord_payload(message: Notification) -> dict[str, Any]:
    # The bold title and the `-#` subtext line are Stanch's; what goes inside them is escaped, so an alert's
    # `**`, `[link](url)`, `# heading` or `@everyone` shows as typed.
    head = f"**{discord_markdown(one_line(headline(message)), limit=TITLE_LIMIT)}**"
    foot = f"-# {discord_markdown(one_line(footer(message)), limit=TITLE_LIMIT)}"
    body = discord_markdown(message.text, limit=CONTENT_LIMIT - len(head) - len(foot) - 2)
    return {
        "content": f"{head}\n{body}\n{foot}",
        # And belt and braces: even a mention the escaping missed pings nobody.
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
