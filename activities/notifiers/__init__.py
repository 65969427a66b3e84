"""Notifiers, one module per vendor, and the one place that turns policy channels into them.

The policy file names channels and the environment variables holding their secrets; `build_notifiers`
reads those variables once, at worker start-up, into SecretStr configs. A missing variable is a
PolicyError naming the channel key and the variable — never its value.
"""

from __future__ import annotations

from collections.abc import Mapping

import httpx
from pydantic import SecretStr

from activities.notifiers.base import DeliveryFailed, Notifier
from activities.notifiers.discord import DiscordConfig, DiscordNotifier
from activities.notifiers.email import EmailConfig, EmailNotifier
from activities.notifiers.slack import SlackConfig, SlackNotifier
from activities.notifiers.telegram import TelegramConfig, TelegramNotifier
from activities.notifiers.webhook import WebhookConfig, WebhookNotifier
from stanch.policy import (
    Channel,
    DiscordChannel,
    EmailChannel,
    PolicyError,
    SlackChannel,
    TelegramChannel,
    WebhookChannel,
)
from stanch.settings import Settings

__all__ = ["DeliveryFailed", "Notifier", "build_notifiers"]


def build_notifiers(
    channels: Mapping[str, Channel],
    settings: Settings,
    client: httpx.AsyncClient,
    environ: Mapping[str, str],
) -> dict[str, Notifier]:
    return {name: _notifier(name, channel, settings, client, environ) for name, channel in channels.items()}


def _notifier(
    name: str,
    channel: Channel,
    settings: Settings,
    client: httpx.AsyncClient,
    environ: Mapping[str, str],
) -> Notifier:
    def secret(key: str, variable: str) -> SecretStr:
        value = environ.get(variable, "")
        if not value:
            raise PolicyError(f"channels.{name}.{key}: environment variable {variable} is not set")
        return SecretStr(value)

    timeout = channel.timeout_seconds
    match channel:
        case SlackChannel():
            return SlackNotifier(
                name, SlackConfig(url=secret("url_env", channel.url_env), timeout=timeout), client
            )
        case DiscordChannel():
            return DiscordNotifier(
                name, DiscordConfig(url=secret("url_env", channel.url_env), timeout=timeout), client
            )
        case TelegramChannel():
            config = TelegramConfig(
                token=secret("token_env", channel.token_env),
                chat_id=channel.chat_id,
                api_base=channel.api_base,
                timeout=timeout,
            )
            return TelegramNotifier(name, config, client)
        case WebhookChannel():
            if channel.url_env is not None:
                url = secret("url_env", channel.url_env)
            else:
                url = SecretStr(settings.notify_webhook_url)
            return WebhookNotifier(name, WebhookConfig(url=url, timeout=timeout), client)
        case EmailChannel():
            password = secret("password_env", channel.password_env) if channel.password_env else None
            return EmailNotifier(
                name,
                EmailConfig(
                    host=channel.host,
                    port=channel.port,
                    starttls=channel.starttls,
                    username=channel.username,
                    password=password,
                    from_address=channel.from_address,
                    to=channel.to,
                    timeout=timeout,
                ),
            )
