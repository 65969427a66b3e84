"""People's keys and signed decisions (issue 13): OpenSSH Ed25519 keys, the canonical bytes of a decision
statement, the digest of what a gate showed, signing and verifying.

Everything here but `load_private_key` is a pure function of its arguments (no clock, no I/O, no
randomness: Ed25519 signatures are deterministic), so the workflow can verify a decision in its validator
and replay reaches the same answer. Expiry is the caller's: `expired(statement, workflow.now())`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from schemas.signatures import DecisionStatement, SignedDecision, Verification

KEY_TYPE = "ssh-ed25519"
# Domain separation: these bytes can never be mistaken for another protocol's message, or for a gate
# digest's input, and a later layout gets a new version line instead of a silent change of meaning.
STATEMENT_PREFIX = b"stanch-decision-v1\n"
GATE_DIGEST_VERSION = "stanch-gate-v1"
# The order of the signed fields; never reorder (old signatures would stop verifying).
STATEMENT_FIELDS = (
    "workflow_id",
    "run_id",
    "gate",
    "action",
    "verdict",
    "approver",
    "expires_at",
    "digest",
    "nonce",
)


class SigningKeyError(ValueError):
    """A key that cannot be used: not Ed25519, not OpenSSH, unreadable. The message says which and why."""


class PassphraseNeeded(SigningKeyError):
    """The private key is encrypted and no passphrase was given: ask the person for it and try again."""


@dataclass(frozen=True)
class PublicKey:
    key: Ed25519PublicKey
    fingerprint: str
    comment: str


def fingerprint_of_blob(blob: bytes) -> str:
    """What `ssh-keygen -lf` prints: SHA-256 of the key's wire blob, base64 without padding."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def parse_public_key(line: str) -> PublicKey:
    """One line of an OpenSSH public key file (`ssh-ed25519 AAAA… comment`); any other type is refused."""
    parts = line.strip().split(maxsplit=2)
    if len(parts) < 2:
        raise SigningKeyError(
            f"not an OpenSSH public key line (want `{KEY_TYPE} AAAA… comment`): {line[:40]!r}"
        )
    if parts[0] != KEY_TYPE:
        raise SigningKeyError(
            f"key type {parts[0]!r} is not accepted: Stanch signs with Ed25519 only "
            f"(make one with `ssh-keygen -t ed25519`)"
        )
    try:
        key = serialization.load_ssh_public_key(f"{parts[0]} {parts[1]}".encode())
    except (ValueError, UnsupportedAlgorithm) as error:
        raise SigningKeyError(f"not a valid {KEY_TYPE} key: {error}") from None
    if not isinstance(key, Ed25519PublicKey):  # the blob names its own type; trust it, not the prefix
        raise SigningKeyError(f"the key's data is not Ed25519 although the line says {KEY_TYPE}")
    return PublicKey(key=key, fingerprint=fingerprint(key), comment=parts[2] if len(parts) > 2 else "")


def fingerprint(key: Ed25519PublicKey) -> str:
    # The re-encoded line is canonical whatever the input's spacing or comment.
    encoded = key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return fingerprint_of_blob(base64.b64decode(encoded.split()[1]))


def load_private_key(path: Path, passphrase: str | bytes | None = None) -> Ed25519PrivateKey:
    """A private key file in OpenSSH format (what `ssh-keygen -t ed25519` writes), for the CLI."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise SigningKeyError(f"cannot read the signing key {path}: {error.strerror or error}") from None
    password = passphrase.encode() if isinstance(passphrase, str) else passphrase
    try:
        key = serialization.load_ssh_private_key(data, password=password or None)
    except TypeError:
        # cryptography says "password-protected, but password was not given" as a TypeError.
        raise PassphraseNeeded(f"the signing key {path} is encrypted: give its passphrase") from None
    except (ValueError, UnsupportedAlgorithm) as error:
        wrong = " (wrong passphrase?)" if password else ""
        raise SigningKeyError(f"cannot load the signing key {path}{wrong}: {error}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(
            f"the signing key {path} is not Ed25519 (make one with `ssh-keygen -t ed25519`)"
        )
    return key


def _field(name: str, value: str) -> bytes:
    # Length-prefixed in bytes: a value holding "\n" or "name=" cannot end its field early or begin another.
    data = value.encode("utf-8", "surrogatepass")
    return name.encode() + b"=" + str(len(data)).encode() + b":" + data + b"\n"


def _utc_text(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def statement_bytes(statement: DecisionStatement) -> bytes:
    """The canonical, unambiguous bytes a decision signature covers: two different statements never encode
    the same, whatever their fields hold."""
    values = statement.model_dump(mode="python")
    values["expires_at"] = _utc_text(statement.expires_at)
    return STATEMENT_PREFIX + b"".join(_field(name, str(values[name])) for name in STATEMENT_FIELDS)


def gate_digest(
    recommendation: str, risk: str, target: Mapping[str, str], required_approvers: Sequence[str], action: str
) -> str:
    """Hex SHA-256 of what a gate shows, over its structured fields (never over rendered text, whose
    escaping or layout may change while the meaning does not). Canonical JSON: sorted keys, no whitespace,
    ASCII only, so the same fields give the same digest on every machine and Python version."""
    document = {
        "v": GATE_DIGEST_VERSION,
        "action": action,
        "recommendation": recommendation,
        "required_approvers": list(required_approvers),
        "risk": risk,
        "target": dict(target),
    }
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def sign(statement: DecisionStatement, private_key: Ed25519PrivateKey) -> SignedDecision:
    signature = private_key.sign(statement_bytes(statement))
    return SignedDecision(
        statement=statement,
        signature=base64.b64encode(signature).decode(),
        key=fingerprint(private_key.public_key()),
    )


def _keys(lines: Sequence[str]) -> dict[str, PublicKey]:
    keys: dict[str, PublicKey] = {}
    for line in lines:
        try:
            key = parse_public_key(line)
        except SigningKeyError:
            continue  # the policy validated its keys at load; a bad line here trusts nothing
        keys[key.fingerprint] = key
    return keys


def verify(
    signed: SignedDecision,
    keys_of_person: Sequence[str],
    everyone: Mapping[str, Sequence[str]] | None = None,
) -> Verification:
    """Whether `signed` was signed by one of `keys_of_person` (the approver's public key lines). `everyone`
    (person → key lines) only sharpens the refusal of a key that belongs to someone else."""
    approver = signed.statement.approver
    try:
        signature = base64.b64decode(signed.signature, validate=True)
    except (binascii.Error, ValueError):
        return Verification(
            ok=False, reason="malformed", detail="the signature is not base64", key=signed.key
        )
    key = _keys(keys_of_person).get(signed.key)
    if key is None:
        owner = next(
            (
                name
                for name, lines in (everyone or {}).items()
                if name != approver and signed.key in _keys(lines)
            ),
            None,
        )
        if owner is not None:
            return Verification(
                ok=False,
                reason="key_of_another_person",
                detail=f"key {signed.key} is {owner}'s, not {approver}'s: sign as yourself",
                key=signed.key,
            )
        return Verification(
            ok=False,
            reason="unknown_key",
            detail=f"key {signed.key} is not one of {approver}'s keys in the policy",
            key=signed.key,
        )
    try:
        key.key.verify(signature, statement_bytes(signed.statement))
    except InvalidSignature:
        return Verification(
            ok=False,
            reason="bad_signature",
            detail="the signature does not match the statement (altered, or signed over other fields)",
            key=signed.key,
        )
    return Verification(ok=True, key=signed.key)


def expired(statement: DecisionStatement, now: datetime) -> bool:
    """`now`: the workflow's time (workflow.now()), never the machine's clock, so replay agrees."""
    return now >= statement.expires_at
