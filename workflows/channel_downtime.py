"""Channel downtime: customers write to the WhatsApp channel and nothing comes back.

Look before touching anything, and look at everything at once: are the provider's webhooks still reaching
the runtime (and what does the runtime answer them), has the account's balance run out, has the access
token expired. When no webhook arrives at all, ask the provider's status page too. Then treat each cause
found, the ones in our hands first:

- the runtime answers with server errors → restart it, once the runtime's guardrail allows it (past its
  hourly restart limit a human approves the restart instead);
- the access token expired → a human approves generating a new one and storing it; unanswered, the token is
  left alone and the incident escalates;
- the balance is spent or the card was refused → on-call is asked to top the account up; nothing automatic;
- the provider is down → watch its status every two minutes for up to an hour, and tell the customer when it
  is back (escalate if it never comes back in that hour).

Nothing found: on-call is told the channel looks healthy from here, and the incident stays with them.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.channel import ChannelActivities
    from schemas.approvals import ApprovalRequest
    from schemas.channel import (
        AccountBalance,
        ChannelAction,
        ChannelRef,
        ProviderStatus,
        TokenExpiry,
        WebhookEvents,
    )
    from schemas.guardrail import Risk
    from schemas.incidents import IncidentInput, IncidentResult
    from schemas.targets import ChannelDowntimeTarget
    from workflows.steps.approve_then_act import FailurePage, approve_then_act
    from workflows.steps.channel import read
    from workflows.steps.failures import page_failure
    from workflows.steps.guardrail import action_check, ask_guardrail
    from workflows.steps.incident import IncidentWorkflow
    from workflows.steps.patches import patched
    from workflows.steps.system_state import UNREADABLE, observe

# Server errors on webhook deliveries within five minutes that mean the runtime itself is broken, not a blip.
RUNTIME_ERROR_THRESHOLD = 5
PROVIDER_POLL_EVERY = timedelta(minutes=2)
PROVIDER_POLLS = 30  # an hour of watching; past that a provider outage is a human's to chase

# How the final state is chosen when several causes were found: the one that needs people most wins.
OUTCOME_ORDER = ["action_failed", "escalated", "declined", "awaiting_top_up", "undiagnosed", "restored"]


@workflow.defn(name="channel_downtime")
class ChannelDowntime(IncidentWorkflow):
    target_model = ChannelDowntimeTarget  # what it acts on: schemas/targets.py
    uses_roles = ("oncall", "lead")  # the worker checks [roles]

    @workflow.run
    async def run(self, incident: IncidentInput) -> IncidentResult:
        channel = incident.target["channel"]
        customer = incident.target.get("customer", "the customer")
        self.open(
            recommendation=f"Diagnose channel {channel}: webhooks, balance and token, checked together",
            risk_if_no_action=f"Customers writing to {channel} get no answer at all",
        )

        # 1. Diagnose: the three checks run side by side, so the slowest sets the pace, not their sum.
        self.set_state("diagnosing")
        ref = ChannelRef(channel=channel)
        webhooks, balance, token = await asyncio.gather(
            read(ChannelActivities.webhook_events, ref, summary="Webhook events in the last 5 minutes"),
            read(ChannelActivities.account_balance, ref, summary="Account balance"),
            read(ChannelActivities.token_expiry, ref, summary="Access token expiry"),
        )
        # No webhook arriving at all points away from us, at the provider: ask its status page.
        provider = None
        if webhooks is None or webhooks.events_last_5m == 0:
            provider = await read(ChannelActivities.provider_status, ref, summary="Provider status")
        self.observe_diagnosis(webhooks, balance, token, provider)
        findings = diagnosis(webhooks, balance, token, provider)
        self.brief.summary = f"{incident.summary}. Diagnosis: {'; '.join(findings)}"
        self.note("note", f"diagnosis: {'; '.join(findings)}")
        causes = self._causes(webhooks, balance, token, provider)
        self.set_state("diagnosed")
        await self.audit(
            "diagnosis",
            action=f"diagnose channel {channel}",
            outcome=",".join(causes) or "nothing found",
            reason="; ".join(findings),
        )

        # 2. Treat each cause found, ours first.
        outcomes: list[str] = []
        if "runtime_errors" in causes:
            assert webhooks is not None
            outcomes.append(await self.restart_runtime(channel, webhooks.runtime_5xx_last_5m))
        if "token_expired" in causes:
            outcomes.append(await self.rotate_token(channel))
        if "balance_exhausted" in causes:
            assert balance is not None
            outcomes.append(await self.ask_for_top_up(channel, balance))
        if "provider_down" in causes:
            outcomes.append(await self.watch_provider(channel, customer))
        if not causes:
            await self.notify(
                "nothing-found",
                channel="on-call",
                title=f"Channel {channel} down, no cause found",
                text=f"{incident.summary}. Webhooks, balance, token and provider all look healthy "
                f"({'; '.join(findings)}). A person needs to look.",
            )
            outcomes.append("undiagnosed")
        return await self.finish(min(outcomes, key=OUTCOME_ORDER.index))

    @staticmethod
    def _causes(
        webhooks: WebhookEvents | None,
        balance: AccountBalance | None,
        token: TokenExpiry | None,
        provider: ProviderStatus | None,
    ) -> list[str]:
        causes = []
        if webhooks is not None and webhooks.runtime_5xx_last_5m >= RUNTIME_ERROR_THRESHOLD:
            causes.append("runtime_errors")
        if token is not None and token.expired:
            causes.append("token_expired")
        if balance is not None and balance.exhausted:
            causes.append("balance_exhausted")
        if provider is not None and provider.down:
            causes.append("provider_down")
        return causes

    def observe_diagnosis(
        self,
        webhooks: WebhookEvents | None,
        balance: AccountBalance | None,
        token: TokenExpiry | None,
        provider: ProviderStatus | None,
    ) -> None:
        """The brief's system state from the diagnosis: webhook flow, the runtime's errors, balance, token."""
        observe(self, "webhook events", f"{webhooks.events_last_5m} in 5 min" if webhooks else UNREADABLE)
        observe(
            self,
            "runtime server errors",
            f"{webhooks.runtime_5xx_last_5m} in 5 min" if webhooks else UNREADABLE,
            limit=f"restart at {RUNTIME_ERROR_THRESHOLD}",
        )
        if balance is None:
            observe(self, "balance", UNREADABLE)
        else:
            refused = ", card refused" if balance.payment_failed else ""
            observe(self, "balance", f"{balance.balance:.2f} {balance.currency}{refused}", limit="above 0.00")
        observe(
            self, "access token", token_text(token.token_version, token.expires_in_s) if token else UNREADABLE
        )
        if provider is not None:
            observe(self, "provider", provider.status)

    # ---- server errors: restart the runtime -----------------------------------------------------------

    async def restart_runtime(self, channel: str, errors: int) -> str:
        runtime = self.incident.target.get("runtime", "the runtime")
        subsystem = self.incident.target.get("subsystem", "runtime")
        reason = (
            f"{runtime} answered {errors} webhook deliveries of {channel} with server errors in 5 minutes"
        )
        verdict = await ask_guardrail(
            subsystem,
            action_check(
                "restart-runtime",
                action=f"restart {runtime}",
                kind="restart",
                risk=Risk.high,
                reason=reason,
            ),
            self.incident.policy.guardrail_limits(subsystem),
        )
        self.note("decision", f"guardrail {subsystem}: {verdict.ruling.value} ({verdict.reason})")
        await self.audit(
            "guardrail-restart-runtime",
            action=f"ask guardrail {subsystem} to restart {runtime}",
            outcome=verdict.ruling.value,
            reason=verdict.reason,
        )
        actor = "stanch"
        if not verdict.allowed:
            decision = await self.gate.ask(
                ApprovalRequest(
                    action="restart-runtime",
                    recommendation=f"Restart {runtime}: {reason}; the guardrail held it back "
                    f"({verdict.reason})",
                    risk=f"Every message to {channel} keeps failing with a server error",
                    allowed_roles=["oncall", "lead"],
                    safe_default=f"leave {runtime} running as it is; on-call keeps looking",
                )
            )
            if not decision.approved:
                return "escalated" if decision.timed_out else "declined"
            actor = decision.decided_by
        restarted = await self.act(
            "restart-runtime",
            ChannelActivities.restart_runtime,
            ChannelAction(channel=channel, reason=reason),
            summary=f"Restart {runtime} of channel {channel}",
            actor=actor,
        )
        if restarted is not None:
            after_restart = f"{restarted.runtime_5xx_last_5m} in 5 min (after the restart)"
            observe(
                self, "runtime server errors", after_restart, limit=f"restart at {RUNTIME_ERROR_THRESHOLD}"
            )
        if restarted is None and patched("channel_downtime-restart-runtime-failure-pages"):
            await page_failure(
                self,
                "restart-runtime-failed",
                what=f"restarting {runtime} of channel {channel} (by {actor})",
                state_left=f"{runtime} was not restarted and still answers webhooks of {channel} with "
                "server errors; restart it by hand",
            )
        return "restored" if restarted else "action_failed"

    # ---- expired token: a new one, approved by a human ------------------------------------------------

    async def rotate_token(self, channel: str) -> str:
        rotated = await approve_then_act(
            self,
            ApprovalRequest(
                action="rotate-token",
                recommendation=f"Generate a new access token for {channel} and store it in the vault",
                risk=f"Every reply on {channel} is refused by the provider: the token expired",
                allowed_roles=["oncall", "lead"],
                safe_default="leave the expired token in place and escalate",
            ),
            "rotate-token",
            ChannelActivities.rotate_token,
            ChannelAction(channel=channel, reason="access token expired"),
            summary=f"Rotate the access token of {channel}",
            if_failed=FailurePage(
                "channel_downtime-rotate-token-failure-pages",
                "rotate-token-failed",
                what=f"rotating the access token of {channel}",
                state_left=f"the expired token stays in place and the provider refuses every reply on "
                f"{channel}; generate and store a new token by hand",
            ),
        )
        if not rotated.approved:
            return "escalated" if rotated.timed_out else "declined"
        if rotated.result is not None:
            observe(
                self, "access token", token_text(rotated.result.token_version, rotated.result.expires_in_s)
            )
        return "restored" if rotated.done else "action_failed"

    # ---- balance spent: people pay, Stanch never does ----------------------------------------------------

    async def ask_for_top_up(self, channel: str, balance: AccountBalance) -> str:
        card = " and the card on file was refused" if balance.payment_failed else ""
        await self.notify(
            "top-up",
            channel="on-call",
            title=f"Top up the WhatsApp account of {channel}",
            text=f"The account balance is {balance.balance:.2f} {balance.currency}{card}; the provider "
            "stops delivering until it is topped up. Nothing was changed automatically.",
        )
        return "awaiting_top_up"

    # ---- provider down: watch its status, tell the customer when it is back --------------------------

    async def watch_provider(self, channel: str, customer: str) -> str:
        await self.notify(
            "provider-down",
            channel="on-call",
            title=f"WhatsApp provider down for {channel}",
            text=f"No webhook reaches {channel} and the provider reports an outage. Stanch checks its "
            f"status every {PROVIDER_POLL_EVERY.seconds // 60} minutes and tells {customer} when it is back.",
        )
        self.set_state("watching_provider", awaiting="the provider's status to be up again")
        ref = ChannelRef(channel=channel)
        for poll in range(1, PROVIDER_POLLS + 1):
            await workflow.sleep(PROVIDER_POLL_EVERY, summary=f"provider check {poll}/{PROVIDER_POLLS}")
            status = await read(ChannelActivities.provider_status, ref, summary="Provider status")
            observe(
                self,
                "provider",
                status.status if status else UNREADABLE,
                limit=f"check {poll} of {PROVIDER_POLLS}",
            )
            if status is not None and not status.down:
                self.note("note", f"provider back up after {poll} check(s)")
                await self.audit(
                    "provider-back",
                    action=f"watch the provider of {channel}",
                    outcome="up",
                    reason=f"up again at check {poll}",
                )
                await self.notify(
                    "tell-customer-back",
                    channel="customer",
                    recipient=customer,
                    title="WhatsApp is back",
                    text="WhatsApp had an outage on its side; it is working again and your customers' "
                    "messages are being answered.",
                )
                return "restored"
        await self.audit(
            "provider-still-down",
            action=f"watch the provider of {channel}",
            outcome="down",
            reason=f"still down after {PROVIDER_POLLS} checks",
        )
        await self.notify(
            "provider-escalate",
            channel="on-call",
            title=f"WhatsApp provider still down for {channel}",
            text=f"The provider has been down for {PROVIDER_POLLS * PROVIDER_POLL_EVERY.seconds // 60} "
            "minutes. Open a case with the provider and keep the customer informed.",
        )
        return "escalated"


def token_text(version: int, expires_in_s: int) -> str:
    return f"v{version} expired" if expires_in_s <= 0 else f"v{version}, expires in {expires_in_s // 3600} h"


def diagnosis(
    webhooks: WebhookEvents | None,
    balance: AccountBalance | None,
    token: TokenExpiry | None,
    provider: ProviderStatus | None,
) -> list[str]:
    """One line per check, for people; an unreadable check says so rather than passing for healthy."""
    lines = []
    if webhooks is None:
        lines.append("webhook events: unreadable")
    else:
        lines.append(
            f"{webhooks.events_last_5m} webhook events in 5 min, "
            f"{webhooks.runtime_5xx_last_5m} answered with server errors"
        )
    if balance is None:
        lines.append("balance: unreadable")
    else:
        refused = ", card refused" if balance.payment_failed else ""
        lines.append(f"balance {balance.balance:.2f} {balance.currency}{refused}")
    if token is None:
        lines.append("token: unreadable")
    elif token.expired:
        lines.append(f"token v{token.token_version} expired")
    else:
        lines.append(f"token v{token.token_version} valid for {token.expires_in_s // 3600} h")
    if provider is not None:
        lines.append(f"provider {provider.status}")
    return lines
