"""Template rejected: the provider rejected a message template (its wording, or its category: marketing
rather than utility), so messages that need it, such as order confirmations outside the 24-hour window,
silently stop reaching customers.

Stop the bleeding first: send the generic backup template in its place at once ("Hi, I have an update on
your order, can you reply?"), which needs no approval. Then edit the rejected one (the words that read as
promotion go, the category becomes utility), resubmit it, and check the provider's review every ten minutes.
Approved: the original goes back into use. Rejected again: edit and resubmit, up to three submissions;
after that, or when a review never ends, the escalation chain takes over and the backup stays in use.
"""

from __future__ import annotations

import re
from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.channel import ChannelActivities
    from schemas.channel import TemplateRef, TemplateState, TemplateSubmission, TemplateSwitch
    from schemas.incidents import IncidentInput, IncidentResult
    from schemas.targets import TemplateTarget
    from workflows.steps.channel import read
    from workflows.steps.failures import page_failure
    from workflows.steps.incident import IncidentWorkflow
    from workflows.steps.patches import patched
    from workflows.steps.system_state import UNREADABLE, observe

DEFAULT_BACKUP = "generic_update"
MAX_SUBMISSIONS = 3
REVIEW_POLL_EVERY = timedelta(minutes=10)
REVIEW_POLLS = 36  # six hours per review; the provider answers most within minutes
# Words reviewers read as promotion in a utility message (Portuguese and English).
TRIGGER_WORDS = (
    "desconto",
    "promoção",
    "promocao",
    "oferta",
    "grátis",
    "gratis",
    "imperdível",
    "aproveite",
    "cupom",
    "discount",
    "offer",
    "promo",
    "free",
    "deal",
    "coupon",
)
UTILITY = "UTILITY"


@workflow.defn(name="template_rejected")
class TemplateRejected(IncidentWorkflow):
    target_model = TemplateTarget  # what it acts on: schemas/targets.py
    uses_roles = ("oncall",)  # the worker checks [roles]

    @workflow.run
    async def run(self, incident: IncidentInput) -> IncidentResult:
        channel = incident.target["channel"]
        template = incident.target["template"]
        backup = incident.target.get("backup_template", DEFAULT_BACKUP)
        self.open(
            recommendation=f"Send {backup} in place of {template} while an edited {template} is reviewed",
            risk_if_no_action=f"Messages using {template} never reach customers outside the 24-hour window",
        )

        # 1. The backup template goes out in the rejected one's place, at once.
        switched = await self.act(
            "use-backup",
            ChannelActivities.use_template,
            TemplateSwitch(
                channel=channel,
                template=template,
                use=backup,
                reason=incident.summary,
            ),
            summary=f"Send {backup} in place of {template} on {channel}",
        )
        if switched is not None:
            observe(self, f"in use for {template}", switched.use)
        if switched is None:
            await self.notify(
                "backup-failed",
                channel="on-call",
                title=f"Could not switch {template} to its backup on {channel}",
                text=f"{incident.summary}. Switching to {backup} failed; messages using {template} "
                "are still not delivered. Switch it by hand.",
            )
            return await self.finish("action_failed")
        self.set_state("contained")
        await self.notify(
            "tell-oncall",
            channel="on-call",
            title=f"Template {template} rejected on {channel}: backup in use",
            text=f"{incident.summary}. {backup} is sent in its place; Stanch edits {template}, resubmits "
            f"it and restores it once the provider approves it.",
        )

        # 2. Edit, resubmit, wait for the review; at most MAX_SUBMISSIONS times.
        ref = TemplateRef(channel=channel, template=template)
        current = await read(ChannelActivities.get_template, ref, summary=f"Read template {template}")
        observe_template(self, current, template)
        if current is None:
            return await self.escalate(channel, template, backup, f"template {template} could not be read")
        body, reason = current.body, current.rejection_reason
        for attempt in range(1, MAX_SUBMISSIONS + 1):
            body = edited(body)
            step = f"resubmit-{attempt}"
            submitted = await self.act(
                step,
                ChannelActivities.submit_template,
                TemplateSubmission(
                    channel=channel,
                    template=template,
                    body=body,
                    category=UTILITY,
                ),
                summary=f"Resubmit edited {template} ({attempt}/{MAX_SUBMISSIONS})",
            )
            if submitted is None:
                if patched("template_rejected-resubmit-failure-pages"):
                    await page_failure(
                        self,
                        f"{step}-failed",
                        what=f"resubmitting the edited {template} ({attempt}/{MAX_SUBMISSIONS})",
                        state_left=f"{backup} stays in use in place of {template}, which is still rejected; "
                        "resubmit it by hand in the provider's panel",
                    )
                return await self.finish("action_failed")
            self.set_state(
                "awaiting_review",
                awaiting=f"the provider's review of {template} (submission {attempt}/{MAX_SUBMISSIONS})",
            )
            verdict, reason = await self.review(ref, attempt, reason)
            await self.audit(
                f"review-{attempt}",
                action=f"provider review of {template} (submission {attempt})",
                outcome=verdict,
                reason=reason,
            )
            if verdict == "approved":
                return await self.restore(channel, template)
            if verdict != "rejected":
                return await self.escalate(
                    channel, template, backup, f"no verdict on submission {attempt} after 6 hours"
                )
            self.note("note", f"submission {attempt} of {template} rejected: {reason}")
        return await self.escalate(
            channel, template, backup, f"rejected {MAX_SUBMISSIONS} times, last: {reason}"
        )

    async def review(self, ref: TemplateRef, attempt: int, reason: str) -> tuple[str, str]:
        """The review's verdict (approved, rejected or pending when it never ended) and its reason."""
        for poll in range(1, REVIEW_POLLS + 1):
            await workflow.sleep(REVIEW_POLL_EVERY, summary=f"review check {poll} of submission {attempt}")
            state = await read(ChannelActivities.get_template, ref, summary=f"Review of {ref.template}")
            observe_template(self, state, ref.template)
            if state is not None and state.status != "pending":
                return state.status, state.rejection_reason
        return "pending", reason

    async def restore(self, channel: str, template: str) -> IncidentResult:
        restored = await self.act(
            "restore-original",
            ChannelActivities.use_template,
            TemplateSwitch(
                channel=channel,
                template=template,
                use=template,
                reason="the edited template was approved",
            ),
            summary=f"Send {template} again on {channel}",
        )
        if restored is not None:
            observe(self, f"in use for {template}", restored.use)
        if restored is None:
            await self.notify(
                "restore-failed",
                channel="on-call",
                title=f"{template} approved but not restored on {channel}",
                text=f"The edited {template} was approved; putting it back into use failed. "
                "The backup is still sent; switch back by hand.",
            )
            return await self.finish("action_failed")
        await self.notify(
            "tell-oncall-restored",
            channel="on-call",
            title=f"Template {template} approved and back in use on {channel}",
            text=f"The provider approved the edited {template}; it is sent again instead of the backup.",
        )
        return await self.finish("restored")

    async def escalate(self, channel: str, template: str, backup: str, why: str) -> IncidentResult:
        levels = self.incident.policy.escalation
        level = levels[0].name if levels else "on-call"
        recipients = ", ".join(levels[0].notify) if levels else None
        self.set_state("escalated", awaiting=f"a person to rework template {template}")
        await self.notify(
            "escalate",
            channel=level,
            recipient=recipients or None,
            title=f"Template {template} on {channel} needs a person",
            text=f"{why}. {backup} stays in use in its place; rewrite {template} in the provider's "
            "panel (wording and category) and resubmit it by hand.",
        )
        return await self.finish("escalated")


def observe_template(incident: TemplateRejected, state: TemplateState | None, template: str) -> None:
    """The template's review status as the provider last gave it; unreadable is not `approved`."""
    if state is None:
        observe(incident, f"template {template}", UNREADABLE)
        return
    reason = f": {state.rejection_reason}" if state.status == "rejected" and state.rejection_reason else ""
    observe(
        incident,
        f"template {template}",
        f"{state.status}{reason} ({state.category}, {state.submissions} submission(s))",
        limit=f"{MAX_SUBMISSIONS} submissions",
    )


def edited(body: str) -> str:
    """The template without its promotional sentences; pure, so the edit is the same on replay.

    A sentence with a trigger word or a percentage ("20% off") goes whole, which keeps what is left readable;
    if every sentence is promotional, only the trigger words go.
    """
    promotional = re.compile(
        r"\b(?:" + "|".join(re.escape(word) for word in TRIGGER_WORDS) + r")\b|\d+\s*%", re.IGNORECASE
    )
    sentences = [part.strip() for part in re.split(r"(?<=[.!?])\s+", body.strip()) if part.strip()]
    kept = [sentence for sentence in sentences if not promotional.search(sentence)]
    text = " ".join(kept) if kept else promotional.sub("", body)
    text = re.sub(r"!+", ".", text)  # exclamations read as marketing too
    return re.sub(r"\s{2,}", " ", re.sub(r"\s+([.,?])", r"\1", text)).strip()
