"""Requests to, and answers from, the customer chat channel (the WhatsApp Cloud API account and the runtime
that answers its webhooks), as the channel runbooks see them.

Reads carry no idempotency key; every effect does, chosen by the workflow (`step_key`). No model here ever
carries a token's value: a rotation answers with the new token's version and expiry only. One set, shared by
the runbooks, the adapters (`activities/channel/`) and the sandbox that implements the http contract: the
`…Body` models are what the http adapter sends and the provider's routes read.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from schemas.actions import SET_BY_ACT

# ---- reads --------------------------------------------------------------------------------------------


class ChannelRef(BaseModel):
    """Read one thing about a channel."""

    channel: str


class WebhookEvents(BaseModel):
    """What the webhook delivery log shows for the last five minutes."""

    channel: str
    events_last_5m: int = Field(description="provider webhook deliveries that reached the runtime")
    runtime_5xx_last_5m: int = Field(description="deliveries the runtime answered with a server error")


class AccountBalance(BaseModel):
    channel: str
    balance: float
    currency: str = "USD"
    payment_failed: bool = Field(False, description="the provider refused the card on file")

    @property
    def exhausted(self) -> bool:
        return self.balance <= 0 or self.payment_failed


class TokenExpiry(BaseModel):
    channel: str
    token_version: int
    expires_in_s: int

    @property
    def expired(self) -> bool:
        return self.expires_in_s <= 0


class ProviderStatus(BaseModel):
    channel: str
    status: str = Field(description="up, degraded or down, as the provider's status page says")

    @property
    def down(self) -> bool:
        return self.status != "up"


class SendReport(BaseModel):
    """The last day of template sends on the channel, for the after-ban analysis."""

    channel: str
    number: str
    quality_rating: str
    template_sends_24h: int
    spam_reports_24h: int
    blocks_24h: int
    rejected_template_sends: dict[str, int] = Field(
        default_factory=dict, description="template name → sends attempted while the template was rejected"
    )


class TemplateRef(BaseModel):
    channel: str
    template: str


class TemplateState(BaseModel):
    channel: str
    template: str
    body: str
    category: str
    status: Literal["approved", "pending", "rejected"]
    rejection_reason: str = ""
    submissions: int = 0
    replayed: bool = False


# ---- effects ------------------------------------------------------------------------------------------


class ChannelAction(BaseModel):
    """One effect on a channel; the key makes a retried call a no-op at the provider."""

    channel: str
    idempotency_key: str = Field("", description=SET_BY_ACT)
    reason: str = ""


class RuntimeState(BaseModel):
    channel: str
    runtime: str
    restarts: int
    runtime_5xx_last_5m: int
    replayed: bool = False


class TokenRotated(BaseModel):
    channel: str
    token_version: int
    expires_in_s: int
    replayed: bool = False


class TemplateSendsChange(ChannelAction):
    enabled: bool


class TemplateSends(BaseModel):
    channel: str
    template_sends_enabled: bool
    replayed: bool = False


class Appeal(BaseModel):
    channel: str
    appeal_id: str
    number: str
    status: str
    replayed: bool = False


class NumberChange(BaseModel):
    channel: str
    number: str
    previous_number: str
    replayed: bool = False


class TemplateSwitch(BaseModel):
    """Send `use` wherever `template` would have been sent (`use == template` restores it)."""

    channel: str
    template: str
    use: str
    idempotency_key: str = Field("", description=SET_BY_ACT)
    reason: str = ""


class TemplateInUse(BaseModel):
    channel: str
    template: str
    use: str
    replayed: bool = False


class TemplateSubmission(BaseModel):
    channel: str
    template: str
    body: str
    category: str
    idempotency_key: str = Field("", description=SET_BY_ACT)


# ---- wire bodies -------------------------------------------------------------------------------------


class ChannelReason(BaseModel):
    """The body of an effect that needs nothing but why: restart, rotate, appeal, new number."""

    reason: str = ""


class TemplateSendsBody(ChannelReason):
    enabled: bool


class TemplateUseBody(ChannelReason):
    use: str


class TemplateBody(BaseModel):
    body: str
    category: str


# ---- what a human tells the number-banned runbook ------------------------------------------------------


class AppealVerdict(BaseModel):
    """Payload of the `verdict` signal: the provider's answer to the appeal, as read by a person.

    Typed in the Temporal UI or with `temporal workflow signal --name verdict --input
    '{"by": "alice", "outcome": "final", "note": "case 123: ban upheld"}'`.
    """

    by: str
    outcome: Literal["reinstated", "final"]
    note: str = ""
