"""People's keys and signed decisions (issue 13 part 1): the statement's encoding is unambiguous, the gate
digest follows every field it covers, a signature holds only for its signer's key and its exact fields,
fingerprints are ssh-keygen's, and the policy refuses keys it cannot trust."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, generate_private_key
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.rsa import generate_private_key as generate_rsa_key
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from schemas.signatures import DecisionStatement, GateShown, Keyring
from stanch.policy import PolicyError, load_policy
from stanch.settings import REPO_ROOT
from stanch.signing import (
    STATEMENT_FIELDS,
    Expected,
    PassphraseNeeded,
    SigningKeyError,
    check_decision,
    expired,
    gate_digest,
    load_private_key,
    parse_public_key,
    sign,
    statement_bytes,
    verify,
)

DEV_KEYS = REPO_ROOT / "config" / "dev-keys"
DEMO = ("alice", "bob", "carol", "dave", "erin")
EXPIRES = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)


def public_line(person: str) -> str:
    return (DEV_KEYS / f"{person}.pub").read_text().strip()


def statement(**changes: object) -> DecisionStatement:
    fields: dict[str, object] = {
        "workflow_id": "incident-gateway-7",
        "run_id": "0b1c-run",
        "gate": "rollback",
        "action": "rollback_deploy",
        "verdict": "approve",
        "approver": "alice",
        "expires_at": EXPIRES,
        "digest": gate_digest(
            GateShown(
                action="rollback_deploy",
                recommendation="roll back to v41",
                risk="low",
                target={"service": "api"},
                required_approvers=["oncall"],
            )
        ),
        "nonce": "n-1",
    }
    return DecisionStatement.model_validate({**fields, **changes})


def openssh_private(key: object, passphrase: bytes | None = None) -> bytes:
    encryption = (
        serialization.BestAvailableEncryption(passphrase) if passphrase else serialization.NoEncryption()
    )
    return key.private_bytes(  # type: ignore[attr-defined, no-any-return]
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, encryption
    )


# ---- the statement's encoding --------------------------------------------------------------------------

TRICKY = st.sampled_from(
    [
        "",
        "\n",
        "=",
        ":",
        "1:",
        "gate=3:abc\n",
        "x\naction=y",
        "y\naction=z",
        "x",
        "z",
        "é",
        "\u2028",
        "\x00",
        "a\nb=1:c",
    ]
)
TEXT = st.one_of(TRICKY, st.text(max_size=12))


@given(st.lists(TEXT, min_size=4, max_size=4), st.lists(TEXT, min_size=4, max_size=4))
def test_two_different_statements_never_encode_the_same(left: list[str], right: list[str]) -> None:
    # gate, action, nonce and run_id vary with separators, empty values and unicode in them.
    def of(values: list[str]) -> DecisionStatement:
        return statement(gate=values[0], action=values[1], nonce=values[2] or "n", run_id=values[3] or "r")

    a, b = of(left), of(right)
    assert (statement_bytes(a) == statement_bytes(b)) == (a == b)


def test_a_separator_inside_a_field_cannot_shift_it_into_the_next() -> None:
    # Same concatenated text, split differently between two fields.
    a = statement(gate="roll", action="back\naction=1:x")
    b = statement(gate="roll\nback", action="action=1:x")
    c = statement(gate="", action="rollback")
    d = statement(gate="rollback", action="")
    # Without the lengths these two would be the same bytes: `gate=x\naction=y\naction=z\n`.
    e = statement(gate="x\naction=y", action="z")
    f = statement(gate="x", action="y\naction=z")
    g = statement(gate="x\naction=1:y", action="z")
    h = statement(gate="x", action="1:y\naction=1:z")
    assert len({statement_bytes(s) for s in (a, b, c, d, e, f, g, h)}) == 8


def test_the_encoding_is_fixed_and_every_field_is_in_it() -> None:
    encoded = statement_bytes(statement(gate="gé", nonce="n\n1"))
    assert encoded.startswith(b"stanch-decision-v1\n")
    assert b"gate=3:g\xc3\xa9\n" in encoded  # the length counts bytes, not characters
    assert b"nonce=3:n\n1\n" in encoded
    assert b"expires_at=27:2026-12-02T08:00:00.000000Z\n" in encoded
    # Decoding it back by the lengths gives every field, in the fixed order, and nothing left over.
    rest, names = encoded.removeprefix(b"stanch-decision-v1\n"), []
    while rest:
        name, rest = rest.split(b"=", 1)
        length, rest = rest.split(b":", 1)
        assert rest[int(length) : int(length) + 1] == b"\n"
        names.append(name.decode())
        rest = rest[int(length) + 1 :]
    assert tuple(names) == STATEMENT_FIELDS


def test_the_same_instant_in_another_zone_encodes_the_same_and_a_naive_time_is_refused() -> None:
    eastern = EXPIRES.astimezone(timezone(timedelta(hours=-5)))
    assert statement_bytes(statement(expires_at=eastern)) == statement_bytes(statement())
    assert statement_bytes(statement(expires_at=EXPIRES + timedelta(microseconds=1))) != statement_bytes(
        statement()
    )
    with pytest.raises(ValidationError, match="time zone"):
        statement(expires_at=datetime(2026, 12, 2, 8, 0))


def test_a_statement_with_an_unknown_verdict_or_a_malformed_digest_is_refused() -> None:
    with pytest.raises(ValidationError):
        statement(verdict="maybe")
    with pytest.raises(ValidationError):
        statement(digest="ABC")


# ---- the gate digest ------------------------------------------------------------------------------------

GATE: dict[str, object] = {
    "recommendation": "roll back support-bot-api to v41",
    "risk": "low: v41 ran for a week",
    "target": {"service": "support-bot-api", "version": "v41"},
    "required_approvers": ["oncall", "owner"],
    "action": "rollback_deploy",
}


def digest_of(gate: dict[str, object]) -> str:
    return gate_digest(GateShown.model_validate(gate))


def test_the_gate_digest_is_stable() -> None:
    # A known value: the digest must not drift between versions, or every pending signature goes stale.
    assert digest_of(GATE) == digest_of(dict(GATE))
    reordered = {**GATE, "target": {"version": "v41", "service": "support-bot-api"}}
    assert digest_of(reordered) == digest_of(GATE)
    canonical = (
        b'{"action":"rollback_deploy","recommendation":"roll back support-bot-api to v41",'
        b'"required_approvals":1,"required_approvers":["oncall","owner"],"risk":"low: v41 ran for a week",'
        b'"target":{"service":"support-bot-api","version":"v41"},"v":"stanch-gate-v1"}'
    )
    assert digest_of(GATE) == hashlib.sha256(canonical).hexdigest()
    assert digest_of(GATE) == "9ac8d6a310bca85b110ad1c389da9d8c78b7cd0be3599a80d0f9194ed899051a"
    # Non-ASCII text is escaped, so the bytes hashed do not depend on a platform's encoding.
    assert (
        digest_of({**GATE, "risk": "élevé"})
        == hashlib.sha256(canonical.replace(b"low: v41 ran for a week", b"\\u00e9lev\\u00e9")).hexdigest()
    )


@pytest.mark.parametrize(
    "change",
    [
        {"recommendation": "roll back support-bot-api to v40"},
        {"risk": "high"},
        {"target": {"service": "support-bot-api", "version": "v40"}},
        {"target": {"service": "support-bot-api"}},
        {"target": {"service": "support-bot-api", "version": "v41", "region": "eu"}},
        {"required_approvers": ["oncall"]},
        {"required_approvers": ["owner", "oncall"]},
        {"required_approvals": 2},
        {"action": "terminate_instance"},
        # Moving text between fields changes the digest: the encoding is structured, not concatenated.
        {"recommendation": "roll back support-bot-api to v41low: v41 ran for a week", "risk": ""},
    ],
)
def test_each_field_of_the_gate_changes_its_digest(change: dict[str, object]) -> None:
    assert digest_of({**GATE, **change}) != digest_of(GATE)


# ---- keys and fingerprints --------------------------------------------------------------------------------


@pytest.mark.parametrize("person", DEMO)
def test_the_fingerprint_is_what_ssh_keygen_prints(person: str) -> None:
    key = parse_public_key(public_line(person))
    assert key.comment.startswith(f"{person}@stanch-dev")
    if shutil.which("ssh-keygen"):
        printed = subprocess.run(
            ["ssh-keygen", "-lf", str(DEV_KEYS / f"{person}.pub")], capture_output=True, text=True, check=True
        ).stdout.split()[1]
        assert key.fingerprint == printed
    else:  # the vector ssh-keygen printed for alice's committed key when it was made
        vector = {"alice": "SHA256:5M/q6M8jJrnfoauX8PQqDDZxU5BHjM2UUWXFL27hIi8"}
        assert key.fingerprint == vector.get(person, key.fingerprint)


def test_the_known_fingerprint_vector_of_alices_demo_key() -> None:
    assert (
        parse_public_key(public_line("alice")).fingerprint
        == "SHA256:5M/q6M8jJrnfoauX8PQqDDZxU5BHjM2UUWXFL27hIi8"
    )


def test_a_key_of_another_type_is_refused_with_a_clear_error() -> None:
    rsa = generate_rsa_key(public_exponent=65537, key_size=2048).public_key()
    ecdsa = generate_private_key(SECP256R1()).public_key()
    for key in (rsa, ecdsa):
        line = key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
        with pytest.raises(SigningKeyError, match="Ed25519 only"):
            parse_public_key(line)
    # An Ed25519 label on another type's data is refused too.
    rsa_blob = rsa.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).split()[1]
    with pytest.raises(SigningKeyError):
        parse_public_key("ssh-ed25519 " + rsa_blob.decode())
    with pytest.raises(SigningKeyError, match="not an OpenSSH public key line"):
        parse_public_key("AAAAC3NzaC1lZDI1NTE5")
    with pytest.raises(SigningKeyError, match="not a valid"):
        parse_public_key("ssh-ed25519 not-base64!")


def test_a_private_key_of_another_type_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "id_ecdsa"
    path.write_bytes(openssh_private(generate_private_key(SECP256R1())))
    with pytest.raises(SigningKeyError, match="not Ed25519"):
        load_private_key(path)


def test_an_encrypted_key_asks_for_its_passphrase_and_opens_with_it(tmp_path: Path) -> None:
    path = tmp_path / "id_ed25519"
    if shutil.which("ssh-keygen"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "s3cret", "-f", str(path)], check=True)
    else:
        path.write_bytes(openssh_private(Ed25519PrivateKey.generate(), b"s3cret"))
    with pytest.raises(PassphraseNeeded, match="encrypted: give its passphrase"):
        load_private_key(path)
    with pytest.raises(SigningKeyError, match="wrong passphrase"):
        load_private_key(path, "guess")
    key = load_private_key(path, "s3cret")
    signed = sign(statement(), key)
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    assert verify(signed, [public.decode()]).ok


def test_a_missing_key_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(SigningKeyError, match="cannot read the signing key"):
        load_private_key(tmp_path / "nothing")


# ---- sign and verify ------------------------------------------------------------------------------------


@pytest.mark.parametrize("person", DEMO)
def test_a_demo_persons_signature_verifies_against_their_public_key(person: str) -> None:
    key = load_private_key(DEV_KEYS / person)
    signed = sign(statement(approver=person), key)
    result = verify(signed, [public_line(person)])
    assert result.ok and result.reason is None
    assert result.key == parse_public_key(public_line(person)).fingerprint == signed.key
    # Deterministic (Ed25519): the same statement signs the same, as replay needs.
    assert sign(statement(approver=person), key) == signed


def test_bobs_key_claiming_alice_is_refused() -> None:
    signed = sign(statement(approver="alice"), load_private_key(DEV_KEYS / "bob"))
    everyone = {person: [public_line(person)] for person in DEMO}
    result = verify(signed, everyone["alice"], everyone)
    assert not result.ok and result.reason == "key_of_another_person"
    assert "bob's, not alice's" in result.detail
    # Without the others' keys it is still refused, as an unknown key.
    assert verify(signed, everyone["alice"]).reason == "unknown_key"


def test_bob_claiming_alices_fingerprint_is_a_bad_signature() -> None:
    signed = sign(statement(approver="alice"), load_private_key(DEV_KEYS / "bob"))
    forged = signed.model_copy(update={"key": parse_public_key(public_line("alice")).fingerprint})
    assert verify(forged, [public_line("alice")]).reason == "bad_signature"


@pytest.mark.parametrize(
    "change",
    [
        {"workflow_id": "incident-other"},
        {"run_id": "another-run"},
        {"gate": "terminate"},
        {"action": "terminate_instance"},
        {"verdict": "reject"},
        {"approver": "alice2"},
        {"expires_at": EXPIRES + timedelta(hours=1)},
        {"digest": "0" * 64},
        {"nonce": "n-2"},
    ],
)
def test_a_tampered_field_is_refused(change: dict[str, object]) -> None:
    signed = sign(statement(), load_private_key(DEV_KEYS / "alice"))
    tampered = signed.model_copy(update={"statement": signed.statement.model_copy(update=change)})
    result = verify(tampered, [public_line("alice")])
    assert not result.ok and result.reason == "bad_signature"


def test_a_signature_that_is_not_base64_is_malformed() -> None:
    signed = sign(statement(), load_private_key(DEV_KEYS / "alice"))
    assert (
        verify(signed.model_copy(update={"signature": "***"}), [public_line("alice")]).reason == "malformed"
    )


def test_expiry_is_checked_against_the_time_given() -> None:
    assert not expired(statement(), EXPIRES - timedelta(seconds=1))
    assert expired(statement(), EXPIRES)
    assert expired(statement(), EXPIRES + timedelta(minutes=5))


# ---- a trusted service signing for a person (§6) ----------------------------------------------------------

CONSOLE = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"the console's test key").digest())
CONSOLE_LINE = (
    CONSOLE.public_key()
    .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    .decode()
)
WITH_CONSOLE = Keyring(
    people={person: [public_line(person)] for person in ("alice", "bob")},
    services={"console": [CONSOLE_LINE]},
)


def refusal_of(fields: DecisionStatement, key: Ed25519PrivateKey) -> str | None:
    """check_decision's answer to `fields` signed with `key`, sent as exactly what the incident expects."""
    expected = Expected(
        workflow_id=fields.workflow_id,
        run_id=fields.run_id,
        gate=fields.gate,
        action=fields.action,
        verdict=fields.verdict,
        approver=fields.approver,
        digest=fields.digest,
    )
    return check_decision(
        sign(fields, key),
        expected=expected,
        keyring=WITH_CONSOLE,
        now=EXPIRES - timedelta(minutes=1),
        seen=set(),
        signature_needed=True,
    )


def test_the_console_signing_for_alice_via_console_is_accepted() -> None:
    assert refusal_of(statement(via="console"), CONSOLE) is None


def test_the_consoles_key_claiming_alice_without_via_is_refused_and_says_why() -> None:
    refusal = refusal_of(statement(), CONSOLE)
    assert refusal is not None and refusal.startswith("signature refused (unknown_key)")
    assert "the service console's" in refusal and "via = 'console'" in refusal


def test_alices_own_key_on_a_statement_via_console_is_refused_as_not_the_consoles() -> None:
    refusal = refusal_of(statement(via="console"), load_private_key(DEV_KEYS / "alice"))
    assert refusal is not None and refusal.startswith("signature refused (unknown_key)")
    # The old sentence said the key was not one of alice's, although it is: it names the console now.
    assert "not one of console's keys" in refusal and "not one of alice's" not in refusal


def test_a_service_the_policy_does_not_trust_or_a_person_it_does_not_know_is_refused() -> None:
    untrusted = refusal_of(statement(via="kiosk"), CONSOLE)
    assert untrusted is not None and "'kiosk' is not a service the policy trusts" in untrusted
    stranger = refusal_of(statement(via="console", approver="mallory"), CONSOLE)
    assert stranger is not None and "'mallory', who is not a person in the policy" in stranger


# ---- keys in the policy -----------------------------------------------------------------------------------


def write_policy(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.toml"
    path.write_text(text)
    return path


def test_the_dev_policy_gives_the_demo_people_their_demo_keys() -> None:
    policy = load_policy(REPO_ROOT / "config" / "dev.toml")
    for person in DEMO:
        assert policy.people[person].keys == [public_line(person)]
        assert policy.people[person].demo
        assert policy.people[person].instant  # merged with the channels of config/stanch.toml
    assert set(policy.people) == set(
        DEMO
    )  # everyone can sign in the tour, the owners a termination needs too
    # The production-shaped policy ships no key, demo or otherwise.
    assert not any(
        person.keys for person in load_policy(REPO_ROOT / "config" / "stanch.toml").people.values()
    )


def test_the_policy_loads_a_persons_keys(tmp_path: Path) -> None:
    policy = load_policy(
        write_policy(
            tmp_path, f'[people.alice]\nkeys = ["{public_line("alice")}", "{public_line("carol")}"]\n'
        )
    )
    assert policy.people["alice"].fingerprints() == [
        parse_public_key(public_line("alice")).fingerprint,
        parse_public_key(public_line("carol")).fingerprint,
    ]


@pytest.mark.parametrize(
    ("text", "error"),
    [
        (
            '[people.alice]\nkeys = ["ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ alice"]\n',
            r"people\.alice\.keys: .*key 1: key type 'ssh-rsa' is not accepted",
        ),
        ('[people.alice]\nkeys = ["ssh-ed25519 AAAA"]\n', r"people\.alice\.keys: .*key 1: not a valid"),
        (
            f'[people.alice]\nkeys = ["{public_line("alice")}", "{public_line("alice")}"]\n',
            r"people\.alice\.keys: .*key 2: SHA256:\S+ is listed twice",
        ),
        (
            f'[people.alice]\nkeys = ["{public_line("alice")}"]\n[people.bob]\nkeys = ["{public_line("alice")}"]\n',
            r"people\.bob\.keys: key SHA256:\S+ is already alice's",
        ),
        (
            "[people.alice]\ndemo = true\n",
            r"people\.alice: .*demo = true marks the person's keys, and there are none",
        ),
    ],
)
def test_the_policy_refuses_keys_it_cannot_trust(tmp_path: Path, text: str, error: str) -> None:
    with pytest.raises(PolicyError, match=error):
        load_policy(write_policy(tmp_path, text))
