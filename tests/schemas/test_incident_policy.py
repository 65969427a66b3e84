"""The policy slice every incident carries in its input: decoded once per distinct content by a worker (issue 15,
goal 5: every parked incident holds its input for its whole life), frozen so that sharing it is safe."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import ValidationError

from schemas import incidents
from schemas.alerts import Alert
from schemas.incidents import DECODED_POLICIES_KEPT, IncidentInput, IncidentPolicy
from stanch.policy import load_policy
from tests.helpers import TEST_POLICY


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


def test_incidents_under_the_same_policy_share_one_decoded_policy_equal_to_the_original() -> None:
    policy = load_policy(TEST_POLICY).incident_policy()
    first = IncidentInput.model_validate_json(incident_json(policy, "inc-1"))
    second = IncidentInput.model_validate_json(incident_json(policy, "inc-2"))
    assert first.incident_id != second.incident_id
    assert first.policy is second.policy
    assert first.policy == policy


def test_a_different_policy_decodes_to_its_own_object() -> None:
    policy = load_policy(TEST_POLICY).incident_policy()
    stricter = policy.model_copy(update={"signatures": "required"})
    ruled = IncidentInput.model_validate_json(incident_json(policy, "inc-1")).policy
    ruled_stricter = IncidentInput.model_validate_json(incident_json(stricter, "inc-2")).policy
    assert ruled is not ruled_stricter
    assert (
        (ruled.signatures, ruled_stricter.signatures)
        == (policy.signatures, "required")
        != ("required", "required")
    )


def test_python_input_is_not_shared_and_the_decoded_policy_refuses_changes() -> None:
    policy = load_policy(TEST_POLICY).incident_policy()
    data = policy.model_dump()
    assert IncidentPolicy.model_validate(data) is not IncidentPolicy.model_validate(data)
    shared = IncidentPolicy.model_validate_json(policy.model_dump_json())
    with pytest.raises(ValidationError, match="frozen"):
        shared.signatures = "required"  # type: ignore[misc]


def test_the_worker_keeps_a_bounded_number_of_distinct_policies() -> None:
    policy = load_policy(TEST_POLICY).incident_policy()
    for minutes in range(1, DECODED_POLICIES_KEPT * 2):
        IncidentPolicy.model_validate_json(
            policy.model_copy(update={"approval_timeout": timedelta(minutes=minutes)}).model_dump_json()
        )
    assert len(incidents._decoded_policies) <= DECODED_POLICIES_KEPT
