"""Reads and effects on the customer chat channel: the WhatsApp Cloud API account and the runtime answering
its webhooks (the sandbox platform's `/chat/channels/{name}` in dev and tests).

Reads carry no key and change nothing. Every effect carries the idempotency key its workflow chose, so a
retried activity reaches the provider once.
"""

from __future__ import annotations

from typing import Any

import httpx
from temporalio import activity

from activities.errors import raise_for_status
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
        self._client = client

    async def _read(self, channel: str, path: str, what: str) -> Any:
        response = await self._client.get(f"/chat/channels/{channel}{path}")
        raise_for_status(response, f"{what} of channel {channel}")
        return response.json()

    async def _effect(self, method: str, path: str, key: str, body: dict[str, Any], what: str) -> Any:
        response = await self._client.request(
            method, f"/chat/channels{path}", json=body, headers={"Idempotency-Key": key}
        )
        raise_for_status(response, what)
        return response.json()

    # ---- diagnostics --------------------------------------------------------------------------------

    @activity.defn(name="channel_webhook_events")
    async def webhook_events(self, request: ChannelRef) -> WebhookEvents:
        data = await self._read(request.channel, "/webhook-events", "webhook events")
        return WebhookEvents.model_validate(data)

    @activity.defn(name="channel_account_balance")
    async def account_balance(self, request: ChannelRef) -> AccountBalance:
        data = await self._read(request.channel, "/balance", "account balance")
        return AccountBalance.model_validate(data)

    @activity.defn(name="channel_token_expiry")
    async def token_expiry(self, request: ChannelRef) -> TokenExpiry:
        data = await self._read(request.channel, "/token", "token expiry")
        return TokenExpiry.model_validate(data)

    @activity.defn(name="channel_provider_status")
    async def provider_status(self, request: ChannelRef) -> ProviderStatus:
        data = await self._read(request.channel, "/provider-status", "provider status")
        return ProviderStatus.model_validate(data)

    @activity.defn(name="channel_send_report")
    async def send_report(self, request: ChannelRef) -> SendReport:
        data = await self._read(request.channel, "/sends", "send report")
        return SendReport.model_validate(data)

    @activity.defn(name="channel_get_template")
    async def get_template(self, request: TemplateRef) -> TemplateState:
        data = await self._read(request.channel, f"/templates/{request.template}", "template")
        return TemplateState.model_validate(data)

    # ---- effects ------------------------------------------------------------------------------------

    @activity.defn(name="channel_restart_runtime")
    async def restart_runtime(self, request: ChannelAction) -> RuntimeState:
        data = await self._effect(
            "POST",
            f"/{request.channel}/runtime/restart",
            request.idempotency_key,
            {"reason": request.reason},
            f"runtime restart of channel {request.channel}",
        )
        return RuntimeState.model_validate(data)

    @activity.defn(name="channel_rotate_token")
    async def rotate_token(self, request: ChannelAction) -> TokenRotated:
        # The new token stays with the provider and the vault; only its version and expiry come back.
        data = await self._effect(
            "POST",
            f"/{request.channel}/token/rotate",
            request.idempotency_key,
            {"reason": request.reason},
            f"token rotation of channel {request.channel}",
        )
        return TokenRotated.model_validate(data)

    @activity.defn(name="channel_set_template_sends")
    async def set_template_sends(self, request: TemplateSendsChange) -> TemplateSends:
        data = await self._effect(
            "PUT",
            f"/{request.channel}/template-sends",
            request.idempotency_key,
            {"enabled": request.enabled, "reason": request.reason},
            f"template sends of channel {request.channel}",
        )
        return TemplateSends.model_validate(data)

    @activity.defn(name="channel_open_appeal")
    async def open_appeal(self, request: ChannelAction) -> Appeal:
        data = await self._effect(
            "POST",
            f"/{request.channel}/appeals",
            request.idempotency_key,
            {"reason": request.reason},
            f"appeal for channel {request.channel}",
        )
        return Appeal.model_validate(data)

    @activity.defn(name="channel_provision_number")
    async def provision_number(self, request: ChannelAction) -> NumberChange:
        data = await self._effect(
            "POST",
            f"/{request.channel}/numbers",
            request.idempotency_key,
            {"reason": request.reason},
            f"new number for channel {request.channel}",
        )
        return NumberChange.model_validate(data)

    @activity.defn(name="channel_use_template")
    async def use_template(self, request: TemplateSwitch) -> TemplateInUse:
        data = await self._effect(
            "POST",
            f"/{request.channel}/templates/{request.template}/use",
            request.idempotency_key,
            {"use": request.use, "reason": request.reason},
            f"switch of template {request.template} to {request.use} on channel {request.channel}",
        )
        return TemplateInUse.model_validate(data)

    @activity.defn(name="channel_submit_template")
    async def submit_template(self, request: TemplateSubmission) -> TemplateState:
        data = await self._effect(
            "POST",
            f"/{request.channel}/templates/{request.template}/submissions",
            request.idempotency_key,
            {"body": request.body, "category": request.category},
            f"submission of template {request.template} on channel {request.channel}",
        )
        return TemplateState.model_validate(data)
