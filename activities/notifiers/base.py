"""The notifier capability: one base class, one module per vendor (convention 7).

A notifier knows its vendor's wire format and its own secrets, nothing about priorities or fallback:
`activities.notify` decides which notifiers to try, in which order, and under which timeout.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlsplit

import httpx

from schemas.actions import Notification
from stanch.redact import remember, scrub, scrub_known

# Vendor answers are quoted in errors so an operator sees why a channel failed; a bounded excerpt is enough.
ERROR_EXCERPT = 200


class DeliveryFailed(Exception):
    """The channel did not take the message. The text is already scrubbed of the channel's secrets."""


class Notifier(ABC):
    transport: ClassVar[str]

    def __init__(self, name: str, *, timeout: float) -> None:
        self.name = name
        self.timeout = timeout

    @abstractmethod
    async def send(self, message: Notification) -> None:
        """Deliver one message or raise DeliveryFailed."""

    def secrets(self) -> list[str]:
        """Values that must never appear in an error, a log line or a receipt."""
        return []

    def scrub(self, text: str) -> str:
        return scrub(text, self.secrets())

    def __repr__(self) -> str:  # never the config: it holds the secrets
        return f"<{type(self).__name__} {self.name!r}>"


# Path segments and query values at least this long are taken for keys: Slack's webhook secret is 24
# characters, Discord's token 68; shorter ones ("services", "messages") are names, and scrubbing them
# would only make errors unreadable.
KEY_LENGTH = 16


def url_secrets(url: str) -> list[str]:
    """A URL that is itself the credential, and the key-like parts of it a vendor might echo back alone."""
    parts = urlsplit(url)
    pieces = [segment for segment in parts.path.split("/") if len(segment) >= KEY_LENGTH]
    pieces += [value for _, value in parse_qsl(parts.query) if len(value) >= KEY_LENGTH]
    if parts.password:
        pieces.append(parts.password)
    return [url, *pieces]


# ---- plain text every vendor renders from ----------------------------------------------------------


def headline(message: Notification) -> str:
    return f"[{message.severity}] {message.title}"


def footer(message: Notification) -> str:
    parts = [f"Severity {message.severity}"]
    if message.incident_id:
        parts.append(f"incident {message.incident_id}")
    if message.recipient:
        parts.append(f"for {message.recipient}")
    if message.person:
        # A shared channel (a team's Slack) may carry several people's copies: say whose this one is.
        parts.append(f"to {message.person} ({message.kind})")
    return " · ".join(parts)


def plain_text(message: Notification) -> str:
    return f"{headline(message)}\n{message.text}\n{footer(message)}"


def truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ---- HTTP vendors ----------------------------------------------------------------------------------


class HttpNotifier(Notifier):
    """A vendor reached by one JSON POST. The httpx client is shared, built once in the worker."""

    def __init__(self, name: str, *, timeout: float, client: httpx.AsyncClient) -> None:
        super().__init__(name, timeout=timeout)
        self._client = client

    async def post_json(
        self, url: str, payload: dict[str, Any], headers: dict[str, str] | None = None
    ) -> httpx.Response:
        try:
            # The caller bounds the whole try at self.timeout; httpx's own (per connect, write, read) is only
            # a backstop that releases the connection, set a little later so the two never race.
            response = await self._client.post(url, json=payload, headers=headers, timeout=self.timeout + 1)
        except httpx.HTTPError as error:
            # `from None`: the original exception carries the request, and so the URL with its secret.
            raise DeliveryFailed(self.scrub(f"{type(error).__name__}: {error}".rstrip(": "))) from None
        if not response.is_success:
            raise DeliveryFailed(
                self.scrub(f"HTTP {response.status_code}: {response.text[:ERROR_EXCERPT]}".rstrip(": "))
            )
        return response


# ---- logs ------------------------------------------------------------------------------------------


class SecretScrubber(logging.Filter):
    """httpx logs every request URL at INFO, and Slack, Discord and Telegram keep their key in the URL.

    Attached to the client libraries' loggers by the worker (not at import: importing must stay free of
    side effects), it rewrites any record that contains a secret the process registered (stanch.redact).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        rendered = record.getMessage()
        cleaned = scrub_known(rendered)
        if cleaned != rendered:
            record.msg, record.args = cleaned, None
        return True


LOG_SCRUBBER = SecretScrubber()
SCRUBBED_LOGGERS = ("httpx", "httpcore")


def scrub_logs(secrets: Iterable[str]) -> None:
    """Keep these values out of the client libraries' log lines and, when tracing is on, out of the URL
    recorded on each request's span (stanch.telemetry scrubs with the same registry)."""
    remember(secrets)
    for name in SCRUBBED_LOGGERS:
        logger = logging.getLogger(name)
        if LOG_SCRUBBER not in logger.filters:
            logger.addFilter(LOG_SCRUBBER)
