"""What the daily cockpit report and the post-mortems need besides the systems: a read-only summary of the
audit log in Postgres, and the start of a resolved incident's post-mortem workflow.

Neither is a system the runbooks act on: the usage the report reads is the agent platform's
(`activities/agents/`); the report shelf, the post-mortem store and the hand-off desk are the documents
system's (`activities/documents/`)."""

from __future__ import annotations

from typing import Any

from psycopg_pool import AsyncConnectionPool
from temporalio import activity
from temporalio.client import Client, WorkflowHandle
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError

from activities.heartbeat import heartbeating
from schemas.learning import POSTMORTEM_WORKFLOW, OpenPostmortem, PostmortemOpened, postmortem_workflow_id
from schemas.report import AuditSummary, AuditWindow
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
    """Built once in the worker with the audit log's pool (read here, never written)."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

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


class PostmortemActivities:
    """The post-mortem of a resolved incident: starting its workflow (workflows cannot call the client,
    this activity can). Its report is stored by the documents system (`postmortem_store_report`).

    Built once in the worker with its Temporal client and the task queue the post-mortems run on."""

    def __init__(self, client: Client, task_queue: str) -> None:
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
