"""Optional payload encryption: AES-256-GCM over every payload before it reaches Temporal.

Alert contents, approvals and results are in every workflow's history; with `STANCH_PAYLOAD_KEY` set, the
Temporal server (and whoever can read its database) stores ciphertext only. Workers, the intake, the CLI
and the codec server (for the Temporal UI) hold the key; the server never does.

The wire shape follows Temporal's encryption sample, so its tooling recognises it: the encrypted payload
has `encoding: binary/encrypted`, an `encryption-key-id` naming the key, and as data a 12-byte nonce
followed by the AES-GCM ciphertext of the original payload's protobuf serialisation.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from google.protobuf.message import Message
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

from stanch.settings import Settings

# The client and the pydantic converter are imported where they are used: `stanch brief` / `approve` over
# the HTTP API (stanch/ops/temporal_http.py) encrypt with EncryptionCodec and must not load the client.
if TYPE_CHECKING:
    from temporalio.client import WorkflowHistory
    from temporalio.converter import DataConverter

ENCODING = b"binary/encrypted"
KEY_ID_METADATA = "encryption-key-id"
NONCE_BYTES = 12
KEY_BYTES = 32


class PayloadKeyError(ValueError):
    pass


def decode_key(encoded: str) -> bytes:
    """`STANCH_PAYLOAD_KEY` is base64 of exactly 32 bytes (AES-256); anything else is refused, not padded."""
    try:
        key = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise PayloadKeyError("must be base64 (e.g. `openssl rand -base64 32`)") from None
    if len(key) != KEY_BYTES:
        raise PayloadKeyError(f"must decode to {KEY_BYTES} bytes, not {len(key)}")
    return key


def key_id(key: bytes) -> str:
    # A fingerprint, not the key: it tells which key encrypted a payload once keys are rotated.
    return hashlib.sha256(key).hexdigest()[:16]


class EncryptionCodec(PayloadCodec):
    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)
        self.key_id = key_id(key)

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [
            Payload(
                metadata={"encoding": ENCODING, KEY_ID_METADATA: self.key_id.encode()},
                data=self._encrypt(payload.SerializeToString()),
            )
            for payload in payloads
        ]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        decoded: list[Payload] = []
        for payload in payloads:
            # Payloads written before the key was set stay readable: they pass through unchanged.
            if payload.metadata.get("encoding") != ENCODING:
                decoded.append(payload)
                continue
            found = payload.metadata.get(KEY_ID_METADATA, b"").decode()
            if found != self.key_id:
                raise ValueError(
                    f"payload encrypted with key {found!r}, this process has key {self.key_id!r}"
                )
            decoded.append(Payload.FromString(self._decrypt(payload.data)))
        return decoded

    def _encrypt(self, data: bytes) -> bytes:
        # A fresh random nonce per payload: with GCM, reusing one under the same key leaks plaintext.
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, data, None)

    def _decrypt(self, data: bytes) -> bytes:
        return self._aead.decrypt(data[:NONCE_BYTES], data[NONCE_BYTES:], None)


def codec_from_settings(settings: Settings) -> EncryptionCodec | None:
    if settings.payload_key is None:
        return None
    return EncryptionCodec(decode_key(settings.payload_key.get_secret_value()))


def data_converter(settings: Settings) -> DataConverter:
    """pydantic's converter (convention 2), plus the encryption codec when a key is set."""
    from temporalio.contrib.pydantic import pydantic_data_converter

    codec = codec_from_settings(settings)
    if codec is None:
        return pydantic_data_converter
    return dataclasses.replace(pydantic_data_converter, payload_codec=codec)


async def decoded_history(history: WorkflowHistory, codec: PayloadCodec) -> WorkflowHistory:
    """A copy of a history whose every payload went through the codec, for readers that decode payloads
    themselves (the audit timeline, the history cross-check). Payloads never encrypted pass unchanged."""
    from temporalio.api.history.v1 import HistoryEvent
    from temporalio.client import WorkflowHistory

    events = []
    for event in history.events:
        copy = HistoryEvent()
        copy.CopyFrom(event)
        await _decode_payloads_in(copy, codec)
        events.append(copy)
    return WorkflowHistory(history.workflow_id, events)


async def _decode_payloads_in(message: Message, codec: PayloadCodec) -> None:
    for field, value in message.ListFields():
        if field.message_type is None:
            continue
        if field.message_type.GetOptions().map_entry:
            entries = list(value.values())
            targets = entries if entries and isinstance(entries[0], Message) else []
        elif field.is_repeated:
            targets = list(value)
        else:
            targets = [value]
        for target in targets:
            if isinstance(target, Payload):
                [plain] = await codec.decode([target])
                target.CopyFrom(plain)
            else:
                await _decode_payloads_in(target, codec)
