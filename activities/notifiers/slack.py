"""Slack incoming webhook: POST {"text", "blocks"} to the webhook URL, which is itself the credential.

Slack answers 200 with the body `ok`, or a 4xx with a short code (`invalid_payload`, `no_service`,
`channel_is_archived`, …). `text` is the fallback shown in notifications; `blocks` is what the channel shows.
"""

from __future__ import annotations

from typing import Any

import httpx
from pydantic import BaseModel, Field, SecretStr

from activities.notifiers.base import HttpNotifier, footer, headline, truncate, url_secrets
from schemas.actions import Notification

# Slack's limits: a header block's text, a section's text.
HEADER_LIMIT = 150
SECTION_LIMIT = 3000


class SlackConfig(BaseModel):
    url: SecretStr = Field(description="https://hooks.slack.com/services/T…/B…/… — it grants posting")
    timeout: float = 5.0


def escape_mrkdwn(text: str) -> str:
    # The only three characters Slack asks senders to escape; the rest of mrkdwn is left to the author.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_payload(message: Notification) -> dict[str, Any]:
    return {
        "text": truncate(f"{headline(message)}: {message.text}", SECTION_LIMIT),
        "blocks": [
            {
                "type": "header",
                "text": {"type": "plain_text", "text": truncate(headline(message), HEADER_LIMIT)},
            },
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": truncate(escape_mrkdwn(message.text), SECTION_LIMIT)},
            },
            {"type": "context", "elements": [{"type": "mrkdwn", "text": escape_mrkdwn(footer(message))}]},
        ],
    }


class SlackNotifier(HttpNotifier):
    transport = "slack"

    def __init__(self, name: str, config: SlackConfig, client: httpx.AsyncClient) -> None:
        super().__init__(name, timeout=config.timeout, client=client)
        self._config = config

    def secrets(self) -> list[str]:
        return url_secrets(self._config.url.get_secret_value())

    async def send(self, message: Notification) -> None:
        await self.post_json(self._config.url.get_secret_value(), slack_payload(message))
