"""Opening the post-mortem of a resolved incident (seed 003: mark it resolved, then the learning).

`IncidentWorkflow.finish()` calls `open_postmortem` once: when an incident closes `resolved` at P0 or P1,
a separate workflow `postmortem-<incident id>` (workflows/postmortem.py) asks for the learning, reminds,
files the preventive stories and stores the report. The incident hands it its brief and timeline (a closed
workflow answers queries only by replaying), and links it from its own brief before it closes, so
`stanch brief <incident>` still says where the learning happens after the incident is gone.

It is started by an activity (`postmortem_open`), not as a child: the post-mortem outlives the incident by
two days and has no parent to report to, and a start through the client is idempotent on retry (the
activity finds the run its earlier attempt started). A runbook that knows more than its timeline (the war
room's own post-mortem draft) calls `open_postmortem` itself before `finish()` with its `draft`; the call in
`finish()` then finds the link and does nothing.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from temporalio import workflow
from temporalio.exceptions import ActivityError, is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    from activities.reports import PostmortemActivities
    from schemas.briefs import PostmortemLink, TimelineEntry
    from schemas.incidents import IncidentInput
    from schemas.learning import (
        POSTMORTEM_WORKFLOW,
        OpenPostmortem,
        PostmortemDraft,
        PostmortemInput,
        report_address,
    )
    from schemas.severity import Severity
    from workflows.steps.failures import page_failure
    from workflows.steps.patches import patched
    from workflows.steps.policies import EFFECT_RETRY, EFFECT_TIMEOUT

if TYPE_CHECKING:  # incident.py imports this module
    from workflows.steps.incident import IncidentWorkflow

# Runs recorded before closed without a post-mortem; the marker is set where a resolved P0/P1 incident
# (or a war room) starts its post-mortem, just before it closes.
POSTMORTEM_PATCH = "resolved-incident-opens-a-postmortem"

POSTMORTEM_SEVERITIES = frozenset({Severity.P0, Severity.P1})
# Not incidents of their own: the post-mortem itself, the war room's hotfix child (its room's post-mortem
# covers it) and the watch on the monitoring pipeline (resolving it ends a watch, not an outage).
NOT_LEARNED_FROM = frozenset({POSTMORTEM_WORKFLOW, "hotfix_cycle", "dead_mans_switch"})


def needs_postmortem(
    *,
    runbook: str,
    severity: Severity,
    final_state: str,
    workflow_id: str,
    parent_id: str | None,
    severities: frozenset[Severity] = POSTMORTEM_SEVERITIES,
) -> bool:
    """Whether closing this way asks for a post-incident learning.

    A child whose id extends its parent's (`<parent>-hotfix`, `<parent>-handoff-<n>`) is a part of its
    parent's incident, whose own post-mortem covers it; a runbook a triage handed over is an incident of
    its own (its id does not extend the triage's), and gets one."""
    if final_state != "resolved" or severity not in severities or runbook in NOT_LEARNED_FROM:
        return False
    return parent_id is None or not workflow_id.startswith(f"{parent_id}-")


def plain_draft(
    incident: IncidentInput,
    *,
    timeline: list[TimelineEntry],
    opened_at: datetime,
    resolved_at: datetime,
    resolved_by: str | None,
    note: str,
) -> PostmortemDraft:
    """What any runbook can say from its timeline alone: how long, what it did, who resolved it."""
    minutes = max(0, int((resolved_at - opened_at).total_seconds() // 60))
    actions = [entry for entry in timeline if entry.kind in ("action", "decision")]
    return PostmortemDraft(
        root_cause=f"Not established by the {incident.runbook} runbook; the learning says what failed and why.",
        impact=f"{incident.service} affected for {minutes} min from detection to resolution "
        f"({incident.severity.value}: {incident.summary}).",
        response=f"{len(actions)} actions and decisions; resolved by {resolved_by or 'unknown'}"
        f"{f' ({note})' if note else ''}.",
        prevention=[
            f"Find and fix the root cause of: {incident.summary}",
            f"Update alerts and dashboards for {incident.service} to catch this earlier",
        ],
    )


async def open_postmortem(
    incident: IncidentWorkflow,
    *,
    final_state: str,
    draft: PostmortemDraft | None = None,
    severities: frozenset[Severity] = POSTMORTEM_SEVERITIES,
) -> PostmortemLink | None:
    """Start the post-mortem of an incident closing `final_state`, once; link it from the brief.

    None when this close asks for none (or the run was recorded before post-mortems existed). A start
    that fails pages on-call: nobody would be asked for the learning, and no story would be filed."""
    if incident.brief.postmortem is not None:
        return incident.brief.postmortem  # opened already, by the runbook with its own draft
    info = workflow.info()
    if not needs_postmortem(
        runbook=incident.incident.runbook,
        severity=incident.incident.severity,
        final_state=final_state,
        workflow_id=info.workflow_id,
        parent_id=info.parent.workflow_id if info.parent else None,
        severities=severities,
    ):
        return None
    if not patched(POSTMORTEM_PATCH):
        return None
    source = incident.incident
    resolution = incident.resolution
    resolved_at = workflow.now()
    timeline = list(incident.timeline.entries)
    request = OpenPostmortem(
        postmortem=PostmortemInput(
            incident_id=POSTMORTEM_WORKFLOW,  # the activity sets the id it starts it under
            runbook=POSTMORTEM_WORKFLOW,
            severity=source.severity,
            service=source.service,
            summary=source.summary,
            alert=source.alert,
            target=source.target,
            policy=source.policy,
            of_incident=info.workflow_id,
            incident_runbook=source.runbook,
            incident_run_id=info.run_id,
            incident_brief=incident.brief,
            incident_timeline=timeline,
            resolved_by=resolution.by if resolution else None,
            resolution_note=resolution.note if resolution else "",
            resolved_at=resolved_at,
            draft=draft
            or plain_draft(
                source,
                timeline=timeline,
                opened_at=incident.brief.started_at,
                resolved_at=resolved_at,
                resolved_by=resolution.by if resolution else None,
                note=resolution.note if resolution else "",
            ),
        )
    )
    try:
        opened = await workflow.execute_activity_method(
            PostmortemActivities.open,
            request,
            start_to_close_timeout=EFFECT_TIMEOUT,
            retry_policy=EFFECT_RETRY,
            summary=f"Open the post-mortem of {info.workflow_id}",
        )
    except ActivityError as error:
        if is_cancelled_exception(error):
            raise
        incident.last_failure = str(error.cause or error)
        incident.note("action", f"opening the post-mortem failed: {incident.last_failure}")
        await page_failure(
            incident,
            "postmortem-open-failed",
            what=f"opening the post-mortem of {info.workflow_id}",
            state_left="the incident is resolved, but nobody is asked for its learning and no preventive "
            "story will be filed; write the post-incident report and the stories by hand",
        )
        return None
    link = PostmortemLink(workflow_id=opened.workflow_id, report=report_address(info.workflow_id))
    incident.brief.postmortem = link
    incident.note("action", f"post-mortem {opened.workflow_id} opened: learning wanted within 24 h")
    incident.publish_brief()
    return link
