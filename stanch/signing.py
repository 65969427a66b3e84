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
from collections.abc import Container, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from schemas.signatures import (
    DecisionStatement,
    GateShown,
    Keyring,
    SignedDecision,
    ToSign,
    Verdict,
    Verification,
)

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
    "via",
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


def gate_digest(shown: GateShown) -> str:
    """Hex SHA-256 of what a gate shows, over its structured fields (never over rendered text, whose
    escaping or layout may change while the meaning does not). Canonical JSON: sorted keys, no whitespace,
    ASCII only, so the same fields give the same digest on every machine and Python version."""
    document = {"v": GATE_DIGEST_VERSION, **shown.model_dump(mode="json")}
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def resolve_shown(incident_id: str, target: Mapping[str, str], pending: GateShown | None) -> GateShown:
    """What `resolve` is about: the incident, and the question it would withdraw (its action and risk), so
    a signed resolve cannot be carried over to a moment when it would cancel something else."""
    return GateShown(
        action="resolve",
        recommendation=f"resolve {incident_id}"
        + (f" and withdraw the question on {pending.action}" if pending else ""),
        risk=pending.risk if pending else "",
        target=dict(target),
    )


def handover_shown(recommendation: str, runbook: str, target: Mapping[str, str]) -> GateShown:
    """What `run_runbook` on a triage incident is about: the runbook, and the target the person typed."""
    return GateShown(action=runbook, recommendation=recommendation, target=dict(target))


def kill_switch_shown(subsystem: str, current: str, new: str) -> GateShown:
    """What a kill-switch change is about: the subsystem and the move from its current mode."""
    return GateShown(
        action=f"kill switch {new}",
        recommendation=f"set the kill switch of {subsystem} from {current} to {new}",
        target={"subsystem": subsystem, "from": current, "to": new},
    )


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


@dataclass(frozen=True)
class Expected:
    """What the receiving incident expects a decision to be about, taken from its own state."""

    workflow_id: str
    run_id: str
    gate: str
    action: str
    verdict: Verdict
    approver: str
    digest: str


def person_of(keyring: Keyring, signed: SignedDecision) -> Verification:
    """Whether `signed` holds for the approver it names under `keyring`: their own key, or a trusted
    service's key asserting a person of the policy (`via`). The signature alone: what it was signed for is
    `check_decision`'s to compare; `stanch audit verify --history` uses this at each recorded message."""
    statement = signed.statement
    if statement.via:
        service_keys = keyring.services.get(statement.via)
        if service_keys is None:
            return Verification(
                ok=False,
                reason="unknown_key",
                detail=f"{statement.via!r} is not a service the policy trusts to sign for people",
                key=signed.key,
            )
        verification = verify(signed, service_keys)
        if verification.reason == "unknown_key":
            # verify() names the approver; here the key had to be the service's (a person's own key, say).
            return verification.model_copy(
                update={
                    "detail": f"key {signed.key} is not one of {statement.via}'s keys: a statement via "
                    f"{statement.via} is signed with that service's key (sign as yourself without via)"
                }
            )
        if verification.ok and statement.approver not in keyring.people:
            return Verification(
                ok=False,
                reason="unknown_key",
                detail=f"{statement.via} signed for {statement.approver!r}, who is not a person in the policy",
                key=signed.key,
            )
        return verification
    verification = verify(signed, keyring.people.get(statement.approver, []), keyring.people)
    service = next((name for name, lines in keyring.services.items() if signed.key in _keys(lines)), None)
    if verification.reason == "unknown_key" and service is not None:
        # A service's key speaks for a person only where the statement says so (via), never silently.
        return verification.model_copy(
            update={
                "detail": f"key {signed.key} is the service {service}'s, and the statement names no service: "
                f"a service signing for {statement.approver} says so (via = {service!r})"
            }
        )
    return verification


def check_decision(
    signed: SignedDecision | None,
    *,
    expected: Expected,
    keyring: Keyring,
    now: datetime,
    seen: Container[str],
    signature_needed: bool,
    claimed_digest: str | None = None,
    how_to_sign: str = "",
) -> str | None:
    """Why a decision must be refused, or None. Pure and deterministic: the workflow calls it in its update
    validators and signal handlers with `now = workflow.now()` and the nonces it has accepted (`seen`).

    The signature is checked before anything it covers, so a forged payload is refused as forged whatever
    its fields say; then what it was signed for must be what the incident asks now."""
    if signed is None:
        if claimed_digest is not None and claimed_digest != expected.digest:
            return "stale: what you read has changed since (another digest); read the brief again"
        if signature_needed:
            return f"{expected.action!r} needs a signed decision. {how_to_sign}".strip()
        return None
    statement = signed.statement
    verification = person_of(keyring, signed)
    if not verification.ok:
        return f"signature refused ({verification.reason}): {verification.detail}"
    if statement.approver != expected.approver:
        return f"signed by {statement.approver}, sent as {expected.approver}: sign as yourself"
    if (statement.workflow_id, statement.run_id) != (expected.workflow_id, expected.run_id):
        return f"signed for {statement.workflow_id} (run {statement.run_id}), not this incident's run"
    if statement.verdict != expected.verdict:
        return f"signed to {statement.verdict}, sent to {expected.verdict}"
    if statement.gate != expected.gate or statement.digest != expected.digest:
        return (
            f"stale: signed for {statement.gate} as it read then; the question now differs "
            f"(read the brief again and sign what it shows)"
        )
    if statement.action != expected.action:
        return f"signed for {statement.action!r}; the pending action is {expected.action!r}"
    if expired(statement, now):
        return f"the signature expired at {_utc_text(statement.expires_at)}; sign again"
    if statement.nonce in seen:
        return "this signed decision was already used once (a replay); sign a new one"
    return None


def signer_text(signed: SignedDecision) -> str:
    """For the timeline: who signed, and with which key."""
    statement = signed.statement
    via = f", via {statement.via}" if statement.via else ""
    return f"{statement.approver}{via} (signed, key {signed.key})"


DEFAULT_TTL = timedelta(minutes=5)


def statement_for(
    to_sign: ToSign,
    *,
    verdict: Verdict,
    approver: str,
    now: datetime,
    nonce: str,
    ttl: timedelta = DEFAULT_TTL,
    via: str = "",
) -> DecisionStatement:
    """The statement a client signs for one of the decisions a brief lists (`ToSign`)."""
    if verdict not in to_sign.verdicts:
        raise ValueError(f"{to_sign.gate} takes {', '.join(to_sign.verdicts)}, not {verdict}")
    return DecisionStatement(
        workflow_id=to_sign.workflow_id,
        run_id=to_sign.run_id,
        gate=to_sign.gate,
        action=to_sign.shown.action,
        verdict=verdict,
        approver=approver,
        expires_at=now + ttl,
        digest=to_sign.digest,
        nonce=nonce,
        via=via,
    )


def fingerprint_lines(keyring: Keyring) -> set[str]:
    """Each key of a keyring as `<owner> <fingerprint>` (services as `service <name>`), to say what changed."""
    owned = [(name, lines) for name, lines in keyring.people.items()]
    owned += [(f"service {name}", lines) for name, lines in keyring.services.items()]
    return {f"{owner} {fingerprint}" for owner, lines in owned for fingerprint in _keys(lines)}


def _load_openssh_support() -> None:
    """cryptography's Rust core imports its OpenSSH helpers (a Python module) the first time a key is read or
    written in OpenSSH form. Inside the workflow sandbox that first import loads a second copy of the Rust
    extension and fails with "SystemError: ... bad argument to internal function": in the validator or the
    signal handler checking a signed decision, in any process that had not used an OpenSSH key outside the
    sandbox before (a worker whose own policy holds no keys, `stanch audit replay` in a fresh shell). So it
    happens here, once: workflows import this module passed through, outside the sandbox. A fixed key; no
    I/O, no randomness."""
    key = Ed25519PrivateKey.from_private_bytes(bytes(32))
    line = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    serialization.load_ssh_public_key(line)


_load_openssh_support()
