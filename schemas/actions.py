"""What every runbook's effects share (the idempotency key `act` sets), and the notifications.

Each system's own requests and results are in `schemas/<system>.py`."""

from __future__ import annotations

from pydantic import BaseModel, Field

# The description of every request's `idempotency_key` that a runbook sends through `IncidentWorkflow.act`.
SET_BY_ACT = (
    "<workflow id>/<run id>/<step>, set by IncidentWorkflow.act from the step it carries out, so a retry "
    "of the step reaches the system once; a request sent with it empty is refused by the activity"
)


class Notification(BaseModel):
    idempotency_key: str = Field("", description=SET_BY_ACT)
    channel: str = Field(description="the audience: on-call, a role, customer, an escalation level name …")
    severity: str
    title: str
    text: str
    recipient: str | None = None
    incident_id: str = ""
    escalation: bool = Field(
        False, description="an escalation level's message: goes to the level's people, or its groups"
    )
    # Set by the notify activity on each person's copy of a message to a role, never by a runbook: who the
    # copy is for and on which kind of channel (instant, cockpit, email) it reaches them.
    person: str | None = None
    kind: str | None = None

    @property
    def delivery_key(self) -> str:
        """The key a receiver dedupes on: the notification's own, plus the person and kind of a copy, so that
        alice's and bob's pages (or alice's instant and cockpit ones) are not taken for one message."""
        if self.person is None:
            return self.idempotency_key
        return f"{self.idempotency_key}/{self.person}/{self.kind}"


class Delivery(BaseModel):
    """One try of one configured channel; never carries a URL, token or password, only names."""

    channel: str = Field(description="configured channel name, e.g. slack-oncall")
    group: str = Field(description="the group it was tried for, e.g. instant; for a person: person/kind")
    person: str | None = Field(None, description="whom it was for, when a role's person was paged")
    kind: str | None = Field(None, description="the person's channel kind: instant, cockpit or email")
    transport: str = Field(description="slack, telegram, discord, webhook or email")
    delivered: bool
    replayed: bool = Field(False, description="already delivered under this idempotency key; not re-sent")
    error: str = ""


class NotificationReceipt(BaseModel):
    idempotency_key: str
    channel: str
    delivered: bool
    status_code: int | None = None
    deliveries: list[Delivery] = Field(
        default_factory=list, description="every channel tried, in order, failures included"
    )
    fallback: str = Field(
        "", description="why the priority's groups were paged instead of, or besides, the audience's people"
    )
