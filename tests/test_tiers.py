"""The fast tier stays fast: every test that needs the real stack is in the `e2e` tier, whatever its folder.

`make test-fast` deselects `e2e`; tests/conftest.py marks tests/e2e/ and every user of the `stack` fixture.
A test elsewhere that starts a DevStack or a `stanch worker` process itself would slip through the
marker, so the sources outside tests/e2e/ are read for that too.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

TESTS = Path(__file__).parent
E2E = TESTS / "e2e"
# What starts real-stack processes from a test: the dev stack, or a worker process of the test's own.
STARTS_PROCESSES = re.compile(r"\bDevStack\(|\"-m\",\s*\"stanch\",\s*\"worker\"|\"stanch\",\s*\"worker\"\]")


def test_every_test_of_the_real_stack_is_marked_e2e(request: pytest.FixtureRequest) -> None:
    collected = request.session.items
    real_stack = [
        item
        for item in collected
        if item.path.is_relative_to(E2E) or "stack" in getattr(item, "fixturenames", ())
    ]
    unmarked = [item.nodeid for item in real_stack if item.get_closest_marker("e2e") is None]
    assert not unmarked, f"real-stack tests outside the e2e tier: {unmarked}"
    if request.config.option.markexpr.startswith("not e2e"):
        assert not real_stack, "the fast tier collected real-stack tests"


def test_no_test_outside_e2e_starts_a_dev_stack_or_a_worker_process() -> None:
    offenders = [
        str(path.relative_to(TESTS))
        for path in TESTS.rglob("test_*.py")
        if not path.is_relative_to(E2E) and STARTS_PROCESSES.search(path.read_text(encoding="utf-8"))
    ]
    assert not offenders, f"move these under tests/e2e/ (they start real-stack processes): {offenders}"
