"""Which roles decide the seeds' CEO decisions, for an incident whose policy snapshot may predate them.

Pure: it reads only the incident's input, so a replay decides exactly as the recorded run did.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from schemas.incidents import IncidentPolicy

# The seeds' CEO (onboarding scope, job description and capabilities; upgrade validation; termination
# confirmation; escalation to a human). Also in stanch.policy.OWNER_ROLE, which workflow code does not import.
OWNER = "owner"


def owner_or(policy: IncidentPolicy, earlier: list[str]) -> list[str]:
    """The owner role, or the roles the runbook asked before `owner` existed when the incident's policy has
    roles but no owner (a run recorded, or still open, from that time): its approvers stay who they were."""
    if policy.roles and OWNER not in policy.roles:
        return earlier
    return [OWNER]
