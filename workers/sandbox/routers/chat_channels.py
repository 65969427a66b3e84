"""Named customer channels (`/chat/channels/{name}`): the WhatsApp Cloud API account and its runtime.

The account's webhook deliveries, balance, access token, the provider's status, the phone number and its
quality, message templates and their reviews, and the runtime that answers its webhooks. One per name, so
tests and demos never share a channel; `/chat/status` stays the single default view. Token values never
leave the sandbox: a rotation answers with the new version and expiry only."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException

from schemas.channel import (
    AccountBalance,
    Appeal,
    ChannelReason,
    NumberChange,
    ProviderStatus,
    RuntimeState,
    SendReport,
    TemplateBody,
    TemplateInUse,
    TemplateSends,
    TemplateSendsBody,
    TemplateState,
    TemplateUseBody,
    TokenExpiry,
    TokenRotated,
    WebhookEvents,
)
from workers.sandbox.common import found_or_404, now_iso
from workers.sandbox.dependencies import SandboxDep, require_idempotency_key
from workers.sandbox.models.chat_channels import (
    ChatAppeal,
    ChatChannel,
    ChatNumber,
    ChatTemplate,
    ChatTemplateSubmission,
    ChatTemplateVerdict,
)
from workers.sandbox.state import Sandbox

# Reads: not effects a runbook performs, so no key is needed.
router = APIRouter()
# Everything on this router changes the stand-in's state, so it must be safe to retry.
effects = APIRouter(dependencies=[Depends(require_idempotency_key)])


CHAT_TOKEN_LIFETIME_S = 60 * 24 * 3600


def _chat_channel(sandbox: Sandbox, name: str) -> ChatChannel:
    return found_or_404(sandbox.chat_channels, name, f"unknown chat channel {name}")


def _chat_template(channel: ChatChannel, template: str) -> ChatTemplate:
    return found_or_404(channel.templates, template, f"channel {channel.channel} has no template {template}")


def _chat_template_view(channel: ChatChannel, name: str, template: ChatTemplate) -> TemplateState:
    return TemplateState(
        channel=channel.channel,
        template=name,
        body=template.body,
        category=template.category,
        status=template.status,
        rejection_reason=template.rejection_reason,
        submissions=len(template.submissions),
    )


@router.get("/chat/channels/{name}")
async def get_chat_channel(sandbox: SandboxDep, name: str) -> ChatChannel:
    return _chat_channel(sandbox, name)


@router.get("/chat/channels/{name}/webhook-events")
async def get_chat_webhook_events(sandbox: SandboxDep, name: str) -> WebhookEvents:
    channel = _chat_channel(sandbox, name)
    return WebhookEvents(
        channel=name,
        events_last_5m=channel.webhook_events_last_5m,
        runtime_5xx_last_5m=channel.runtime_5xx_last_5m,
    )


@router.get("/chat/channels/{name}/balance")
async def get_chat_balance(sandbox: SandboxDep, name: str) -> AccountBalance:
    channel = _chat_channel(sandbox, name)
    return AccountBalance(channel=name, balance=channel.balance, payment_failed=channel.payment_failed)


@router.get("/chat/channels/{name}/token")
async def get_chat_token(sandbox: SandboxDep, name: str) -> TokenExpiry:
    channel = _chat_channel(sandbox, name)
    return TokenExpiry(
        channel=name, token_version=channel.token_version, expires_in_s=channel.token_expires_in_s
    )


@router.get("/chat/channels/{name}/provider-status")
async def get_chat_provider_status(sandbox: SandboxDep, name: str) -> ProviderStatus:
    channel = _chat_channel(sandbox, name)
    channel.provider_reads += 1
    recovers = channel.provider_recovers_after_reads
    if recovers is not None and channel.provider_reads >= recovers:
        channel.provider_status = "up"
    return ProviderStatus(channel=name, status=channel.provider_status)


@router.get("/chat/channels/{name}/sends")
async def get_chat_sends(sandbox: SandboxDep, name: str) -> SendReport:
    channel = _chat_channel(sandbox, name)
    return SendReport(
        channel=name,
        number=channel.number,
        quality_rating=channel.quality_rating,
        **channel.sends.model_dump(),
    )


@router.get("/chat/channels/{name}/templates/{template}")
async def get_chat_template(sandbox: SandboxDep, name: str, template: str) -> TemplateState:
    channel = _chat_channel(sandbox, name)
    state = _chat_template(channel, template)
    if state.status == "pending" and state.submissions:
        if state.reads_left > 0:
            state.reads_left -= 1
        else:
            state.status = state.submissions[-1].verdict
            if state.status == "rejected":
                state.rejection_reason = "the provider still reads it as marketing"
    return _chat_template_view(channel, template, state)


@effects.post("/chat/channels/{name}/runtime/restart")
async def restart_chat_runtime(
    sandbox: SandboxDep, name: str, request: ChannelReason = ChannelReason()
) -> RuntimeState:
    channel = _chat_channel(sandbox, name)
    # A fresh runtime process answers the provider's webhooks again: the server errors stop.
    channel.runtime_restarts += 1
    channel.runtime_5xx_last_5m = 0
    return RuntimeState(
        channel=name,
        runtime=channel.runtime,
        restarts=channel.runtime_restarts,
        runtime_5xx_last_5m=channel.runtime_5xx_last_5m,
    )


@effects.post("/chat/channels/{name}/token/rotate")
async def rotate_chat_token(
    sandbox: SandboxDep, name: str, request: ChannelReason = ChannelReason()
) -> TokenRotated:
    channel = _chat_channel(sandbox, name)
    channel.token_version += 1
    channel.token_rotations += 1
    channel.token_expires_in_s = CHAT_TOKEN_LIFETIME_S
    return TokenRotated(channel=name, token_version=channel.token_version, expires_in_s=CHAT_TOKEN_LIFETIME_S)


@effects.put("/chat/channels/{name}/template-sends")
async def set_chat_template_sends(
    sandbox: SandboxDep, name: str, setting: TemplateSendsBody
) -> TemplateSends:
    channel = _chat_channel(sandbox, name)
    channel.template_sends_enabled = setting.enabled
    return TemplateSends(channel=name, template_sends_enabled=channel.template_sends_enabled)


@effects.post("/chat/channels/{name}/appeals", status_code=201)
async def open_chat_appeal(
    sandbox: SandboxDep, name: str, request: ChannelReason = ChannelReason()
) -> Appeal:
    channel = _chat_channel(sandbox, name)
    appeal = ChatAppeal(
        appeal_id=f"appeal-{name}-{len(channel.appeals) + 1}",
        number=channel.number,
        reason=request.reason,
        at=now_iso(),
    )
    channel.appeals.append(appeal)
    return Appeal(channel=name, appeal_id=appeal.appeal_id, number=appeal.number, status=appeal.status)


@effects.post("/chat/channels/{name}/numbers", status_code=201)
async def provision_chat_number(
    sandbox: SandboxDep, name: str, request: ChannelReason = ChannelReason()
) -> NumberChange:
    channel = _chat_channel(sandbox, name)
    previous = channel.number
    for number in channel.numbers:
        if number.number == previous:
            number.status = "retired"
    # A new number starts clean: active, and with no quality history yet.
    channel.number = f"+55119{len(channel.numbers) + 1:08d}"
    channel.number_status, channel.quality_rating = "active", "high"
    channel.numbers.append(
        ChatNumber(number=channel.number, status="active", at=now_iso(), reason=request.reason)
    )
    return NumberChange(channel=name, number=channel.number, previous_number=previous)


@effects.post("/chat/channels/{name}/templates/{template}/use")
async def use_chat_template(
    sandbox: SandboxDep, name: str, template: str, request: TemplateUseBody
) -> TemplateInUse:
    channel = _chat_channel(sandbox, name)
    _chat_template(channel, template)
    if _chat_template(channel, request.use).status != "approved":
        raise HTTPException(409, f"template {request.use} is not approved and cannot be sent")
    if request.use == template:
        channel.template_in_use.pop(template, None)
    else:
        channel.template_in_use[template] = request.use
    return TemplateInUse(channel=name, template=template, use=request.use)


@effects.post("/chat/channels/{name}/templates/{template}/submissions", status_code=201)
async def submit_chat_template(
    sandbox: SandboxDep, name: str, template: str, submission: TemplateBody
) -> TemplateState:
    channel = _chat_channel(sandbox, name)
    state = _chat_template(channel, template)
    verdict: ChatTemplateVerdict = state.reviews.pop(0) if state.reviews else "approved"
    state.submissions.append(
        ChatTemplateSubmission(
            body=submission.body, category=submission.category, verdict=verdict, at=now_iso()
        )
    )
    state.body, state.category = submission.body, submission.category
    state.status, state.rejection_reason, state.reads_left = "pending", "", state.pending_reads
    return _chat_template_view(channel, template, state)


router.include_router(effects)
