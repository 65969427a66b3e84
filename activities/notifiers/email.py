"""Email over SMTP: plain text plus an HTML alternative (alert text escaped in both), From/To/Subject,
STARTTLS unless told otherwise.

smtplib blocks, so it runs in a thread; its socket timeout bounds each SMTP exchange, and the caller's
overall timeout bounds the whole delivery. A thread the caller gave up on may still finish sending while
the next channel is tried: a duplicate on two channels is the price of not making a page wait.
"""

from __future__ import annotations

import asyncio
import hashlib
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate

from pydantic import BaseModel, Field, SecretStr

from activities.notifiers.base import DeliveryFailed, Notifier, footer, headline
from schemas.actions import Notification
from stanch.markup import email_html, header, plain


class EmailConfig(BaseModel):
    host: str
    port: int = Field(587, ge=1, le=65535)
    starttls: bool = True
    username: str | None = None
    password: SecretStr | None = None
    from_address: str
    to: list[str] = Field(min_length=1)
    timeout: float = 5.0


def email_message(config: EmailConfig, message: Notification) -> EmailMessage:
    mail = EmailMessage()
    mail["From"] = config.from_address
    mail["To"] = ", ".join(config.to)
    mail["Subject"] = header(headline(message))
    mail["Date"] = formatdate(localtime=False)
    # Stable per notification: mail systems that dedupe on Message-ID drop a retried duplicate.
    digest = hashlib.sha256(message.delivery_key.encode()).hexdigest()[:32]
    domain = config.from_address.rpartition("@")[2] or "stanch.invalid"
    mail["Message-ID"] = f"<{digest}@{domain}>"
    # Plain part: the text as typed, controls made visible. HTML part: every piece escaped, the layout ours.
    mail.set_content(f"{plain(message.title)}\n\n{plain(message.text)}\n\n{plain(footer(message))}\n")
    mail.add_alternative(
        f"<html><body><h3>{email_html(message.title)}</h3>\n<p>{email_html(message.text)}</p>\n"
        f"<p><small>{email_html(footer(message))}</small></p></body></html>\n",
        subtype="html",
    )
    return mail


class EmailNotifier(Notifier):
    transport = "email"

    def __init__(self, name: str, config: EmailConfig) -> None:
        super().__init__(name, timeout=config.timeout)
        self._config = config

    def secrets(self) -> list[str]:
        return [self._config.password.get_secret_value()] if self._config.password else []

    async def send(self, message: Notification) -> None:
        try:
            await asyncio.to_thread(self._send_blocking, email_message(self._config, message))
        except (smtplib.SMTPException, OSError) as error:
            raise DeliveryFailed(self.scrub(f"SMTP: {type(error).__name__}: {error}")) from None

    def _send_blocking(self, mail: EmailMessage) -> None:
        config = self._config
        with smtplib.SMTP(config.host, config.port, timeout=self.timeout) as smtp:
            if config.starttls:
                smtp.starttls(context=ssl.create_default_context())
            if config.username and config.password:
                smtp.login(config.username, config.password.get_secret_value())
            smtp.send_message(mail)
