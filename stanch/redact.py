"""Configured secrets, kept out of whatever a process writes down: errors, log lines, trace spans.

A process registers the secret values it holds once (the worker does for its notification channels:
Slack, Discord and Telegram keep their key in the request URL); every place that renders text a secret may
end up in scrubs it with `scrub_known`. Only exact values can be found, so register each one whole and,
for a URL that is itself the credential, its key-like parts too.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import quote

REDACTED = "***"

_known: set[str] = set()


def scrub(text: str, secrets: Iterable[str]) -> str:
    # Longest first, so a URL is replaced whole before the token inside it; URL-quoted forms too, since a
    # client may echo a token back percent-encoded.
    variants = {form for secret in secrets if secret for form in (secret, quote(secret, safe=""))}
    for value in sorted(variants, key=len, reverse=True):
        text = text.replace(value, REDACTED)
    return text


def remember(secrets: Iterable[str]) -> None:
    """Add secret values this process holds; from then on `scrub_known` removes them."""
    _known.update(secret for secret in secrets if secret)


def scrub_known(text: str) -> str:
    return scrub(text, _known) if _known else text
