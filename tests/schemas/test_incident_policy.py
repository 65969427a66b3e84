"""The policy slice every incident carries in its input: decoded once per distinct content by a worker (issue 15,
goal 5: every parked incident holds its input for its whole life), frozen so that sharing it is safe."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from schemas import incidents
from schemas.alerts import Alert
from schemas.incidents import DECODED_POLICIES_KEPT, IncidentInput, IncidentPolicy


def incident_json(policy: IncidentPolicy, incident_id: str) -> str:
    """An incident's input as the worker receives it: JSON, the policy one field of it."""
    return IncidentInput(
        incident_id=incident_id,
        runbook="agent_emergency_stop",
        severity="P1",
        service="support-bot",
        summary="agent hallucinating",
        alert=Alert(source="generic", name="AgentHallucination", fingerprint="fp-1"),
        target={"agent_id": "agent-1"},
        policy=policy,
    ).model_dump_json()


def test_incidents_under_the_same_policy_share_one_decoded_policy_equal_to_the_original(policy: Any) -> None:
    ruling = policy.incident_policy()
    first = IncidentInput.model_validate_json(incident_json(ruling, "inc-1"))
    second = IncidentInput.model_validate_json(incident_json(ruling, "inc-2"))
    assert first.incident_id != second.incident_id
    assert first.policy is second.policy
    assert first.policy == ruling


def test_a_different_policy_decodes_to_its_own_object(policy: Any) -> None:
    ruling = policy.incident_policy()
    assert ruling.signatures != "required"
    stricter = ruling.model_copy(update={"signatures": "required"})
    ruled = IncidentInput.model_validate_json(incident_json(ruling, "inc-1")).policy
    ruled_stricter = IncidentInput.model_validate_json(incident_json(stricter, "inc-2")).policy
    assert ruled is not ruled_stricter
    assert (ruled.signatures, ruled_stricter.signatures) == (ruling.signatures, "required")


def test_python_input_is_not_shared_and_the_decoded_policy_refuses_changes(policy: Any) -> None:
    ruling = policy.incident_policy()
    data = ruling.model_dump()
    assert IncidentPolicy.model_validate(data) is not IncidentPolicy.model_validate(data)
    shared = IncidentPolicy.model_validate_json(ruling.model_dump_json())
    with pytest.raises(ValidationError, match="frozen"):
        shared.signatures = "required"  # type: ignore[misc]


def test_the_worker_keeps_a_bounded_number_of_distinct_policies(policy: Any) -> None:
    ruling = policy.incident_policy()
    for minutes in range(1, DECODED_POLICIES_KEPT * 2):
        IncidentPolicy.model_validate_json(
            ruling.model_copy(update={"approval_timeout": timedelta(minutes=minutes)}).model_dump_json()
        )
    assert len(incidents._decoded_policies) == DECODED_POLICIES_KEPT
