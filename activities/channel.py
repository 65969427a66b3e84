"""Reads and effects on the customer chat channel: the WhatsApp Cloud API account and the runtime answering
its webhooks (the sandbox platform's `/chat/channels/{name}` in dev and tests).

Reads carry no key and change nothing. Every effect carries the idempotency key its workflow chose, so a
retried activity reaches the provider once.
"""

from __future__ import annotations

from typing import Any

import httpx
from temporalio import activity

from activities.heartbeat import heartbeating
from activities.http import M, PlatformHttp
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
    """Built once in the worker with the platform's HTTP client."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self._http = PlatformHttp(client)

    async def _read(self, channel: str, path: str, result: type[M], what: str) -> M:
        return await self._http.read(
            f"/chat/channels/{channel}{path}", result, f"{what} of channel {channel}"
        )

    async def _effect(
        self, method: str, path: str, key: str, body: dict[str, Any], result: type[M], what: str
    ) -> M:
        return await self._http.effect(
            method, f"/chat/channels{path}", key=key, body=body, result=result, what=what
        )

    async def _act(self, verb: str, request: ChannelAction, result: type[M], what: str) -> M:
        """A POST of `{"reason": ...}` to `/chat/channels/{channel}/{verb}`."""
        path = f"/{request.channel}/{verb}"
        return await self._effect(
            "POST", path, request.idempotency_key, {"reason": request.reason}, result, what
        )

    # ---- diagnostics --------------------------------------------------------------------------------

    @activity.defn(name="channel_webhook_events")
    @heartbeating
    async def webhook_events(self, request: ChannelRef) -> WebhookEvents:
        return await self._read(request.channel, "/webhook-events", WebhookEvents, "webhook events")

    @activity.defn(name="channel_account_balance")
    @heartbeating
    async def account_balance(self, request: ChannelRef) -> AccountBalance:
        return await self._read(request.channel, "/balance", AccountBalance, "account balance")

    @activity.defn(name="channel_token_expiry")
    @heartbeating
    async def token_expiry(self, request: ChannelRef) -> TokenExpiry:
        return await self._read(request.channel, "/token", TokenExpiry, "token expiry")

    @activity.defn(name="channel_provider_status")
    @heartbeating
    async def provider_status(self, request: ChannelRef) -> ProviderStatus:
        return await self._read(request.channel, "/provider-status", ProviderStatus, "provider status")

    @activity.defn(name="channel_send_report")
    @heartbeating
    async def send_report(self, request: ChannelRef) -> SendReport:
        return await self._read(request.channel, "/sends", SendReport, "send report")

    @activity.defn(name="channel_get_template")
    @heartbeating
    async def get_template(self, request: TemplateRef) -> TemplateState:
        path = f"/templates/{request.template}"
        return await self._read(request.channel, path, TemplateState, "template")

    # ---- effects ------------------------------------------------------------------------------------

    @activity.defn(name="channel_restart_runtime")
    @heartbeating
    async def restart_runtime(self, request: ChannelAction) -> RuntimeState:
        what = f"runtime restart of channel {request.channel}"
        return await self._act("runtime/restart", request, RuntimeState, what)

    @activity.defn(name="channel_rotate_token")
    @heartbeating
    async def rotate_token(self, request: ChannelAction) -> TokenRotated:
        # The new token stays with the provider and the vault; only its version and expiry come back.
        what = f"token rotation of channel {request.channel}"
        return await self._act("token/rotate", request, TokenRotated, what)

    @activity.defn(name="channel_set_template_sends")
    @heartbeating
    async def set_template_sends(self, request: TemplateSendsChange) -> TemplateSends:
        body = {"enabled": request.enabled, "reason": request.reason}
        what = f"template sends of channel {request.channel}"
        path = f"/{request.channel}/template-sends"
        return await self._effect("PUT", path, request.idempotency_key, body, TemplateSends, what)

    @activity.defn(name="channel_open_appeal")
    @heartbeating
    async def open_appeal(self, request: ChannelAction) -> Appeal:
        return await self._act("appeals", request, Appeal, f"appeal for channel {request.channel}")

    @activity.defn(name="channel_provision_number")
    @heartbeating
    async def provision_number(self, request: ChannelAction) -> NumberChange:
        what = f"new number for channel {request.channel}"
        return await self._act("numbers", request, NumberChange, what)

    @activity.defn(name="channel_use_template")
    @heartbeating
    async def use_template(self, request: TemplateSwitch) -> TemplateInUse:
        body = {"use": request.use, "reason": request.reason}
        what = f"switch of template {request.template} to {request.use} on channel {request.channel}"
        path = f"/{request.channel}/templates/{request.template}/use"
        return await self._effect("POST", path, request.idempotency_key, body, TemplateInUse, what)

    @activity.defn(name="channel_submit_template")
    @heartbeating
    async def submit_template(self, request: TemplateSubmission) -> TemplateState:
        body = {"body": request.body, "category": request.category}
        what = f"submission of template {request.template} on channel {request.channel}"
        path = f"/{request.channel}/templates/{request.template}/submissions"
        return await self._effect("POST", path, request.idempotency_key, body, TemplateState, what)
