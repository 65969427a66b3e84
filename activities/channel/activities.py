"""The messaging channel's activities: each calls the adapter the policy names (`[systems.channel]`).

The activity type names are those recorded histories hold (`channel_…`); new ones follow `<system>_<verb>`.
"""

from __future__ import annotations

from typing import Any

from temporalio import activity

from activities.channel.interface import Channel
from activities.heartbeat import heartbeating
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


class ChannelActivities:
    """Built once in the worker around the messaging channel's adapter."""

    def __init__(self, channel: Channel) -> None:
        self._channel = channel

    # ---- diagnostics ------------------------------------------------------------------------------------

    @activity.defn(name="channel_webhook_events")
    @heartbeating
    async def webhook_events(self, request: ChannelRef) -> WebhookEvents:
        return await self._channel.webhook_events(request)

    @activity.defn(name="channel_account_balance")
    @heartbeating
    async def account_balance(self, request: ChannelRef) -> AccountBalance:
        return await self._channel.account_balance(request)

    @activity.defn(name="channel_token_expiry")
    @heartbeating
    async def token_expiry(self, request: ChannelRef) -> TokenExpiry:
        return await self._channel.token_expiry(request)

    @activity.defn(name="channel_provider_status")
    @heartbeating
    async def provider_status(self, request: ChannelRef) -> ProviderStatus:
        return await self._channel.provider_status(request)

    @activity.defn(name="channel_send_report")
    @heartbeating
    async def send_report(self, request: ChannelRef) -> SendReport:
        return await self._channel.send_report(request)

    @activity.defn(name="channel_get_template")
    @heartbeating
    async def get_template(self, request: TemplateRef) -> TemplateState:
        return await self._channel.get_template(request)

    # ---- effects ----------------------------------------------------------------------------------------

    @activity.defn(name="channel_restart_runtime")
    @heartbeating
    async def restart_runtime(self, request: ChannelAction) -> RuntimeState:
        return await self._channel.restart_runtime(request)

    @activity.defn(name="channel_rotate_token")
    @heartbeating
    async def rotate_token(self, request: ChannelAction) -> TokenRotated:
        return await self._channel.rotate_token(request)

    @activity.defn(name="channel_set_template_sends")
    @heartbeating
    async def set_template_sends(self, request: TemplateSendsChange) -> TemplateSends:
        return await self._channel.set_template_sends(request)

    @activity.defn(name="channel_open_appeal")
    @heartbeating
    async def open_appeal(self, request: ChannelAction) -> Appeal:
        return await self._channel.open_appeal(request)

    @activity.defn(name="channel_provision_number")
    @heartbeating
    async def provision_number(self, request: ChannelAction) -> NumberChange:
        return await self._channel.provision_number(request)

    @activity.defn(name="channel_use_template")
    @heartbeating
    async def use_template(self, request: TemplateSwitch) -> TemplateInUse:
        return await self._channel.use_template(request)

    @activity.defn(name="channel_submit_template")
    @heartbeating
    async def submit_template(self, request: TemplateSubmission) -> TemplateState:
        return await self._channel.submit_template(request)

    def all(self) -> list[Any]:
        """Every activity of this class, for the worker's list."""
        return [
            self.webhook_events,
            self.account_balance,
            self.token_expiry,
            self.provider_status,
            self.send_report,
            self.get_template,
            self.restart_runtime,
            self.rotate_token,
            self.set_template_sends,
            self.open_appeal,
            self.provision_number,
            self.use_template,
            self.submit_template,
        ]
