"""Notify by priority: P0 → the instant group at once; P1 → cockpit + instant; P2/P3 → cockpit only.

One notification goes to every group its audience maps to (the policy's `[notify]`); within a group the
channels are tried in order, each under its own timeout, until one takes it — the others are fallbacks, and
each failure is reported in the receipt so the runbook audits it. A group where every channel failed fails
the activity (retryably): Temporal retries it, and the delivery ledger keeps groups that already got the
message from getting it again.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Collection, Mapping

import httpx
import psycopg
from psycopg_pool import AsyncConnectionPool
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.heartbeat import heartbeating
from activities.notifiers import Notifier, build_notifiers
from activities.notifiers.base import DeliveryFailed, scrub_logs
from schemas.actions import Delivery, Notification, NotificationReceipt
from schemas.severity import Severity
from stanch.metrics import WorkerMetrics
from stanch.policy import NotifyRouting, Policy, PolicyError
from stanch.settings import Settings

log = logging.getLogger("stanch.notify")

# The ledger is a guard against duplicates, not a reason to hold back a page: waiting longer than this for
# Postgres would eat the activity's time for the channels themselves.
LEDGER_TIMEOUT_SECONDS = 2.0


class DeliveryLedger:
    """Which channels already took which notification, so a retried activity does not notify twice.

    Slack, Telegram, Discord and email have no idempotency key of their own. The row is written after the
    vendor accepted the message: a crash between the two means that one channel gets it again on the
    retry (at-least-once on that channel), never that a message is silently lost. When Postgres cannot be
    reached the ledger degrades the same way: it sends rather than stays silent, and says so in the log.
    """

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    async def delivered(self, idempotency_key: str) -> set[str]:
        try:
            async with self._pool.connection(timeout=LEDGER_TIMEOUT_SECONDS) as conn:
                cursor = await conn.execute(
                    "SELECT channel FROM notification_deliveries WHERE idempotency_key = %s",
                    (idempotency_key,),
                )
                return {row[0] for row in await cursor.fetchall()}
        except psycopg.Error as error:
            log.warning("delivery ledger unreadable, a retry may notify twice: %s", error)
            return set()

    async def record(self, idempotency_key: str, channel: str) -> None:
        try:
            async with self._pool.connection(timeout=LEDGER_TIMEOUT_SECONDS) as conn:
                await conn.execute(
                    "INSERT INTO notification_deliveries (idempotency_key, channel) VALUES (%s, %s) "
                    "ON CONFLICT DO NOTHING",
                    (idempotency_key, channel),
                )
        except psycopg.Error as error:
            log.warning("delivery to %s not recorded, a retry may notify it twice: %s", channel, error)


class NotifyActivities:
    def __init__(
        self,
        notifiers: Mapping[str, Notifier],
        routing: NotifyRouting,
        ledger: DeliveryLedger,
        escalation_levels: Collection[str] = (),
        metrics: WorkerMetrics | None = None,
    ) -> None:
        self._notifiers = dict(notifiers)
        self._metrics = metrics or WorkerMetrics.noop()
        self._routing = routing
        self._ledger = ledger
        self._escalation_levels = set(escalation_levels)
        # httpx logs each request URL, and for Slack, Discord and Telegram the URL is the credential.
        scrub_logs(secret for notifier in self._notifiers.values() for secret in notifier.secrets())

    @classmethod
    def from_policy(
        cls,
        policy: Policy,
        settings: Settings,
        client: httpx.AsyncClient,
        pool: AsyncConnectionPool,
        environ: Mapping[str, str] = os.environ,
        metrics: WorkerMetrics | None = None,
    ) -> NotifyActivities:
        """Raises PolicyError (naming the key) for a policy without `[notify]` or a missing secret."""
        if policy.notify is None:
            raise PolicyError("notify: missing; the worker needs [notify] and [channels] to reach anyone")
        return cls(
            build_notifiers(policy.channels, settings, client, environ),
            policy.notify,
            DeliveryLedger(pool),
            escalation_levels=[step.name for step in policy.escalation],
            metrics=metrics,
        )

    def groups_for(self, message: Notification) -> list[str]:
        if message.escalation or message.channel in self._escalation_levels:
            return self._routing.escalation
        if message.channel == "customer":
            return self._routing.customer
        try:
            return self._routing.for_severity(Severity(message.severity))
        except ValueError:
            raise ApplicationError(
                f"unknown severity {message.severity!r}", type="NotificationMisrouted", non_retryable=True
            ) from None

    @activity.defn(name="send_notification")
    @heartbeating
    async def send_notification(self, message: Notification) -> NotificationReceipt:
        key = message.idempotency_key
        already = await self._ledger.delivered(key)
        deliveries: list[Delivery] = []
        # In this attempt: a channel in two groups is sent to once, and one that failed is not tried again.
        sent: set[str] = set()
        failed: set[str] = set()
        undelivered: list[str] = []
        for group in self.groups_for(message):
            channels = self._routing.channels_of(group)
            done = next((name for name in channels if name in already or name in sent), None)
            if done is not None:
                if done in already and done not in sent:
                    sent.add(done)
                    deliveries.append(self._delivery(done, group, delivered=True, replayed=True))
                continue
            for name in channels:
                if name in failed:
                    continue
                error = await self._try(name, message)
                if error is None:
                    await self._ledger.record(key, name)
                    sent.add(name)
                    deliveries.append(self._delivery(name, group, delivered=True))
                    break
                log.warning("notification %s: channel %s failed: %s", key, name, error)
                failed.add(name)
                self._metrics.notification_channel_failed(name)
                deliveries.append(self._delivery(name, group, delivered=False, error=error))
            else:
                undelivered.append(group)
                # Every channel of this group failed: nobody in it heard. StanchNotificationGroupFailing.
                self._metrics.notification_group_failed(group)
        if undelivered:
            errors = "; ".join(f"{d.channel}: {d.error}" for d in deliveries if not d.delivered)
            # Retryable on purpose: the next attempt skips what the ledger holds and tries these again.
            raise ApplicationError(
                f"no channel of {', '.join(undelivered)} took the {message.channel} notification ({errors})",
                type="NotificationUndelivered",
            )
        return NotificationReceipt(
            idempotency_key=key, channel=message.channel, delivered=True, deliveries=deliveries
        )

    async def _try(self, name: str, message: Notification) -> str | None:
        """None when the channel took the message, else why not — scrubbed of the channel's secrets."""
        notifier = self._notifiers[name]
        try:
            # The channel's own bound: a hung endpoint must not hang the runbook, nor starve the fallback.
            async with asyncio.timeout(notifier.timeout):
                await notifier.send(message)
        except DeliveryFailed as failure:
            return str(failure)
        except TimeoutError:
            return f"no answer within {notifier.timeout:g} s"
        except Exception as error:  # a bug in one notifier must not keep the others from paging
            return notifier.scrub(f"{type(error).__name__}: {error}")
        return None

    def _delivery(
        self, name: str, group: str, *, delivered: bool, replayed: bool = False, error: str = ""
    ) -> Delivery:
        return Delivery(
            channel=name,
            group=group,
            transport=self._notifiers[name].transport,
            delivered=delivered,
            replayed=replayed,
            error=error,
        )
