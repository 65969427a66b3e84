"""Number banned: the provider flagged the channel's phone number for low quality, or banned it.

Stop the bleeding first: every template and marketing send on the channel stops at once, automatically,
because each one sent now only makes the provider's case stronger. Then appeal through the provider's
business support and wait for its verdict. The verdict comes back as a support case a person reads, not as
an API a machine can poll, so that person sends it in: the `verdict` signal,
`{"by": "alice", "outcome": "reinstated" | "final", "note": "..."}`. On-call is reminded every day without
one; after three days the incident escalates with the sends still stopped.

A final ban means an emergency migration to a new number, which only a human approves; nobody answering
leaves the channel without a new number (never provisions one by default). Last, whatever the verdict, the
day's sends are analysed for spam reports and rejected templates pushed anyway, and the findings go into
the brief: they decide when template sends may start again, which stays a human's call.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.channel import ChannelActivities
    from schemas.approvals import ApprovalRequest
    from schemas.channel import AppealVerdict, ChannelAction, ChannelRef, SendReport, TemplateSendsChange
    from schemas.incidents import IncidentInput, IncidentResult
    from schemas.targets import ChannelTarget
    from workflows.steps.approve_then_act import FailurePage, approve_then_act
    from workflows.steps.channel import read
    from workflows.steps.incident import IncidentWorkflow
    from workflows.steps.patches import patched
    from workflows.steps.system_state import NUMBER_QUALITY_ON_OPEN_PATCH, UNREADABLE, observe

VERDICT_REMINDER_EVERY = timedelta(hours=24)
VERDICT_REMINDERS = 3  # three days without a verdict: the appeal itself needs chasing by a person
# Spam reports per thousand template sends above which the sends themselves are the likely cause.
SPAM_PER_THOUSAND = 5.0

# Runs recorded before counted only an acknowledge, a decision or a resolve as the response to the incident.
VERDICT_IS_A_RESPONSE_PATCH = "number_banned-verdict-counts-as-a-response"


@workflow.defn(name="number_banned")
class NumberBanned(IncidentWorkflow):
    target_model = ChannelTarget  # what it acts on: schemas/targets.py
    uses_roles = ("oncall", "lead")  # the worker checks [roles]
    verdict: AppealVerdict | None = None

    @workflow.run
    async def run(self, incident: IncidentInput) -> IncidentResult:
        channel = incident.target["channel"]
        self.open(
            recommendation=f"Keep template sends on {channel} stopped and appeal the ban",
            risk_if_no_action=f"Every template sent from {channel} deepens the ban; customers cannot be reached",
        )

        # 1. Stop every template and marketing send, at once and without asking.
        stopped = await self.act(
            "stop-template-sends",
            ChannelActivities.set_template_sends,
            TemplateSendsChange(
                channel=channel,
                enabled=False,
                reason=incident.summary,
            ),
            summary=f"Stop template sends on {channel}",
        )
        if stopped is not None:
            observe(self, "template sends", "on" if stopped.template_sends_enabled else "stopped")
        if stopped is None:
            await self.notify(
                "stop-failed",
                channel="on-call",
                title=f"Could not stop template sends on {channel}",
                text=f"{incident.summary}. Stopping template sends failed; stop every campaign by hand.",
            )
            return await self.finish("action_failed")
        self.set_state("contained")
        if patched(NUMBER_QUALITY_ON_OPEN_PATCH):
            self.observe_report(
                await read(ChannelActivities.send_report, ChannelRef(channel=channel), summary="Send report")
            )

        # 2. Appeal through the provider's business support.
        appeal = await self.act(
            "open-appeal",
            ChannelActivities.open_appeal,
            ChannelAction(channel=channel, reason=incident.summary),
            summary=f"Open an appeal with the provider for {channel}",
        )
        if appeal is not None:
            observe(self, "number", appeal.number)
            observe(self, "appeal", f"{appeal.appeal_id} {appeal.status}")
        case = f"appeal {appeal.appeal_id}" if appeal else "an appeal (opening it failed: open it by hand)"
        await self.notify(
            "tell-oncall",
            channel="on-call",
            title=f"Number of {channel} banned: template sends stopped",
            text=f"{incident.summary}. Template sends on {channel} are stopped and Stanch opened {case}. "
            "When the provider answers, send the `verdict` signal "
            '({"by": "<you>", "outcome": "reinstated" or "final", "note": "..."}).',
        )

        # 3. Wait for the provider's verdict, then act on it; 4. analyse the sends whatever happened.
        outcome = await self.follow_appeal(channel, case)
        await self.analyse(channel)
        return await self.finish(outcome)

    @workflow.signal(name="verdict")
    def on_verdict(self, verdict: AppealVerdict) -> None:
        if self.verdict is not None:
            self.note("decision", f"verdict from {verdict.by} ignored: one was already given", verdict.by)
            return
        self.verdict = verdict
        self.note(
            "decision", f"provider verdict from {verdict.by}: {verdict.outcome} {verdict.note}", verdict.by
        )
        if patched(VERDICT_IS_A_RESPONSE_PATCH):
            # The person relaying the verdict is on the incident: its response target is met, not missed.
            self.ladder.respond(verdict.by)

    async def follow_appeal(self, channel: str, case: str) -> str:
        self.set_state("awaiting_verdict", awaiting=f"the provider's verdict on {case} (signal `verdict`)")
        for day in range(1, VERDICT_REMINDERS + 1):
            try:
                await workflow.wait_condition(
                    lambda: self.verdict is not None,
                    timeout=VERDICT_REMINDER_EVERY,
                    timeout_summary=f"remind on-call if no verdict (day {day})",
                )
                break
            except TimeoutError:
                await self.notify(
                    f"verdict-reminder-{day}",
                    channel="on-call",
                    title=f"Still no verdict on the ban of {channel}",
                    text=f"Day {day} without the provider's answer to {case}. Template sends stay stopped.",
                )
        verdict = self.verdict
        if verdict is None:
            await self.audit(
                "verdict-timeout",
                action=f"wait for the verdict on {case}",
                outcome="no verdict",
                reason=f"no verdict after {VERDICT_REMINDERS} days; template sends stay stopped",
            )
            return "escalated"
        await self.audit(
            "verdict",
            action=f"verdict on {case}",
            outcome=verdict.outcome,
            actor=verdict.by,
            reason=verdict.note,
        )
        if verdict.outcome == "reinstated":
            return "reinstated"

        # A final ban: migrate to a new number, only with a human's approval.
        provisioned = await approve_then_act(
            self,
            ApprovalRequest(
                action="provision-number",
                recommendation=f"Provision a new number for {channel} and migrate to it (the ban is final)",
                risk=f"{channel} has no working number: customers cannot reach you on WhatsApp",
                allowed_roles=["oncall", "lead"],
                safe_default="provision no new number; the channel stays without WhatsApp until someone decides",
            ),
            "provision-number",
            ChannelActivities.provision_number,
            ChannelAction(
                channel=channel, reason=f"final ban: {verdict.note}" if verdict.note else "final ban"
            ),
            summary=f"Provision a new number for {channel}",
            if_failed=FailurePage(
                "number_banned-provision-number-failure-pages",
                "provision-number-failed",
                what=f"provisioning a new number for {channel}",
                state_left=f"{channel} keeps only its banned number, so customers cannot reach it on "
                "WhatsApp; template sends stay stopped. Provision a number by hand",
            ),
        )
        if not provisioned.approved:
            return "escalated" if provisioned.timed_out else "contained"
        number = provisioned.result
        if number is None:
            return "action_failed"
        observe(self, "number", f"{number.number} (replaces banned {number.previous_number})")
        await self.notify(
            "tell-customer-number",
            channel="customer",
            recipient=self.incident.target.get("customer", "the customer"),
            title="Your WhatsApp number changed",
            text=f"WhatsApp permanently banned {number.previous_number}. Your channel now answers on "
            f"{number.number}; marketing messages stay paused while we review what caused the ban.",
        )
        return "number_replaced"

    async def analyse(self, channel: str) -> None:
        report = await read(ChannelActivities.send_report, ChannelRef(channel=channel), summary="Send report")
        self.observe_report(report)
        findings = analysis(report) if report is not None else []
        text = (
            "; ".join(findings) or "no spam or rejected templates found"
            if report is not None
            else "send report unreadable"
        )
        self.brief.summary = f"{self.incident.summary}. Analysis: {text}"
        self.brief.recommendation = (
            f"Template sends on {channel} may be turned back on"
            if report is not None and not findings
            else f"Fix what the analysis found before turning template sends on {channel} back on"
        )
        self.note("note", f"analysis: {text}")
        self.publish_brief()
        await self.audit(
            "analysis",
            action=f"analyse template sends of {channel}",
            outcome="unreadable" if report is None else ("findings" if findings else "clean"),
            reason=text,
        )

    def observe_report(self, report: SendReport | None) -> None:
        """The number's standing with the provider and the day of sends behind it."""
        if report is None:
            observe(self, "number quality", UNREADABLE)
            return
        observe(self, "number quality", f"{report.quality_rating} ({report.number})")
        observe(
            self,
            "spam reports (24 h)",
            f"{report.spam_reports_24h} for {report.template_sends_24h} template sends, {report.blocks_24h} blocks",
            limit=f"{SPAM_PER_THOUSAND:g} per thousand sends",
        )


def analysis(report: SendReport) -> list[str]:
    """What in the last day of sends likely brought the ban on (empty: nothing); pure, tested alone."""
    findings = []
    if report.template_sends_24h:
        per_thousand = 1000 * report.spam_reports_24h / report.template_sends_24h
        if per_thousand >= SPAM_PER_THOUSAND:
            findings.append(
                f"spam: {report.spam_reports_24h} reports and {report.blocks_24h} blocks for "
                f"{report.template_sends_24h} template sends ({per_thousand:.1f} per thousand)"
            )
    for template, sends in sorted(report.rejected_template_sends.items()):
        if sends:
            findings.append(f"rejected template {template} forced out {sends} times")
    return findings
