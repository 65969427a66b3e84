"""Handoffs to humans, the daily cockpit report and post-mortems: the platform's handoff desk, usage meter,
report shelf and post-mortem store over HTTP, a read-only summary of the audit log in Postgres, and the
start of a resolved incident's post-mortem workflow."""

from __future__ import annotations

from typing import Any

import httpx
from psycopg_pool import AsyncConnectionPool
from temporalio import activity
from temporalio.client import Client, WorkflowHandle
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError

from activities.heartbeat import heartbeating
from activities.http import PlatformHttp
from schemas.handoff import HandoffDocument, HandoffExecution, HandoffRecord
from schemas.learning import (
    POSTMORTEM_WORKFLOW,
    OpenPostmortem,
    PostmortemDocument,
    PostmortemOpened,
    StoredReport,
    postmortem_workflow_id,
)
from schemas.report import (
    AgentUsage,
    AuditSummary,
    AuditWindow,
    FleetUsage,
    PublishedReport,
    ReportDocument,
    UsageQuery,
)
from stanch.markup import temporal_ui_text

# Each count in one pass over the window's rows. The rules:
# - incidents: distinct workflows with a row in the window (handoff children excluded: they are counted
#   as handoffs), closed: those with their `closed` row in the window;
# - escalations: approval gates that walked to an escalation level (`gate<n>-escalate-<m>` rows);
# - handoffs: workflows that wrote a handoff document (`handoff-document`), child or alert-routed;
# - security incidents: workflows that flipped a kill switch (`kill-switch`, the security runbook's step);
# - failed actions: rows whose outcome is `failed`.
AUDIT_SUMMARY_SQL = """
SELECT
    count(DISTINCT workflow_id) FILTER (WHERE workflow_id NOT LIKE '%%-handoff-%%'),
    count(DISTINCT workflow_id) FILTER (WHERE step_key = 'closed' AND workflow_id NOT LIKE '%%-handoff-%%'),
    count(*) FILTER (WHERE step_key LIKE 'gate%%-escalate-%%'),
    count(DISTINCT workflow_id) FILTER (WHERE step_key = 'handoff-document'),
    count(DISTINCT workflow_id) FILTER (WHERE step_key = 'kill-switch'),
    count(*) FILTER (WHERE outcome = 'failed')
FROM audit_log
WHERE workflow_id LIKE %s AND occurred_at >= %s AND occurred_at < %s
"""


class ReportActivities:
    """Built once in the worker with the platform client and the audit log's pool (read here, never written)."""

    def __init__(self, client: httpx.AsyncClient, pool: AsyncConnectionPool) -> None:
        self._http = PlatformHttp(client)
        self._pool = pool

    # ---- handoffs -----------------------------------------------------------------------------------

    @activity.defn(name="handoff_store_document")
    @heartbeating
    async def store_handoff(self, document: HandoffDocument) -> HandoffRecord:
        return await self._http.effect(
            "POST",
            "/handoffs",
            key=document.idempotency_key,
            body={
                "handoff_id": document.handoff_id,
                "incident_id": document.incident_id,
                "priority": document.priority,
                "subject": document.subject,
                "markdown": document.markdown,
                "handoff": document.handoff.model_dump(mode="json"),
            },
            result=HandoffRecord,
            what=f"storing handoff {document.handoff_id}",
        )

    @activity.defn(name="handoff_execute_decision")
    @heartbeating
    async def execute_handoff(self, execution: HandoffExecution) -> HandoffRecord:
        return await self._http.effect(
            "POST",
            f"/handoffs/{execution.handoff_id}/execute",
            key=execution.idempotency_key,
            body={
                "option": execution.option,
                "decided_by": execution.decided_by,
                "comment": execution.comment,
            },
            result=HandoffRecord,
            what=f"carrying out {execution.option} for handoff {execution.handoff_id}",
        )

    # ---- the daily report ---------------------------------------------------------------------------

    @activity.defn(name="report_fleet_usage")
    @heartbeating
    async def fleet_usage(self, query: UsageQuery) -> FleetUsage:
        if not query.agent_ids:
            listed = await self._http.call("GET", "/usage", what="reading fleet usage")
            return FleetUsage(agents=[AgentUsage.model_validate(item) for item in listed])
        agents = []
        for agent_id in query.agent_ids:
            path = f"/agents/{agent_id}/usage"
            agents.append(await self._http.read(path, AgentUsage, f"reading usage of {agent_id}"))
        return FleetUsage(agents=agents)

    @activity.defn(name="report_audit_summary")
    @heartbeating
    async def audit_summary(self, window: AuditWindow) -> AuditSummary:
        # A read-only transaction: this activity may look at the audit log but never change it.
        async with self._pool.connection() as conn, conn.transaction():
            await conn.execute("SET TRANSACTION READ ONLY")
            cursor = await conn.execute(
                AUDIT_SUMMARY_SQL, (window.incident_prefix + "%", window.start, window.end)
            )
            row = await cursor.fetchone()
        if row is None:
            return AuditSummary()
        incidents, closed, escalations, handoffs, security, failed = (int(value or 0) for value in row)
        return AuditSummary(
            incidents=incidents,
            closed=closed,
            escalations=escalations,
            handoffs=handoffs,
            security_incidents=security,
            failed_actions=failed,
        )

    @activity.defn(name="report_publish")
    @heartbeating
    async def publish(self, document: ReportDocument) -> PublishedReport:
        return await self._http.effect(
            "POST",
            "/reports",
            key=document.idempotency_key,
            body={
                "report_id": document.report_id,
                "title": document.title,
                "markdown": document.markdown,
                "urgent": document.urgent,
                "data": document.data,
            },
            result=PublishedReport,
            what=f"publishing report {document.report_id}",
        )


class PostmortemActivities:
    """The post-mortem of a resolved incident: starting its workflow (workflows cannot call the client,
    this activity can) and storing its report with the platform's other post-mortems.

    Built once in the worker with the platform client, its Temporal client and the task queue the
    post-mortems run on."""

    def __init__(self, http: httpx.AsyncClient, client: Client, task_queue: str) -> None:
        self._http = PlatformHttp(http)
        self._client = client
        self._task_queue = task_queue

    @activity.defn(name="postmortem_open")
    @heartbeating
    async def open(self, request: OpenPostmortem) -> PostmortemOpened:
        """Start `postmortem-<incident id>`, once per incident run.

        A retried attempt finds the run its first attempt started (same incident run in the memo) and
        answers with it. A post-mortem of an earlier incident with the same id that is still waiting for
        its learning is left alone: this one gets an id with the incident's run in it."""
        postmortem = request.postmortem
        primary = postmortem_workflow_id(postmortem.of_incident)
        for workflow_id in (primary, f"{primary}-{postmortem.incident_run_id[:8]}"):
            try:
                handle: WorkflowHandle[Any, Any] = await self._client.start_workflow(
                    POSTMORTEM_WORKFLOW,
                    postmortem.model_copy(update={"incident_id": workflow_id}),
                    id=workflow_id,
                    task_queue=self._task_queue,
                    memo={"incident": postmortem.of_incident, "incident_run_id": postmortem.incident_run_id},
                    # Only names Stanch made, escaped: the UI renders the static summary as Markdown.
                    static_summary=temporal_ui_text(
                        f"Post-incident learning for {postmortem.of_incident}", 400
                    ),
                )
                return PostmortemOpened(workflow_id=workflow_id, run_id=handle.result_run_id or "")
            except WorkflowAlreadyStartedError:
                described = await self._client.get_workflow_handle(workflow_id).describe()
                if (await described.memo()).get("incident_run_id") == postmortem.incident_run_id:
                    return PostmortemOpened(workflow_id=workflow_id, run_id=described.run_id, replayed=True)
        raise ApplicationError(
            f"{primary} and its fallback id are both taken by other incidents' post-mortems",
            type="PostmortemIdTaken",
            non_retryable=True,
        )

    @activity.defn(name="postmortem_store_report")
    @heartbeating
    async def store_report(self, document: PostmortemDocument) -> StoredReport:
        # The platform's document store speaks its own field names; the timeline goes as readable lines
        # (as the war room's post-mortems always did) and the whole report as Markdown.
        report = document.report
        return await self._http.effect(
            "POST",
            "/postmortems",
            key=document.idempotency_key,
            body={
                "incident_id": report.incident_id,
                "subject": report.title,
                "what_happened": f"{report.severity} incident on {report.service} ({report.runbook})",
                "root_cause": report.root_cause,
                "impact": report.impact,
                "remediation": report.draft.response,
                "prevention": report.stories,
                "timeline": [
                    f"{entry.at:%Y-%m-%d %H:%M:%S} [{entry.kind}] {entry.actor}: {entry.text}"
                    for entry in report.timeline
                ],
                "markdown": report.as_markdown(),
            },
            result=StoredReport,
            what=f"storing the post-incident report of {report.incident_id}",
        )
