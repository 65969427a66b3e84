"""The customer messaging channel: the provider account (a WhatsApp Cloud API number, its templates and
balance) and the runtime that answers its webhooks.

The channel runbooks (channel downtime, number banned, template rejected) act on it only through this
interface. Adapters: `http` (the contract, the sandbox's `/chat/channels/{name}`). Reads change nothing;
every effect is applied once per idempotency key. No answer ever carries a token's value.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import ClassVar

from activities.adapters import Adapter
from schemas.channel import (
    AccountBalance,
    Appeal,
    ChannelAction,
    ChannelRef,
    NumberChange,
    ProviderStatus,
    RuntimeState,
    SendReport,
    TemplateInUse,
    TemplateRef,
    TemplateSends,
    TemplateSendsChange,
    TemplateState,
    TemplateSubmission,
    TemplateSwitch,
    TokenExpiry,
    TokenRotated,
    WebhookEvents,
)
from schemas.systems import SystemName


class Channel(Adapter):
    system: ClassVar[SystemName] = "channel"

    # ---- reads: change nothing ----------------------------------------------------------------------

    @abstractmethod
    async def webhook_events(self, request: ChannelRef) -> WebhookEvents:
        """Webhook deliveries of the last five minutes, and how many the runtime answered with a 5xx."""

    @abstractmethod
    async def account_balance(self, request: ChannelRef) -> AccountBalance:
        """The provider account's balance, and whether the card on file was refused."""

    @abstractmethod
    async def token_expiry(self, request: ChannelRef) -> TokenExpiry:
        """The access token's version and how long until it expires (never its value)."""

    @abstractmethod
    async def provider_status(self, request: ChannelRef) -> ProviderStatus:
        """What the provider's status page says: up, degraded or down."""

    @abstractmethod
    async def send_report(self, request: ChannelRef) -> SendReport:
        """The last day of template sends, the number's quality, spam reports and blocks."""

    @abstractmethod
    async def get_template(self, request: TemplateRef) -> TemplateState:
        """A message template and where its review stands."""

    # ---- effects ------------------------------------------------------------------------------------

    @abstractmethod
    async def restart_runtime(self, request: ChannelAction) -> RuntimeState:
        """Restart the runtime that answers the channel's webhooks."""

    @abstractmethod
    async def rotate_token(self, request: ChannelAction) -> TokenRotated:
        """Rotate the access token; the new one stays with the provider and the vault."""

    @abstractmethod
    async def set_template_sends(self, request: TemplateSendsChange) -> TemplateSends:
        """Stop (or allow again) template sends on the channel."""

    @abstractmethod
    async def open_appeal(self, request: ChannelAction) -> Appeal:
        """Appeal the ban of the channel's number with the provider."""

    @abstractmethod
    async def provision_number(self, request: ChannelAction) -> NumberChange:
        """Move the channel to a new number; the old one is retired."""

    @abstractmethod
    async def use_template(self, request: TemplateSwitch) -> TemplateInUse:
        """Send an approved template wherever another would have been sent (itself: restore it)."""

    @abstractmethod
    async def submit_template(self, request: TemplateSubmission) -> TemplateState:
        """Submit a template's new text for the provider's review."""
