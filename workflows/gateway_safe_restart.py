"""Gateway safe restart: the gateway's memory is climbing towards its cgroup high watermark.

Above 80 % of the watermark the fix is a restart, but only the safe one, and only as often as the gateway's
guardrail allows (three automatic restarts in any hour; past that a human approves it). Before restarting,
tidy what the restart would otherwise reload — dead scheduled runs and `.deleted`/`.corrupt` files — and
tell the gateway's users it is coming, leaving them a few seconds to read it. Afterwards, confirm the health
check passes again (a bounded number of tries) and compare memory before and after: a restart usually frees
half of it or more, and less than that is worth a human's look. Below the threshold nothing is restarted;
the incident records the diagnosis and closes.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.gateway import GatewayActivities
    from schemas.approvals import ApprovalRequest
    from schemas.gateway import GatewayEffect, GatewayRead, GatewayStatus
    from schemas.guardrail import Risk, Ruling
    from schemas.incidents import IncidentInput, IncidentResult
    from schemas.targets import GatewayRestartTarget
    from workflows.steps.guardrail import action_check, ask_guardrail
    from workflows.steps.incident import IncidentWorkflow
    from workflows.steps.patches import patched
    from workflows.steps.policies import EFFECT_TIMEOUT
    from workflows.steps.system_state import observe, observe_memory

# Restart when memory is above this share of the cgroup high watermark.
RESTART_THRESHOLD = 0.80
# A safe restart usually frees 50-60 % of the gateway's memory; less is reported.
EXPECTED_DROP = 0.50
# Long enough for chat clients to show the announcement before the gateway drops connections.
ANNOUNCE_GRACE = timedelta(seconds=3)
# The gateway should answer its health check within about two minutes of a restart.
HEALTH_TRIES = 8
HEALTH_INTERVAL = timedelta(seconds=15)
# One check is a few quick tries; the loop above it is what waits for the gateway.
HEALTH_RETRY = RetryPolicy(maximum_attempts=3, initial_interval=timedelta(seconds=1))
# A restart drops every live session on the gateway, so the kill switch judges it: armed, at most two such
# actions per window; engaged, a human decides. Runs recorded before asked for it as not destructive.
RESTART_IS_DESTRUCTIVE_PATCH = "gateway-restart-is-destructive-for-the-kill-switch"


@workflow.defn(name="gateway_safe_restart")
class GatewaySafeRestart(IncidentWorkflow):
    target_model = GatewayRestartTarget  # what it acts on: schemas/targets.py
    uses_roles = ("oncall", "lead", "gateway-users")  # the worker checks [roles]

    @workflow.run
    async def run(self, incident: IncidentInput) -> IncidentResult:
        gateway = incident.target["gateway"]
        subsystem = incident.target.get("subsystem", "gateway")
        self.open(
            recommendation=f"Restart gateway {gateway} through the safe path if memory is above "
            f"{RESTART_THRESHOLD:.0%} of its high watermark",
            risk_if_no_action=f"Gateway {gateway} reaches its memory limit, gets throttled or killed, "
            "and every sub-agent session on it drops",
        )

        # 1. Diagnose: how close to the watermark is it really?
        before = await self.act(
            "diagnose",
            GatewayActivities.status,
            GatewayRead(gateway=gateway),
            summary=f"Read memory of gateway {gateway}",
        )
        observe_memory(self, before, threshold=RESTART_THRESHOLD)
        if before is not None:
            observe(self, "health", "healthy" if before.healthy else "unhealthy")
        if before is None:
            await self.tell_oncall(
                "diagnose-failed", gateway, "Could not read the gateway's memory; check it by hand."
            )
            return await self.finish("action_failed")
        usage = f"{before.memory_mb:g} MB, {before.memory_ratio:.0%} of the {before.high_watermark_mb:g} MB high watermark"
        if before.memory_ratio <= RESTART_THRESHOLD:
            self.brief.recommendation = "None: memory is below the restart threshold; keep watching"
            self.note("note", f"memory at {usage}: below {RESTART_THRESHOLD:.0%}, no restart")
            await self.tell_oncall(
                "diagnosis",
                gateway,
                f"Memory is at {usage}, below the {RESTART_THRESHOLD:.0%} threshold. No restart.",
            )
            return await self.finish("diagnosed")
        reason = f"memory at {usage}"

        # 2. Ask the gateway's guardrail; past the hourly restart limit, or the kill switch, a human decides.
        verdict = await ask_guardrail(
            subsystem,
            action_check(
                "safe-restart",
                action=f"safe restart of gateway {gateway}",
                kind="restart",
                risk=Risk.high,
                reason=reason,
                destructive=patched(RESTART_IS_DESTRUCTIVE_PATCH),
            ),
            incident.policy.guardrail_limits(subsystem),
        )
        await self.audit(
            "guardrail",
            action="ask guardrail for a safe restart",
            outcome=verdict.ruling.value,
            reason=verdict.reason,
        )
        restart_by = "stanch"
        # Set when a person approved: the gateway's own limiter lets an approved restart through.
        approved_by = ""
        if verdict.ruling is not Ruling.allow:
            self.note("note", f"guardrail says {verdict.ruling.value}: {verdict.reason}")
            decision = await self.gate.ask(
                ApprovalRequest(
                    action="safe-restart",
                    recommendation=f"Safe restart of gateway {gateway} ({reason}); the guardrail held the "
                    f"automatic restart back: {verdict.reason}",
                    risk=f"Gateway {gateway} keeps growing towards its memory limit",
                    allowed_roles=["oncall", "lead"],
                    safe_default=f"leave gateway {gateway} running and keep watching its memory",
                )
            )
            if not decision.approved:
                return await self.finish("escalated" if decision.timed_out else "left_running")
            restart_by = approved_by = decision.decided_by
            reason = f"{reason}; approved by {decision.decided_by}" + (
                f": {decision.comment}" if decision.comment else ""
            )

        # 3. Tidy what the gateway would reload: dead scheduled runs, then leftover files on disk.
        self.set_state("restarting")
        await self.act(
            "clean-scheduled-runs",
            GatewayActivities.clean_scheduled_runs,
            self.effect(gateway, reason, approved_by),
            summary=f"Clean dead scheduled runs of gateway {gateway}",
        )
        junk = await self.act(
            "remove-junk-files",
            GatewayActivities.remove_junk_files,
            self.effect(gateway, reason, approved_by),
            summary=f"Remove .deleted and .corrupt files of gateway {gateway}",
        )
        if junk is not None:
            self.note("note", f"removed {junk.removed} junk file(s) from gateway {gateway}")

        # 4. Announce, and give the announcement time to land before connections drop.
        await self.notify(
            "announce",
            channel="gateway-users",
            title=f"Gateway {gateway} restarts in a few seconds",
            text=f"Gateway {gateway} is being restarted to free memory ({reason}). Sessions reconnect on their own.",
        )
        await workflow.sleep(ANNOUNCE_GRACE, summary="let the restart announcement land")

        # 5. Restart through the safe path only, with the documented reason.
        restarted = await self.act(
            "safe-restart",
            GatewayActivities.safe_restart,
            self.effect(gateway, reason, approved_by),
            summary=f"Safe restart of gateway {gateway}",
            actor=restart_by,
        )
        if restarted is not None:
            observe(self, "restarts", f"{restarted.restarts} in the gateway's life")
        if restarted is None:
            await self.tell_oncall(
                "restart-failed", gateway, "The safe restart failed; the gateway was not restarted."
            )
            return await self.finish("action_failed")

        # 6. Confirm it came back.
        after = await self.wait_until_healthy(gateway)
        if after is None:
            await self.audit(
                "health",
                action=f"confirm gateway {gateway} is healthy",
                outcome="failed",
                reason=f"no healthy answer after {HEALTH_TRIES} checks",
            )
            await self.tell_oncall(
                "unhealthy",
                gateway,
                f"Gateway {gateway} was restarted but is not healthy after {HEALTH_TRIES} checks.",
            )
            return await self.finish("unhealthy_after_restart")
        await self.audit("health", action=f"confirm gateway {gateway} is healthy", outcome="healthy")
        observe_memory(self, after, threshold=RESTART_THRESHOLD)

        # 7. Did the restart free what it should?
        drop = 1 - after.memory_mb / before.memory_mb if before.memory_mb else 0.0
        comparison = f"memory {before.memory_mb:g} MB → {after.memory_mb:g} MB ({drop:.0%} less)"
        low_gain = drop < EXPECTED_DROP
        if low_gain:
            comparison += (
                f", below the expected {EXPECTED_DROP:.0%}: look for a leak the restart does not clear"
            )
            self.brief.recommendation = (
                f"Investigate gateway {gateway}: the restart freed less memory than expected"
            )
        self.brief.summary = f"{incident.summary} — restarted; {comparison}"
        self.note("note", comparison)
        await self.audit(
            "memory-compare",
            action=f"compare memory of gateway {gateway}",
            outcome="below_expected" if low_gain else "as_expected",
            reason=comparison,
            details={
                "before_mb": f"{before.memory_mb:g}",
                "after_mb": f"{after.memory_mb:g}",
                "drop": f"{drop:.2f}",
            },
        )
        await self.tell_oncall(
            "restarted", gateway, f"Gateway {gateway} restarted and healthy; {comparison}."
        )
        return await self.finish("restarted_low_gain" if low_gain else "restarted")

    def effect(self, gateway: str, reason: str, approved_by: str) -> GatewayEffect:
        return GatewayEffect(gateway=gateway, reason=reason, approved_by=approved_by)

    async def wait_until_healthy(self, gateway: str) -> GatewayStatus | None:
        """Poll the health check on timers, a bounded number of times; None if it never passed."""
        for attempt in range(1, HEALTH_TRIES + 1):
            try:
                status = await workflow.execute_activity_method(
                    GatewayActivities.health,
                    GatewayRead(gateway=gateway),
                    start_to_close_timeout=EFFECT_TIMEOUT,
                    retry_policy=HEALTH_RETRY,
                    summary=f"Health check {attempt} of gateway {gateway}",
                )
            except ActivityError as error:
                # An unreachable health endpoint is an unhealthy gateway, not a failed incident.
                self.note(
                    "note", f"health check {attempt} of gateway {gateway} failed: {error.cause or error}"
                )
                status = None
            health = "unreachable" if status is None else ("healthy" if status.healthy else "unhealthy")
            observe(self, "health", health, limit=f"check {attempt} of {HEALTH_TRIES} after the restart")
            if status is not None and status.healthy:
                self.note("note", f"gateway {gateway} healthy at check {attempt}")
                return status
            if attempt < HEALTH_TRIES:
                await workflow.sleep(HEALTH_INTERVAL, summary=f"wait before health check {attempt + 1}")
        return None

    async def tell_oncall(self, step: str, gateway: str, text: str) -> None:
        await self.notify(
            step, channel="on-call", title=f"Gateway {gateway}: {self.incident.summary}", text=text
        )
