"""The named customer channels' own state (the WhatsApp Cloud API account and its runtime).

Webhook deliveries, balance, access token, the provider's status, the phone number and its quality, message
templates and their reviews, and the scenario knobs a test sets. The contract's bodies and answers are
`schemas/channel.py`."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from workers.sandbox.common import now_iso
from workers.sandbox.models.chat import ChatStatus

ChatTemplateStatus = Literal["approved", "pending", "rejected"]


ChatTemplateVerdict = Literal["approved", "rejected"]


ChatNumberStatus = Literal["active", "flagged", "banned", "retired"]


class ChatTemplateSubmission(BaseModel):
    body: str
    category: str
    verdict: ChatTemplateVerdict
    at: str


class ChatTemplate(BaseModel):
    body: str
    category: str = "UTILITY"
    status: ChatTemplateStatus = "approved"
    rejection_reason: str = ""
    # Scenario knobs: the provider's next review verdicts in order (approval once they run out), and how many
    # reads a review stays pending before its verdict shows.
    reviews: list[ChatTemplateVerdict] = []
    pending_reads: int = Field(1, ge=0)
    submissions: list[ChatTemplateSubmission] = []
    reads_left: int = 0


class ChatSendStats(BaseModel):
    template_sends_24h: int = 0
    spam_reports_24h: int = 0
    blocks_24h: int = 0
    rejected_template_sends: dict[str, int] = {}


class ChatChannelSpec(ChatStatus):
    runtime: str = "chat-runtime"
    runtime_5xx_last_5m: int = 0
    payment_failed: bool = False
    # Scenario knob: the provider's status reads "up" again after this many reads; None: it stays as set.
    provider_recovers_after_reads: int | None = None
    number: str = "+5511900000001"
    number_status: ChatNumberStatus = "active"
    quality_rating: Literal["high", "medium", "low"] = "high"
    template_sends_enabled: bool = True
    sends: ChatSendStats = ChatSendStats()
    templates: dict[str, ChatTemplate] = {}


class ChatNumber(BaseModel):
    number: str
    status: ChatNumberStatus
    at: str
    reason: str = ""


class ChatAppeal(BaseModel):
    appeal_id: str
    number: str
    status: str = "open"
    reason: str = ""
    at: str


class ChatChannel(ChatChannelSpec):
    runtime_restarts: int = 0
    token_version: int = 1
    token_rotations: int = 0
    provider_reads: int = 0
    numbers: list[ChatNumber] = []
    appeals: list[ChatAppeal] = []
    template_in_use: dict[str, str] = Field(
        default_factory=dict, description="template → the template sent in its place (absent: itself)"
    )


def seed_chat_channels() -> dict[str, ChatChannel]:
    # The demo channel `stanch fire` uses for the three channel scenarios: its runtime answers webhooks with
    # server errors, its number was banned after a marketing push, and its order confirmation was rejected.
    demo = new_chat_channel(
        "whatsapp-demo",
        ChatChannelSpec(
            runtime_5xx_last_5m=42,
            number_status="banned",
            quality_rating="low",
            sends=ChatSendStats(
                template_sends_24h=18000,
                spam_reports_24h=310,
                blocks_24h=950,
                rejected_template_sends={"promo_blackfriday": 4200},
            ),
            templates={
                "order_confirmation": ChatTemplate(
                    body="Seu pedido {{1}} foi confirmado! Aproveite 20% de desconto na próxima compra!",
                    category="MARKETING",
                    status="rejected",
                    rejection_reason="promotional content in a utility message",
                ),
                "generic_update": ChatTemplate(
                    body="Oi, tenho uma atualização sobre seu pedido, pode me responder?"
                ),
            },
        ),
    )
    return {demo.channel: demo}


def new_chat_channel(name: str, spec: ChatChannelSpec) -> ChatChannel:
    channel = ChatChannel(**{**spec.model_dump(), "channel": name})
    channel.numbers = [ChatNumber(number=spec.number, status=spec.number_status, at=now_iso())]
    return channel
