"""Which private key a deciding command signs with, if any: `--key` > STANCH_SIGNING_KEY >
~/.ssh/id_ed25519. Apart from stanch/ops/signer.py (which loads the key, with cryptography and the
pydantic models) so that an unsigned `stanch approve` over Temporal's HTTP API learns it signs nothing
without importing either (issue 15); signer.py re-exports everything here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

KEY_ENV = "STANCH_SIGNING_KEY"
# Where `ssh-keygen -t ed25519` puts a key by default, so an engineer's existing key signs with no flag.
DEFAULT_KEY = Path(".ssh") / "id_ed25519"


@dataclass(frozen=True)
class KeyChoice:
    path: Path
    source: str  # how the person chose it, for messages: "--key", "STANCH_SIGNING_KEY", "the default"

    @property
    def named(self) -> bool:
        """Named on purpose (flag or environment): one that cannot be loaded is an error, never unsigned."""
        return self.source != "the default"


def choose_key(flag: Path | None, environ: Mapping[str, str], home: Path) -> KeyChoice | None:
    """`--key` > `STANCH_SIGNING_KEY` > `~/.ssh/id_ed25519` if that file exists; None: nothing to sign with.

    A named key is returned whether or not it exists, so that loading it fails naming the file: a typo in
    `--key` must not quietly send an unsigned decision."""
    if flag is not None:
        return KeyChoice(flag.expanduser(), "--key")
    named = environ.get(KEY_ENV, "").strip()
    if named:
        return KeyChoice(Path(named).expanduser(), KEY_ENV)
    default = home / DEFAULT_KEY
    return KeyChoice(default, "the default") if default.exists() else None


def unsigned_notice() -> str:
    """The one line said on stderr when a decision goes out unsigned because no key was found."""
    return (
        f"stanch: no signing key (no --key, no {KEY_ENV}, no ~/{DEFAULT_KEY}): sending it unsigned; "
        "it is refused where the policy needs a signature"
    )
