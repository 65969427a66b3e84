"""Daily cockpit report: what the fleet did yesterday, what looks wrong, and what to do about it.

Not started by an alert: a Temporal Schedule (`stanch schedule apply`, also applied at worker start) runs
it once a day. It is not an incident either, so it keeps no approval gate; it does write its effects to
the audit log like every runbook.

1. Collect: tokens and tasks done/failed per agent from the platform's usage meter; incidents, escalations,
   handoffs, security incidents and failed actions over the window from the audit log (read-only).
2. Flag anomalies (thresholds in `schemas.report.AnomalyThresholds`, all overridable per run):
   - cost: tokens above 2x the agent's daily average (3x: urgent), ignoring fewer than 10,000 tokens;
   - errors: failed tasks above 20 % of the agent's tasks (50 %: urgent), ignoring fewer than 5 tasks;
   - escalations: more than 3 escalations and handoffs in the window;
   - security: any security incident in the window (urgent);
   - failed actions: any runbook action that failed, and incidents still open at the end of the window.
   The highlight is the single highest-leverage item: the first urgent anomaly, else the agent burning
   the most tokens.
3. Publish the report to the cockpit (the platform's report shelf), under the run's workflow id.
4. Notify, only when something is urgent (or the report could not be published): P1, cockpit + instant.
"""

from __future__ import annotations

from datetime import datetime

from temporalio import workflow
from temporalio.exceptions import ActivityError, is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    from activities.agents import AgentActivities
    from activities.documents import DocumentActivities
    from activities.notify import NotifyActivities
    from activities.reports import ReportActivities
    from schemas.actions import Notification
    from schemas.agents import AgentUsage, UsageQuery
    from schemas.audit import AuditEvent
    from schemas.briefs import Brief, Reading
    from schemas.documents import ReportDocument
    from schemas.report import (
        Anomaly,
        AnomalyThresholds,
        AuditSummary,
        AuditWindow,
        CockpitReport,
        Level,
        ReportRequest,
    )
    from workflows.steps.audit import write_audit_row
    from workflows.steps.patches import patched
    from workflows.steps.policies import EFFECT_RETRY, EFFECT_TIMEOUT

REPORT_WORKFLOW = "daily_cockpit_report"


@workflow.defn(name=REPORT_WORKFLOW)
class DailyCockpitReport:
    uses_roles = ("owner", "oncall")  # the worker checks [roles]

    def __init__(self) -> None:
        # Not an incident, but `stanch brief <report id>` answers too: the metrics it read, once it has them.
        self.brief: Brief | None = None

    @workflow.query(name="brief")
    def get_brief(self) -> Brief:
        if self.brief is None:  # a query can come before the run's first line
            now = workflow.now()
            return Brief(
                incident_id=workflow.info().workflow_id,
                runbook=REPORT_WORKFLOW,
                severity="P3",
                service="fleet",
                summary="Cockpit report: starting",
                started_at=now,
                last_update_at=now,
                state="collecting",
            )
        return self.brief

    @workflow.run
    async def run(self, request: ReportRequest) -> CockpitReport:
        info = workflow.info()
        end = request.window_end or workflow.now()
        start = end - request.window
        self.brief = self.get_brief().model_copy(
            update={"summary": f"Cockpit report for {start:%Y-%m-%d %H:%M} → {end:%Y-%m-%d %H:%M} UTC"}
        )

        # 1. Collect. Without both readings there is no report at all: the run fails, and says so first.
        reading = "the fleet's usage (tokens and tasks per agent)"
        try:
            usage = await workflow.execute_activity_method(
                AgentActivities.fleet_usage,
                UsageQuery(agent_ids=request.agent_ids),
                start_to_close_timeout=EFFECT_TIMEOUT,
                retry_policy=EFFECT_RETRY,
                summary="Read tokens and tasks per agent",
            )
            reading = "the audit log's incidents and escalations"
            audit = await workflow.execute_activity_method(
                ReportActivities.audit_summary,
                AuditWindow(start=start, end=end, incident_prefix=request.incident_prefix),
                start_to_close_timeout=EFFECT_TIMEOUT,
                retry_policy=EFFECT_RETRY,
                summary="Count incidents and escalations in the audit log",
            )
        except ActivityError as error:
            if not is_cancelled_exception(error) and patched("daily_cockpit_report-collect-failure-pages"):
                await self._page_collect_failure(reading, str(error.cause or error), end)
            raise

        # 2. Signals.
        anomalies = find_anomalies(usage.agents, audit, request.thresholds)
        report = CockpitReport(
            report_id=info.workflow_id,
            window_start=start,
            window_end=end,
            agents=usage.agents,
            audit=audit,
            anomalies=anomalies,
            highlight=highlight(usage.agents, anomalies),
            urgent=any(anomaly.level is Level.urgent for anomaly in anomalies),
        )
        report.markdown = render(report)
        self.brief.system_state = report_readings(report, request.thresholds, workflow.now())
        self.brief.state, self.brief.summary = "collected", f"{self.brief.summary}: {report.highlight}"
        self.brief.severity = "P1" if report.urgent else "P3"
        self.brief.recommendation = "; ".join(anomaly.action for anomaly in anomalies)
        workflow.set_current_details(report.markdown)

        # 3. Publish.
        try:
            await workflow.execute_activity_method(
                DocumentActivities.publish_report,
                ReportDocument(
                    idempotency_key=self._key("publish"),
                    report_id=report.report_id,
                    title=f"Cockpit report {end:%Y-%m-%d}",
                    markdown=report.markdown,
                    urgent=report.urgent,
                    data=report.model_dump(mode="json", exclude={"markdown"}),
                ),
                start_to_close_timeout=EFFECT_TIMEOUT,
                retry_policy=EFFECT_RETRY,
                summary="Publish the report to the cockpit",
            )
            report.published = True
            await self._audit("publish", "publish cockpit report", "done", f"{len(anomalies)} anomalies")
        except ActivityError as error:
            await self._audit("publish", "publish cockpit report", "failed", str(error.cause or error))

        # 4. Notify if urgent — or if the owner would otherwise never see today's report.
        if report.urgent or not report.published:
            urgent = [a for a in anomalies if a.level is Level.urgent]
            lines = [f"{a.subject}: {a.detail} → {a.action}" for a in urgent]
            if not report.published:
                lines.append("the report could not be published to the cockpit; read it in the Temporal UI")
            try:
                await workflow.execute_activity_method(
                    NotifyActivities.send_notification,
                    Notification(
                        idempotency_key=self._key("notify"),
                        channel="cockpit-report",
                        severity="P1",
                        title=f"Cockpit report {end:%Y-%m-%d}: needs you",
                        text="; ".join(lines),
                        incident_id=report.report_id,
                    ),
                    start_to_close_timeout=EFFECT_TIMEOUT,
                    retry_policy=EFFECT_RETRY,
                    summary="Notify the owner: urgent signals",
                )
                report.notified = True
                await self._audit("notify", "notify owner of urgent report", "done", "; ".join(lines))
            except ActivityError as error:
                await self._audit(
                    "notify", "notify owner of urgent report", "failed", str(error.cause or error)
                )
        self.brief.state = "published" if report.published else "not_published"
        return report

    async def _page_collect_failure(self, reading: str, cause: str, end: datetime) -> None:
        """Page on-call that today's report cannot be written, audit the page, and let the run fail."""
        text = (
            f"Failed: reading {reading} ({cause}). State left: no cockpit report for the day ending "
            f"{end:%Y-%m-%d %H:%M} UTC was written or published; this run fails. Fix the source, then "
            "trigger the schedule again (`temporal schedule trigger`)."
        )
        try:
            await workflow.execute_activity_method(
                NotifyActivities.send_notification,
                Notification(
                    idempotency_key=self._key("collect-failed"),
                    channel="on-call",
                    severity="P1",
                    title=f"Failed: cockpit report {end:%Y-%m-%d} could not be collected",
                    text=text,
                    incident_id=workflow.info().workflow_id,
                ),
                start_to_close_timeout=EFFECT_TIMEOUT,
                retry_policy=EFFECT_RETRY,
                summary="Page on-call: the report could not be collected",
            )
            await self._audit("collect-failed", "page on-call: report not collected", "done", text)
        except ActivityError as error:
            await self._audit(
                "collect-failed", "page on-call: report not collected", "failed", str(error.cause or error)
            )

    def _key(self, step: str) -> str:
        info = workflow.info()
        return f"{info.workflow_id}/{info.run_id}/{step}"

    async def _audit(self, step: str, action: str, outcome: str, reason: str) -> None:
        info = workflow.info()
        await write_audit_row(
            AuditEvent(
                workflow_id=info.workflow_id,
                run_id=info.run_id,
                step_key=step,
                actor="stanch",
                action=action,
                outcome=outcome,
                reason=reason,
                occurred_at=workflow.now(),
            ),
        )


# ---- pure: the signals and the text (unit-tested without a server) ------------------------------------


def find_anomalies(agents: list[AgentUsage], audit: AuditSummary, limits: AnomalyThresholds) -> list[Anomaly]:
    found: list[Anomaly] = []
    for agent in agents:
        if agent.tokens >= limits.min_tokens and agent.tokens_daily_avg > 0:
            factor = agent.tokens / agent.tokens_daily_avg
            if factor > limits.token_spike_factor:
                found.append(
                    Anomaly(
                        kind="cost",
                        subject=agent.agent_id,
                        level=Level.urgent if factor > limits.token_spike_urgent_factor else Level.watch,
                        detail=f"{agent.tokens:,} tokens, {factor:.1f}x its daily average",
                        action=f"check {agent.agent_id} for loops or oversized prompts; cap its budget",
                    )
                )
        tasks = agent.tasks_done + agent.tasks_failed
        if tasks >= limits.min_tasks and agent.failure_rate > limits.failure_rate:
            found.append(
                Anomaly(
                    kind="errors",
                    subject=agent.agent_id,
                    level=Level.urgent if agent.failure_rate > limits.failure_rate_urgent else Level.watch,
                    detail=f"{agent.tasks_failed} of {tasks} tasks failed ({agent.failure_rate:.0%})",
                    action=f"run the gold set on {agent.agent_id} and read its failed tasks",
                )
            )
    escalations = audit.escalations + audit.handoffs
    if escalations > limits.escalations:
        found.append(
            Anomaly(
                kind="escalations",
                subject="fleet",
                level=Level.watch,
                detail=f"{escalations} escalations and handoffs (more than {limits.escalations})",
                action="review which decisions keep reaching a human; widen or narrow agents' remits",
            )
        )
    if audit.security_incidents:
        found.append(
            Anomaly(
                kind="security",
                subject="fleet",
                level=Level.urgent,
                detail=f"{audit.security_incidents} security incident(s)",
                action="read the post-mortems and confirm each prevention step is scheduled",
            )
        )
    if audit.failed_actions or audit.still_open:
        found.append(
            Anomaly(
                kind="failed_actions",
                subject="runbooks",
                level=Level.watch,
                detail=f"{audit.failed_actions} failed action(s), {audit.still_open} incident(s) still open",
                action="open the incidents with failed actions and finish them by hand",
            )
        )
    return found


def report_readings(report: CockpitReport, limits: AnomalyThresholds, at: datetime) -> list[Reading]:
    """The brief's system state: each agent's tokens and failures against the thresholds, then the fleet's."""
    agent_limit = f"{limits.token_spike_factor:g}x the daily average; {limits.failure_rate:.0%} failed"
    readings = []
    for agent in report.agents:
        factor = (
            f" ({agent.tokens / agent.tokens_daily_avg:.1f}x its daily average)"
            if agent.tokens_daily_avg
            else ""
        )
        tasks = agent.tasks_done + agent.tasks_failed
        value = f"{agent.tokens:,} tokens{factor}; {agent.tasks_failed} of {tasks} tasks failed ({agent.failure_rate:.0%})"
        readings.append(Reading(name=f"agent {agent.agent_id}", value=value, limit=agent_limit, read_at=at))
    audit = report.audit
    fleet = [
        ("incidents", f"{audit.incidents} ({audit.closed} closed, {audit.still_open} open)", None),
        (
            "escalations and handoffs",
            str(audit.escalations + audit.handoffs),
            f"more than {limits.escalations}",
        ),
        ("security incidents", str(audit.security_incidents), "any"),
        ("failed actions", str(audit.failed_actions), "any"),
    ]
    readings += [Reading(name=name, value=value, limit=limit, read_at=at) for name, value, limit in fleet]
    return readings


def highlight(agents: list[AgentUsage], anomalies: list[Anomaly]) -> str:
    urgent = next((a for a in anomalies if a.level is Level.urgent), None)
    if urgent is not None:
        return f"{urgent.subject}: {urgent.detail} — {urgent.action}"
    if anomalies:
        return f"{anomalies[0].subject}: {anomalies[0].detail} — {anomalies[0].action}"
    if agents:
        biggest = max(agents, key=lambda agent: agent.tokens)
        return f"nothing abnormal; {biggest.agent_id} uses the most tokens ({biggest.tokens:,})"
    return "nothing abnormal; no agent reported usage"


def render(report: CockpitReport) -> str:
    rows = "\n".join(
        f"| {a.agent_id} | {a.tokens:,} | {a.tasks_done} | {a.tasks_failed} | {a.failure_rate:.0%} |"
        for a in report.agents
    )
    signals = "\n".join(f"- **{a.level.value}** {a.kind} · {a.subject}: {a.detail}" for a in report.anomalies)
    actions = "\n".join(f"- {a.action}" for a in report.anomalies)
    audit = report.audit
    return "\n\n".join(
        [
            f"## Cockpit report · {report.window_start:%Y-%m-%d %H:%M} → {report.window_end:%Y-%m-%d %H:%M} UTC",
            f"**Highlight:** {report.highlight}",
            "| agent | tokens | tasks done | tasks failed | failure rate |\n|---|---|---|---|---|\n" + rows
            if rows
            else "No agent reported usage.",
            f"**Incidents:** {audit.incidents} ({audit.closed} closed, {audit.still_open} open) · "
            f"**security:** {audit.security_incidents} · **escalations:** {audit.escalations} · "
            f"**handoffs:** {audit.handoffs} · **failed actions:** {audit.failed_actions}",
            "**Signals:**\n" + (signals or "- none"),
            "**Recommended actions:**\n" + (actions or "- none"),
        ]
    )
