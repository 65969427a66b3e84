"""Notify by priority: P0 → instant at once; P1 → cockpit + instant; P2/P3 → cockpit only.

A runbook names an audience. One that is a role — "on-call" is the role `oncall`, "cockpit-report" the
`owner`, an escalation level its `notify` people and roles — reaches each of the role's people on their own
channels of the kinds the priority picks (`[notify.kinds]`): alice's instant channels, bob's, and so on,
each person's copy saying whom it is for and on which kind. A kind on which nobody in the role can be
reached falls back to the priority's `[notify]` groups (the escalation groups for a level), and the receipt
says so: never silence. Any other audience ("customer", or one naming no role) goes to its groups as before.

Within a person's kind or a group, channels are tried in order, each under its own timeout, until one takes
it — the others are fallbacks, and each failure is reported in the receipt so the runbook audits it. A
person's kind or a group where every channel failed fails the activity (retryably): Temporal retries it,
and the delivery ledger keeps those who already got the message from getting it again.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import httpx
import psycopg
from psycopg_pool import AsyncConnectionPool
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.heartbeat import heartbeating
from activities.notifiers import Notifier, build_notifiers
from activities.notifiers.base import DeliveryFailed, scrub_logs
from schemas.actions import Delivery, Notification, NotificationReceipt
from schemas.incidents import ChannelKind, PersonChannels
from schemas.severity import Severity
from stanch.metrics import WorkerMetrics
from stanch.policy import AUDIENCE_ROLES, NotifyRouting, Policy, PolicyError
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


@dataclass
class Audience:
    """Who a notification is for: people (from a role or an escalation level), else groups only."""

    people: list[str]
    # Paged when `people` is empty, or for each kind on which none of them has a channel.
    groups: list[str]
    name: str = ""  # the role or level the people came from, for the receipt's words


@dataclass
class Attempt:
    """One run of the activity: what the ledger already held, what was sent and what failed in it."""

    already: set[str]
    sent: set[str] = field(default_factory=set)  # ledger entries: a channel, or person/kind/channel
    failed: set[str] = field(default_factory=set)  # channels that failed in this attempt
    deliveries: list[Delivery] = field(default_factory=list)
    undelivered: list[str] = field(default_factory=list)  # groups, or person/kind, that nobody took


class NotifyActivities:
    def __init__(
        self,
        notifiers: Mapping[str, Notifier],
        routing: NotifyRouting,
        ledger: DeliveryLedger,
        escalation_levels: Mapping[str, Sequence[str]] | None = None,
        metrics: WorkerMetrics | None = None,
        people: Mapping[str, PersonChannels] | None = None,
        roles: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        self._notifiers = dict(notifiers)
        self._metrics = metrics or WorkerMetrics.noop()
        self._routing = routing
        self._ledger = ledger
        # Level name → its `notify` entries (people or roles); role → its people; person → channels.
        self._levels = {name: list(notify) for name, notify in (escalation_levels or {}).items()}
        self._people = dict(people or {})
        self._roles = {name: list(members) for name, members in (roles or {}).items()}
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
            escalation_levels={step.name: step.notify for step in policy.escalation},
            metrics=metrics,
            people={name: person.channels() for name, person in policy.people.items()},
            roles=policy.role_people(),
        )

    def _severity(self, message: Notification) -> Severity:
        try:
            return Severity(message.severity)
        except ValueError:
            raise ApplicationError(
                f"unknown severity {message.severity!r}", type="NotificationMisrouted", non_retryable=True
            ) from None

    def groups_for(self, message: Notification) -> list[str]:
        """The `[notify]` groups of the audience: all it hears when it names no person, else the fallback."""
        if message.escalation or message.channel in self._levels:
            return self._routing.escalation
        if message.channel == "customer":
            return self._routing.customer
        return self._routing.for_severity(self._severity(message))

    def audience_of(self, message: Notification) -> Audience:
        groups = self.groups_for(message)
        if message.channel == "customer":
            return Audience(people=[], groups=groups)
        if message.escalation or message.channel in self._levels:
            # A level renamed since the incident opened is not found: its message goes to the groups.
            names = self._levels.get(message.channel, [])
            return Audience(people=self._people_of(names), groups=groups, name=message.channel)
        role = AUDIENCE_ROLES.get(message.channel, message.channel)
        if role in self._roles:
            return Audience(people=self._people_of([role]), groups=groups, name=role)
        return Audience(people=[], groups=groups)

    def _people_of(self, names: Sequence[str]) -> list[str]:
        found: list[str] = []
        for name in names:
            for person in self._roles.get(name, [name]):
                if person not in found:
                    found.append(person)
        return found

    @activity.defn(name="send_notification")
    @heartbeating
    async def send_notification(self, message: Notification) -> NotificationReceipt:
        key = message.idempotency_key
        audience = self.audience_of(message)
        attempt = Attempt(already=await self._ledger.delivered(key))
        groups, fallback = audience.groups, ""
        if audience.people:
            unreached = await self._page_people(message, audience, attempt)
            groups = audience.groups if unreached else []
            if unreached:
                fallback = (
                    f"nobody in {audience.name} can be reached on {', '.join(unreached)}; "
                    f"paged the {', '.join(audience.groups)} group(s) instead"
                )
                log.warning("notification %s: %s", key, fallback)
        for group in groups:
            await self._page_group(message, group, attempt)
        if attempt.undelivered:
            errors = "; ".join(f"{d.channel}: {d.error}" for d in attempt.deliveries if not d.delivered)
            # Retryable on purpose: the next attempt skips what the ledger holds and tries these again.
            raise ApplicationError(
                f"no channel of {', '.join(attempt.undelivered)} took the {message.channel} notification "
                f"({errors})",
                type="NotificationUndelivered",
            )
        return NotificationReceipt(
            idempotency_key=key,
            channel=message.channel,
            delivered=True,
            deliveries=attempt.deliveries,
            fallback=fallback,
        )

    async def _page_people(self, message: Notification, audience: Audience, attempt: Attempt) -> list[str]:
        """Each person on each kind the priority picks; returns the kinds on which nobody has a channel."""
        unreached: list[str] = []
        for kind in self._routing.kinds.for_severity(self._severity(message)):
            reachable = [p for p in audience.people if self._channels_of(p, kind)]
            if not reachable:
                unreached.append(kind.value)
                continue
            for person in reachable:
                copy = message.model_copy(update={"person": person, "kind": kind.value})
                await self._try_in_order(
                    copy, self._channels_of(person, kind), f"{person}/{kind.value}", attempt, person=person
                )
        return unreached

    def _channels_of(self, person: str, kind: ChannelKind) -> list[str]:
        channels = self._people.get(person)
        return channels.of_kind(kind) if channels else []

    async def _page_group(self, message: Notification, group: str, attempt: Attempt) -> None:
        await self._try_in_order(message, self._routing.channels_of(group), group, attempt)

    async def _try_in_order(
        self,
        message: Notification,
        channels: list[str],
        group: str,
        attempt: Attempt,
        *,
        person: str | None = None,
    ) -> None:
        """Until one channel takes it. A group's ledger entry is the channel (as before people existed); a
        person's is person/kind/channel, so one shared channel carries each person's copy once."""
        prefix = f"{group}/" if person else ""
        done = next(
            (n for n in channels if prefix + n in attempt.already or prefix + n in attempt.sent), None
        )
        if done is not None:
            if prefix + done in attempt.already and prefix + done not in attempt.sent:
                attempt.sent.add(prefix + done)
                attempt.deliveries.append(self._delivery(done, group, message, delivered=True, replayed=True))
            return
        for name in channels:
            if name in attempt.failed:
                continue
            error = await self._try(name, message)
            if error is None:
                await self._ledger.record(message.idempotency_key, prefix + name)
                attempt.sent.add(prefix + name)
                attempt.deliveries.append(self._delivery(name, group, message, delivered=True))
                return
            log.warning("notification %s: channel %s failed: %s", message.delivery_key, name, error)
            attempt.failed.add(name)
            self._metrics.notification_channel_failed(name)
            attempt.deliveries.append(self._delivery(name, group, message, delivered=False, error=error))
        attempt.undelivered.append(group)
        # Every channel here failed: nobody in this group (or this person on this kind) heard.
        # StanchNotificationGroupFailing.
        self._metrics.notification_group_failed(group)

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
        self,
        name: str,
        group: str,
        message: Notification,
        *,
        delivered: bool,
        replayed: bool = False,
        error: str = "",
    ) -> Delivery:
        return Delivery(
            channel=name,
            group=group,
            person=message.person,
            kind=message.kind,
            transport=self._notifiers[name].transport,
            delivered=delivered,
            replayed=replayed,
            error=error,
        )
