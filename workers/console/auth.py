"""Sign-in for the console: local accounts (an Argon2id hash per person in the policy), the attempt limit,
and the CSRF token every form carries. The session itself is Starlette's signed cookie (app.py).

The sign-in does the same work whether or not the name exists (a hash is checked against a dummy), so the
answer's timing does not tell which names are people.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections import deque
from collections.abc import Callable, MutableMapping
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from stanch.policy import Policy

# The dev stack's and the tests' demo password (config/dev.toml); never trusted outside them (app.py main).
DEMO_PASSWORD = "stanch-demo"
# Failed attempts allowed per name and per client within the window, then 429 until the oldest expires.
MAX_FAILURES = 5
FAILURE_WINDOW_SECONDS = 300.0
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"

_hasher = PasswordHasher()
_DUMMY_HASH = _hasher.hash("not a password anyone has")


def check_password(policy: Policy, name: str, password: str) -> bool:
    person = policy.people.get(name)
    stored = person.password_hash if person is not None else None
    try:
        return _hasher.verify(stored or _DUMMY_HASH, password) and stored is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def demo_password_people(policy: Policy) -> list[str]:
    """The people whose console password is the public demo one."""
    found = []
    for name, person in policy.people.items():
        if person.password_hash is None:
            continue
        try:
            if _hasher.verify(person.password_hash, DEMO_PASSWORD):
                found.append(name)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            continue
    return found


def person_for_email(policy: Policy, email: str) -> str | None:
    """The person an OpenID Connect sign-in with this e-mail is: the one whose `sign_in_email` it is."""
    wanted = email.strip().lower()
    return next((name for name, person in policy.people.items() if person.sign_in_email == wanted), None)


class AttemptLimit:
    """Failed sign-ins per key (a name, a client address) in a sliding window; in memory, per process, which
    holds because the console is one process (docs/console.md: one uvicorn server, one compose container)."""

    def __init__(
        self,
        limit: int = MAX_FAILURES,
        window: float = FAILURE_WINDOW_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._limit = limit
        self._window = window
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, key: str) -> deque[float]:
        failures = self._failures.setdefault(key, deque())
        cutoff = self._clock() - self._window
        while failures and failures[0] < cutoff:
            failures.popleft()
        return failures

    def blocked(self, *keys: str) -> bool:
        return any(len(self._recent(key)) >= self._limit for key in keys)

    def failed(self, *keys: str) -> None:
        for key in keys:
            self._recent(key).append(self._clock())

    def succeeded(self, *keys: str) -> None:
        for key in keys:
            self._failures.pop(key, None)


def csrf_token(session: MutableMapping[str, Any]) -> str:
    """The session's CSRF token, made on first use; every form carries it and every POST is checked."""
    token = session.get(CSRF_FIELD)
    if not isinstance(token, str) or not token:
        token = secrets.token_urlsafe(32)
        session[CSRF_FIELD] = token
    return token


def csrf_ok(session: MutableMapping[str, Any], supplied: str | None) -> bool:
    expected = session.get(CSRF_FIELD)
    if not isinstance(expected, str) or not expected or not supplied:
        return False
    return hmac.compare_digest(expected.encode(), supplied.encode())
