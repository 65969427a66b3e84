"""Notifications. A webhook receiver sees each message once: the idempotency key travels with it."""

from __future__ import annotations

import httpx
from temporalio import activity

from activities.errors import raise_for_status
from schemas.actions import Notification, NotificationReceipt


class NotifyActivities:
    def __init__(self, client: httpx.AsyncClient, webhook_url: str) -> None:
        self._client = client
        self._webhook_url = webhook_url

    @activity.defn(name="send_notification")
    async def send_notification(self, message: Notification) -> NotificationReceipt:
        response = await self._client.post(
            self._webhook_url,
            json=message.model_dump(exclude={"idempotency_key"}),
            headers={"Idempotency-Key": message.idempotency_key},
        )
        raise_for_status(response, f"notification to {message.channel}")
        return NotificationReceipt(
            idempotency_key=message.idempotency_key,
            channel=message.channel,
            delivered=True,
            status_code=response.status_code,
        )
