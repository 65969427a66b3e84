"""Signed decisions inside a workflow (issue 13): which answers need a signature, and checking one.

A decision that can destroy or undo a safety is only as trustworthy as the name in its payload, and anyone
who reaches Temporal can type a name. So the answer carries a statement signed with the approver's key,
binding it to this incident's run, this question, the verdict and the digest of what the question showed;
`stanch.signing.check_decision` checks it here, in the update validators and signal handlers, with no I/O:
the keyring is the one the incident started with (replaced only by a recorded `keys` signal), the time is
workflow time, and the nonces already accepted are this run's state. Replay reaches the same answers.

Inputs recorded before signatures existed carry the mode "optional" and no keys: an unsigned answer is
taken as it was, so their histories replay unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from schemas.signatures import GateShown, Keyring, SignatureMode, SignedDecision, ToSign, Verdict
    from stanch.signing import Expected, check_decision, fingerprint_lines, gate_digest, signer_text


class DecisionSigning:
    """One run's signature rules: its mode, its keyring, and the signed statements it has accepted."""

    def __init__(self, mode: SignatureMode, keyring: Keyring) -> None:
        self.mode = mode
        self.keyring = keyring
        self._seen: set[str] = set()

    def needed(self, *, destructive: bool) -> bool:
        return self.mode == "required" or (self.mode == "destructive" and destructive)

    def to_sign(self, gate: str, verdicts: list[Verdict], shown: GateShown, *, destructive: bool) -> ToSign:
        info = workflow.info()
        return ToSign(
            workflow_id=info.workflow_id,
            run_id=info.run_id,
            gate=gate,
            verdicts=verdicts,
            shown=shown,
            digest=gate_digest(shown),
            signature_needed=self.needed(destructive=destructive),
        )

    def refusal(
        self,
        signed: SignedDecision | None,
        *,
        gate: str,
        verdict: Verdict,
        approver: str,
        shown: GateShown,
        destructive: bool,
        claimed_digest: str | None = None,
        how_to_sign: str,
    ) -> str | None:
        """Why this answer must be refused for its signature (or its lack), or None. Pure."""
        info = workflow.info()
        expected = Expected(
            workflow_id=info.workflow_id,
            run_id=info.run_id,
            gate=gate,
            action=shown.action,
            verdict=verdict,
            approver=approver,
            digest=gate_digest(shown),
        )
        return check_decision(
            signed,
            expected=expected,
            keyring=self.keyring,
            now=workflow.now(),
            seen=self._seen,
            signature_needed=self.needed(destructive=destructive),
            claimed_digest=claimed_digest,
            how_to_sign=how_to_sign,
        )

    def stale(self, claimed_digest: str | None, shown: GateShown) -> bool:
        """An unsigned answer names the digest of something other than what the question shows now."""
        return claimed_digest is not None and claimed_digest != gate_digest(shown)

    def accept(self, signed: SignedDecision | None) -> None:
        """Remember an accepted statement, so the same signed payload sent again is refused as a replay."""
        if signed is not None:
            self._seen.add(signed.statement.nonce)

    def replace_keyring(self, keyring: Keyring) -> str:
        """Take the keys a `keys` signal brought; the timeline's sentence about what changed."""
        before, after = fingerprint_lines(self.keyring), fingerprint_lines(keyring)
        self.keyring = keyring
        added = sorted(after - before)
        removed = sorted(before - after)
        if not added and not removed:
            return "keyring re-sent; no key changed"
        parts = [f"added {', '.join(added)}"] if added else []
        parts += [f"revoked {', '.join(removed)}"] if removed else []
        return "keyring updated: " + "; ".join(parts)


def who(approver: str, signed: SignedDecision | None) -> str:
    """The approver as the timeline names them: with the key and the service that signed, if any."""
    return signer_text(signed) if signed is not None else approver


def signature_details(signed: Iterable[SignedDecision | None]) -> dict[str, str]:
    """An audit row's record of the signatures behind a decision (empty when none was signed, as in every
    row written before signatures existed)."""
    given = [item for item in signed if item is not None]
    if not given:
        return {}
    return {
        "signed_by": "; ".join(signer_text(item) for item in given),
        "digest": ", ".join(sorted({item.statement.digest for item in given})),
    }


def how_to_sign(command: str, incident: str, action: str) -> str:
    """What a refusal for a missing signature tells the person to do, from the CLI or the Temporal UI."""
    # `stanch approve` and `reject` name the action they answer (the golden rule); the others do not.
    answered = f" {action}" if command in ("approve", "reject") else ""
    return (
        f"Sign it: `stanch {command} {incident}{answered} --as <you> --key <your private key>`, or paste the output of "
        f"`stanch sign {incident} {action} --as <you>` into the Temporal UI's dialog."
    )
