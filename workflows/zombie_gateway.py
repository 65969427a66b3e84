"""Zombie gateway: the gateway process is there but no longer does its work (no heartbeats, no answers).

Page at once, directly; if the paging channels cannot take it, fall back to the escalation level. Then
collect what a human needs to judge it — the service log and the gateway's state — and write the event
trail to the audit log. Only once that trail is recorded is the incident handed to a human: they get the
context and are asked whether to restart the gateway through the safe path. Nobody answering leaves it as
it is, with the people on the escalation chain already paged. An approved restart still drops every session,
so the gateway's guardrail judges it right before it runs (the hourly restart limit, the kill switch): when
it holds the restart back — the switch is engaged, the critical window is full — a human is asked again,
told why.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.gateway import GatewayActivities
    from schemas.approvals import ApprovalRequest
    from schemas.gateway import GatewayEffect
    from schemas.guardrail import Risk
    from schemas.incidents import IncidentInput, IncidentResult
    from schemas.targets import GatewayRestartTarget
    from workflows.steps.failures import page_failure
    from workflows.steps.guardrail import action_check, clear_with_guardrail
    from workflows.steps.incident import IncidentWorkflow
    from workflows.steps.patches import patched
    from workflows.steps.system_state import UNREADABLE, observe, observe_memory

# How much of the service log goes into the hand-off message; the whole bundle is in the audit row.
HANDOFF_LOG_LINES = 10
# Runs recorded before restarted on the approval alone, without asking the gateway's guardrail.
RESTART_ASKS_GUARDRAIL_PATCH = "zombie_gateway-restart-asks-the-guardrail"


@workflow.defn(name="zombie_gateway")
class ZombieGateway(IncidentWorkflow):
    target_model = GatewayRestartTarget  # what it acts on: schemas/targets.py
    uses_roles = ("oncall", "lead")  # the worker checks [roles]

    @workflow.run
    async def run(self, incident: IncidentInput) -> IncidentResult:
        gateway = incident.target["gateway"]
        escalation = incident.policy.escalation[0].name if incident.policy.escalation else "on-call"
        self.open(
            recommendation=f"Safe restart of gateway {gateway}, decided by a human once logs and state are in",
            risk_if_no_action=f"Gateway {gateway} stays unresponsive; every session and scheduled run on it stalls",
        )

        # 1. Page directly; the notifier already falls back between channels, this falls back to a level.
        alert_text = (
            f"{incident.summary}. Gateway {gateway} looks alive but does not answer. Collecting logs."
        )
        paged = await self.notify(
            "alert-direct", channel="on-call", title=f"Zombie gateway {gateway}", text=alert_text
        )
        if not paged:
            await self.notify(
                "alert-fallback",
                channel=escalation,
                title=f"Zombie gateway {gateway} (paging channel failed)",
                text=alert_text,
            )

        # 2. Collect the evidence: the service log and the gateway's state.
        logs = await self.act(
            "collect-logs",
            GatewayActivities.collect_logs,
            self.effect(gateway),
            summary=f"Collect service logs of gateway {gateway}",
        )
        state = await self.act(
            "collect-state",
            GatewayActivities.collect_state,
            self.effect(gateway),
            summary=f"Collect state of gateway {gateway}",
        )
        observe_memory(self, state)
        observe(self, "health", f"healthy={state.healthy}, zombie={state.zombie}" if state else UNREADABLE)
        observe(self, "sessions", f"{state.live_sessions} of {state.sessions} alive" if state else UNREADABLE)
        observe(self, "scheduled runs", str(state.scheduled_runs) if state else UNREADABLE)
        observe(self, "service log", f"{len(logs.lines)} lines collected" if logs else UNREADABLE)

        # 3. Write the event trail. The hand-off below must never come before it.
        missing = [name for name, got in (("service logs", logs), ("state", state)) if got is None]
        state_text = (
            f"healthy={state.healthy}, zombie={state.zombie}, memory {state.memory_ratio:.0%} of watermark, "
            f"{state.live_sessions}/{state.sessions} sessions alive, {state.scheduled_runs} scheduled runs"
            if state
            else "state unavailable"
        )
        await self.audit(
            "event-trail",
            action=f"record event trail of zombie gateway {gateway}",
            outcome="recorded" if not missing else "recorded_incomplete",
            reason=f"missing: {', '.join(missing)}" if missing else "",
            details={
                "paged": "direct" if paged else "fallback",
                "log_lines": str(len(logs.lines)) if logs else "0",
                "state": state_text,
            },
        )
        self.note("note", f"event trail recorded; {state_text}")

        # 4. Only now, hand it to a human.
        tail = "\n".join(logs.lines[-HANDOFF_LOG_LINES:]) if logs else "(logs could not be collected)"
        await self.notify(
            "handoff",
            channel=escalation,
            title=f"Hand-off: zombie gateway {gateway}",
            text=f"{incident.summary}.\nState: {state_text}.\nLast log lines:\n{tail}\n"
            f"Options: safe restart (recommended), or investigate by hand first. Never restart it directly.",
        )
        decision = await self.gate.ask(
            ApprovalRequest(
                action="safe-restart",
                recommendation=f"Safe restart of zombie gateway {gateway}",
                risk=f"Gateway {gateway} stays unresponsive until someone acts",
                allowed_roles=["oncall", "lead"],
                safe_default=f"leave gateway {gateway} for the human on call; nothing restarted",
            )
        )
        if not decision.approved:
            return await self.finish("escalated" if decision.timed_out else "handed_off")
        reason = f"zombie gateway; approved by {decision.decided_by}" + (
            f": {decision.comment}" if decision.comment else ""
        )
        restart_by = decision.decided_by
        if patched(RESTART_ASKS_GUARDRAIL_PATCH):
            # 5. The approval said a restart is right; the guardrail says whether the gateway can take one now.
            subsystem = incident.target.get("subsystem", "gateway")
            cleared = await clear_with_guardrail(
                self,
                subsystem,
                action_check(
                    "safe-restart",
                    action=f"safe restart of zombie gateway {gateway}",
                    kind="restart",
                    risk=Risk.high,
                    reason=reason,
                    destructive=True,
                ),
                ApprovalRequest(
                    action="safe-restart-past-guardrail",
                    recommendation=f"Safe restart of zombie gateway {gateway}, approved by {decision.decided_by}",
                    risk=f"Gateway {gateway} stays unresponsive until someone acts",
                    allowed_roles=["oncall", "lead"],
                    safe_default=f"leave gateway {gateway} for the human on call; nothing restarted",
                ),
            )
            if not cleared.go:
                return await self.finish("escalated" if cleared.timed_out else "handed_off")
            if cleared.decision is not None:
                restart_by = cleared.by
                reason = f"{reason}; past the guardrail ({cleared.verdict.reason}) by {cleared.by}"
        restarted = await self.act(
            "safe-restart",
            GatewayActivities.safe_restart,
            # Always a person's decision here: the gateway's own limiter lets it through.
            GatewayEffect(gateway=gateway, reason=reason, approved_by=restart_by),
            summary=f"Safe restart of gateway {gateway}",
            actor=restart_by,
        )
        if restarted is None and patched("zombie_gateway-safe-restart-failure-pages"):
            await page_failure(
                self,
                "safe-restart-failed",
                what=f"the safe restart of zombie gateway {gateway} (approved by {decision.decided_by})",
                state_left=f"gateway {gateway} was not restarted and stays unresponsive ({state_text}); "
                "restart it through the safe path by hand",
            )
        return await self.finish("restarted" if restarted else "action_failed")

    def effect(self, gateway: str) -> GatewayEffect:
        return GatewayEffect(gateway=gateway, reason=self.incident.summary)
