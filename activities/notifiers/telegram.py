"""Telegram Bot API: POST <api_base>/bot<token>/sendMessage with {"chat_id", "text", "parse_mode"}.

The bot token sits in the URL path, so every error text is scrubbed of it and httpx's request log is
filtered (see base.SecretScrubber). Telegram answers {"ok": true, "result": {...}}, or a 4xx with
{"ok": false, "error_code", "description"}.
"""

from __future__ import annotations

from typing import Any

import httpx
from pydantic import BaseModel, SecretStr

from activities.notifiers.base import ERROR_EXCERPT, DeliveryFailed, HttpNotifier, footer, headline
from schemas.actions import Notification
from stanch.markup import one_line, telegram_html

TEXT_LIMIT = 4096
TITLE_LIMIT = 300
DEFAULT_API_BASE = "https://api.telegram.org"


class TelegramConfig(BaseModel):
    token: SecretStr
    chat_id: str
    api_base: str = DEFAULT_API_BASE
    timeout: float = 5.0


def telegram_payload(chat_id: str, message: Notification) -> dict[str, Any]:
    # HTML is the parse mode with the simplest escaping rules: <, > and & only (stanch.markup). The tags
    # are Stanch's own; the title, body and footer are escaped, each bounded so the whole stays under the
    # limit (which the Bot API counts after parsing entities, so counting the escaped text is safe).
    title = telegram_html(one_line(headline(message)), limit=TITLE_LIMIT)
    foot = telegram_html(one_line(footer(message)), limit=TITLE_LIMIT)
    body = telegram_html(message.text, limit=TEXT_LIMIT - 2 * TITLE_LIMIT - 20)
    text = f"<b>{title}</b>\n{body}\n<i>{foot}</i>"
    # A numeric id is an Integer in the Bot API; "@channelname" stays a string.
    target: int | str = int(chat_id) if chat_id.lstrip("-").isdigit() else chat_id
    return {"chat_id": target, "text": text, "parse_mode": "HTML"}


def telegram_refusal(body: Any) -> str | None:
    """Why Telegram refused, from its JSON answer; None when it accepted the message."""
    if isinstance(body, dict) and body.get("ok") is True:
        return None
    if isinstance(body, dict):
        code, description = body.get("error_code", "?"), body.get("description", "no description")
        return f"Telegram refused ({code}): {description}"
    return "Telegram answered without a JSON object"


class TelegramNotifier(HttpNotifier):
    transport = "telegram"

    def __init__(self, name: str, config: TelegramConfig, client: httpx.AsyncClient) -> None:
        super().__init__(name, timeout=config.timeout, client=client)
        self._config = config

    def secrets(self) -> list[str]:
        return [self._config.token.get_secret_value()]

    def _url(self) -> str:
        return f"{self._config.api_base.rstrip('/')}/bot{self._config.token.get_secret_value()}/sendMessage"

    async def send(self, message: Notification) -> None:
        payload = telegram_payload(self._config.chat_id, message)
        try:
            response = await self.post_json(self._url(), payload)
        except DeliveryFailed as failed:
            raise DeliveryFailed(f"Telegram: {failed}") from None
        try:
            body: Any = response.json()
        except ValueError:
            body = None
        refusal = telegram_refusal(body)
        if refusal:
            raise DeliveryFailed(self.scrub(refusal[:ERROR_EXCERPT]))
