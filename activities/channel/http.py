"""The messaging channel over the documented HTTP contract: `/chat/channels/{name}/...`
(docs/platform-openapi.json), as the sandbox implements it.

Reads carry no key and change nothing. Every effect carries the idempotency key its workflow chose, so a
retried activity reaches the provider once.
"""

from __future__ import annotations

from pydantic import BaseModel

from activities.channel.interface import Channel
from activities.http import HttpConnection, M
from schemas.channel import (
    AccountBalance,
    Appeal,
    ChannelAction,
    ChannelReason,
    ChannelRef,
    NumberChange,
    ProviderStatus,
    RuntimeState,
    SendReport,
    TemplateBody,
    TemplateInUse,
    TemplateRef,
    TemplateSends,
    TemplateSendsBody,
    TemplateSendsChange,
    TemplateState,
    TemplateSubmission,
    TemplateSwitch,
    TemplateUseBody,
    TokenExpiry,
    TokenRotated,
    WebhookEvents,
)


class HttpChannel(HttpConnection, Channel):
    """The messaging channel at the platform's base URL."""

    async def _read(self, channel: str, path: str, result: type[M], what: str) -> M:
        return await self._http.read(
            f"/chat/channels/{channel}{path}", result, f"{what} of channel {channel}"
        )

    async def _effect(
        self, method: str, path: str, key: str, body: BaseModel, result: type[M], what: str
    ) -> M:
        return await self._http.effect(
            method,
            f"/chat/channels{path}",
            key=key,
            body=body.model_dump(mode="json"),
            result=result,
            what=what,
        )

    async def _act(self, verb: str, request: ChannelAction, result: type[M], what: str) -> M:
        """A POST of `{"reason": ...}` to `/chat/channels/{channel}/{verb}`."""
        path = f"/{request.channel}/{verb}"
        body = ChannelReason(reason=request.reason)
        return await self._effect("POST", path, request.idempotency_key, body, result, what)

    # ---- reads ------------------------------------------------------------------------------------------

    async def webhook_events(self, request: ChannelRef) -> WebhookEvents:
        return await self._read(request.channel, "/webhook-events", WebhookEvents, "webhook events")

    async def account_balance(self, request: ChannelRef) -> AccountBalance:
        return await self._read(request.channel, "/balance", AccountBalance, "account balance")

    async def token_expiry(self, request: ChannelRef) -> TokenExpiry:
        return await self._read(request.channel, "/token", TokenExpiry, "token expiry")

    async def provider_status(self, request: ChannelRef) -> ProviderStatus:
        return await self._read(request.channel, "/provider-status", ProviderStatus, "provider status")

    async def send_report(self, request: ChannelRef) -> SendReport:
        return await self._read(request.channel, "/sends", SendReport, "send report")

    async def get_template(self, request: TemplateRef) -> TemplateState:
        path = f"/templates/{request.template}"
        return await self._read(request.channel, path, TemplateState, "template")

    # ---- effects ----------------------------------------------------------------------------------------

    async def restart_runtime(self, request: ChannelAction) -> RuntimeState:
        what = f"runtime restart of channel {request.channel}"
        return await self._act("runtime/restart", request, RuntimeState, what)

    async def rotate_token(self, request: ChannelAction) -> TokenRotated:
        what = f"token rotation of channel {request.channel}"
        return await self._act("token/rotate", request, TokenRotated, what)

    async def set_template_sends(self, request: TemplateSendsChange) -> TemplateSends:
        body = TemplateSendsBody(enabled=request.enabled, reason=request.reason)
        what = f"template sends of channel {request.channel}"
        path = f"/{request.channel}/template-sends"
        return await self._effect("PUT", path, request.idempotency_key, body, TemplateSends, what)

    async def open_appeal(self, request: ChannelAction) -> Appeal:
        return await self._act("appeals", request, Appeal, f"appeal for channel {request.channel}")

    async def provision_number(self, request: ChannelAction) -> NumberChange:
        what = f"new number for channel {request.channel}"
        return await self._act("numbers", request, NumberChange, what)

    async def use_template(self, request: TemplateSwitch) -> TemplateInUse:
        body = TemplateUseBody(use=request.use, reason=request.reason)
        what = f"switch of template {request.template} to {request.use} on channel {request.channel}"
        path = f"/{request.channel}/templates/{request.template}/use"
        return await self._effect("POST", path, request.idempotency_key, body, TemplateInUse, what)

    async def submit_template(self, request: TemplateSubmission) -> TemplateState:
        body = TemplateBody(body=request.body, category=request.category)
        what = f"submission of template {request.template} on channel {request.channel}"
        path = f"/{request.channel}/templates/{request.template}/submissions"
        return await self._effect("POST", path, request.idempotency_key, body, TemplateState, what)
