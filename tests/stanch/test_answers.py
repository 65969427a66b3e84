"""stanch/ops/answers.py: the unsigned decision an approve / reject sends over the HTTP API without
pydantic is the bytes the model would send (the history records it; the workflow validates it as a
Decision). The commands themselves run against a real server in tests/stanch/test_temporal_http.py."""

from __future__ import annotations

import pytest

from schemas.approvals import Decision
from stanch.ops.answers import decision_json


@pytest.mark.parametrize(
    ("approver", "action", "comment", "approved", "text", "digest"),
    [
        ("alice", "rollback", "", True, None, "ab" * 32),
        ("bob", "send-customer-message", "seen it", False, "Wir sind dran — 🙏", None),
        ("carol", 'say "hi"\\', "line\nbreak\ttab \x07 \x1b[2J \u2028", True, "", "cd" * 32),
    ],
)
def test_an_unsigned_decision_is_the_bytes_the_model_writes(
    approver: str, action: str, comment: str, approved: bool, text: str | None, digest: str | None
) -> None:
    by_model = Decision(
        approver=approver, action=action, comment=comment, approved=approved, text=text, digest=digest
    )
    assert (
        decision_json(approver, action, comment, approved, text, digest)
        == by_model.model_dump_json().encode()
    )
