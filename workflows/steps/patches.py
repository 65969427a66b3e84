"""Where a run parts from runs recorded before a change: `patched(id)`, with one marker for the old ones.

Every `workflow.patched` call that a run takes for the first time records a marker, and the SDK upserts the
`TemporalChangeVersion` search attribute with it: two history events and one visibility write per change,
in every incident. An agent emergency stop took five of them (the shared ladder, resolve, the audit queue,
the batches, StanchAwaiting), five of its ~80 events' worth of server work each, on every incident, for
changes every new run takes anyway (issue 15: fewer history events per step).

So a run started from now on records **one** marker, `CHANGES_TO_2026_12_PATCH`, at its first call of
`patched` with an id of `SHIPPED_TO_2026_12`; every such id is then in force without a marker of its own.
A run recorded before has no such marker: on replay the umbrella answers False (the SDK memoizes that for
the run), so each id is decided by its own marker, as it was recorded — and a run that was in flight when
its worker was upgraded goes on that way, taking each old change as it did before (its own marker, once).

`SHIPPED_TO_2026_12` is closed. An id added to it later would be in force in runs recorded with the
umbrella but before that change, so their replays would take the new branch: a new change gets an id of
its own and is simply not in the set (`patched` then is `workflow.patched`).
"""

from __future__ import annotations

from temporalio import workflow

CHANGES_TO_2026_12_PATCH = "every-change-shipped-to-2026-12-in-one-marker"

# Every `workflow.patched` id the runbooks had when the umbrella came in (2026-12-04). Never add to it.
SHIPPED_TO_2026_12 = frozenset(
    {
        # the incident's own steps (workflows/steps/)
        "audit-queue-writes-rows-in-batches",
        "audit-rows-drain-through-a-queue",
        "audit-who-opened-an-incident-by-hand",
        "customer-messages-reviewed-beside-the-runbook",
        "escalation-never-ends-in-silence",
        "gate-publishes-stanch-awaiting",
        "incident-publishes-stanch-escalation-level",
        "one-escalation-level-per-incident-with-response-targets",
        "resolve-stands-down-every-runbook",
        "resolved-incident-opens-a-postmortem",
        # changes to one runbook
        "agent_termination-cleanup-asks-the-guardrail",
        "gateway-restart-is-destructive-for-the-kill-switch",
        "kill-switch-answers-before-its-audit-row",
        "number_banned-reads-number-quality-on-open",
        "number_banned-verdict-counts-as-a-response",
        "rollback-failure-tells-oncall",
        "rollback-migrate-down-asks-the-guardrail",
        "security_incident-engages-the-kill-switch",
        "war_room-learning-in-postmortem-workflow",
        "zombie_gateway-restart-asks-the-guardrail",
        # a failed effect pages on-call (workflows/steps/failures.py)
        "agent_onboarding-activate-failure-pages",
        "agent_termination-cleanup-failure-pages",
        "agent_upgrade-identify-changes-failure-pages",
        "channel_downtime-restart-runtime-failure-pages",
        "channel_downtime-rotate-token-failure-pages",
        "daily_cockpit_report-collect-failure-pages",
        "escalation_to_human-carry-out-failure-pages",
        "number_banned-provision-number-failure-pages",
        "resource_pressure-approved-block-spawns-failure-pages",
        "resource_pressure-block-spawns-failure-pages",
        "rollback-code-rollback-failure-pages",
        "rollback-find-config-failure-pages",
        "rollback-find-deploy-failure-pages",
        "rollback-find-migration-failure-pages",
        "rollback-migrate-down-failure-pages",
        "rollback-revert-config-failure-pages",
        "security_incident-post-mortem-failure-pages",
        "template_rejected-resubmit-failure-pages",
        "war_room-contain-flag-failure-pages",
        "war_room-contain-rollback-failure-pages",
        "war_room-postmortem-failure-pages",
        "war_room-sprint-story-failure-pages",
        "zombie_gateway-safe-restart-failure-pages",
    }
)


def patched(patch_id: str) -> bool:
    """`workflow.patched(patch_id)`, except that a run started since the umbrella records one marker for
    every id of `SHIPPED_TO_2026_12`, the first time it asks for one of them."""
    if patch_id in SHIPPED_TO_2026_12 and workflow.patched(CHANGES_TO_2026_12_PATCH):
        return True
    return workflow.patched(patch_id)
