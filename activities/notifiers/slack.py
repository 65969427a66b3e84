"""Slack incoming webhook: POST {"text", "blocks"} to the webhook URL, which is itself the credential.

Slack answers 200 with the body `ok`, or a 4xx with a short code (`invalid_payload`, `no_service`,
`channel_is_archived`, …). `text` is the fallback shown in notifications; `blocks` is what the channel shows.
"""

from __future__ import annotations

from typing import Any

import httpx
from pydantic import BaseModel, Field, SecretStr

from activities.notifiers.base import HttpNotifier, footer, headline, url_secrets
from schemas.actions import Notification
from stanch.markup import one_line, plain, slack_mrkdwn

# Slack's limits: a header block's text, a section's text.
HEADER_LIMIT = 150
SECTION_LIMIT = 3000


class SlackConfig(BaseModel):
    url: SecretStr = Field(description="https://hooks.slack.com/services/T…/B…/… — it grants posting")
    timeout: float = 5.0


def slack_payload(message: Notification) -> dict[str, Any]:
    """Notification text is Stanch's plain sentences around alert text, with no formatting of its own, so
    every block shows it as `plain_text`: Slack renders no mention, link or `*bold*` from it at all. The
    top-level `text` (what push notifications show) is always mrkdwn, so it is escaped for mrkdwn."""
    return {
        "text": slack_mrkdwn(f"{headline(message)}: {message.text}", limit=SECTION_LIMIT),
        "blocks": [
            {
                "type": "header",
                "text": {
                    "type": "plain_text",
                    "text": plain(one_line(headline(message)), limit=HEADER_LIMIT),
                },
            },
            {
                "type": "section",
                "text": {"type": "plain_text", "text": plain(message.text, limit=SECTION_LIMIT)},
            },
            {"type": "context", "elements": [{"type": "plain_text", "text": plain(footer(message))}]},
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
