"""Demo keys are trusted only where they belong: by processes the dev stack or the tests started.

config/dev.toml gives the demo people (alice, bob, carol) key pairs committed under config/dev-keys/, so the
README's tour can sign with `--key config/dev-keys/alice`. Their private halves are public: a production
process that trusted them would let anyone sign as alice. So a process whose policy holds a demo key
(`demo = true`) refuses to start, in one line, unless STANCH_TRUST_DEMO_KEYS=1 says the dev stack or the
tests started it. `stanch dev` sets it for every child it starts and tests/conftest.py for the tests;
nothing else does, and an operator never should.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

from stanch.policy import Policy

TRUST_DEMO_KEYS = "STANCH_TRUST_DEMO_KEYS"


def demo_keys_trusted(environ: Mapping[str, str] | None = None) -> bool:
    # Exactly "1": a variable left at "0" or "" by a template must not trust what it was meant to refuse.
    return (os.environ if environ is None else environ).get(TRUST_DEMO_KEYS) == "1"


def _names(signers: list[str]) -> str:
    return signers[0] if len(signers) == 1 else f"{', '.join(signers[:-1])} and {signers[-1]}"


DEV_STACK_FIX = "run `stanch dev`"


def demo_keys_refusal(
    policy: Policy, path: Path, environ: Mapping[str, str] | None = None, dev_fix: str = DEV_STACK_FIX
) -> str | None:
    """Why a process on this policy must not start (one line), or None when it holds no demo key or the dev
    stack or the tests started it. `dev_fix`: what to do instead in dev."""
    signers = policy.demo_signers()
    if not signers or demo_keys_trusted(environ):
        return None
    return (
        f"policy file {path}: {_names(signers)} sign with demo keys (demo = true; their private halves are "
        "public in config/dev-keys/), which only `stanch dev` and the tests may trust: give each their own "
        f"key under [people.<name>] keys (ssh-keygen -t ed25519) and remove demo = true, or {dev_fix}"
    )


def refuse_demo_keys_or_exit(policy: Policy, path: Path) -> None:
    """At start-up, before anything connects: stop in one line if the policy holds demo keys outside the
    dev stack and the tests."""
    refusal = demo_keys_refusal(policy, path)
    if refusal:
        print(f"stanch: {refusal}", file=sys.stderr)
        raise SystemExit(2)
