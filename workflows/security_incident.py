"""Security incident (P0): an agent was prompt-injected, is suspected of exfiltrating data, abuses a tool, or
behaves critically out of the ordinary.

Contain first, understand second, fix third — and only the containment is automatic:

1. Kill switch and isolation, at once and without asking (stopping harm needs no approval, and no
   guardrail may hold it back): engage the kill switch of the agent's subsystem guardrail — from now on
   every destructive or critical automatic action on that subsystem (a restart, a termination, a reverse
   migration) asks a human first — then revoke the agent's tokens and pause it. The isolation is asked of
   the guardrail too, so it is counted with everything else done to the subsystem; it is protective, not
   destructive, so the engaged switch lets it through, and even an unreachable guardrail does not hold it
   back. If the agent cannot be isolated, page and stop: a person must do it.
2. Notify: the P0 page goes to the instant channel now; every step is in the audit log already.
3. Investigate: collect the agent's history, its security events and every call made about it into an
   evidence bundle, and name the likely cause and the impact from it.
4. Remediate behind an approval: roll the agent back to its previous version and test that fix with the
   gold set in the sandbox. The approved rollback is asked of the guardrail before it runs (high risk, not
   destructive: the agent stays paused, nothing live changes); if the guardrail holds it back a human is
   asked again, told why. The agent stays paused either way; putting it back in service is a separate,
   human decision. A fix that fails its test (or cannot be applied) is handed to a human
   (`escalation_to_human`, as a child). Rejected or unanswered: the agent stays isolated.
5. Post-mortem: what happened, root cause, impact, what was done, and how to prevent it, published in
   every case once the evidence is in.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.agents import AgentActivities
    from activities.documents import DocumentActivities
    from activities.security import SecurityActivities
    from schemas.agents import AgentAction, AgentRollback, EvidenceRequest
    from schemas.approvals import ApprovalRequest
    from schemas.documents import PostmortemRequest, timeline_lines
    from schemas.guardrail import KillSwitchMode, Risk
    from schemas.handoff import Handoff, HandoffOption, Trigger
    from schemas.incidents import IncidentInput, IncidentResult
    from schemas.security import KillSwitchRequest
    from schemas.severity import Severity
    from schemas.targets import SecurityTarget
    from workflows.steps.failures import page_failure
    from workflows.steps.guardrail import action_check, ask_guardrail, clear_with_guardrail
    from workflows.steps.handoff import hand_off
    from workflows.steps.incident import IncidentWorkflow
    from workflows.steps.patches import patched
    from workflows.steps.system_state import observe, observe_agent, observe_gold_set

# Runs recorded before the kill switch had modes only turned it "on" (it already was: armed by default),
# and isolated and remediated without asking the guardrail.
KILL_SWITCH_ENGAGED_PATCH = "security_incident-engages-the-kill-switch"

# What keeps each kind of incident from happening again; every post-mortem lists its cause's entries.
PREVENTION = {
    "prompt_injection": [
        "Keep untrusted content (web pages, documents, customer text) out of the agent's instructions",
        "Add the injected prompt to the agent's gold set",
    ],
    "exfiltration": [
        "Restrict the agent's outbound tools to an allow-list of destinations",
        "Alert on bulk reads of customer data by any agent",
    ],
    "tool_abuse": [
        "Cut the agent's tool permissions down to what its job description needs",
        "Rate-limit the abused tool through the subsystem guardrail",
    ],
}
GENERAL_PREVENTION = ["Add this pattern to monitoring", "Add a gold-set case that reproduces it"]

AFTER_FAILED_FIX = [
    HandoffOption(
        name="keep-isolated", description="keep the agent paused with no tokens while it is fixed by hand"
    ),
    HandoffOption(name="manual-fix", description="an engineer patches the agent and reruns the gold set"),
    HandoffOption(name="terminate-agent", description="retire the agent for good", destructive=True),
]


@workflow.defn(name="security_incident")
class SecurityIncident(IncidentWorkflow):
    target_model = SecurityTarget  # what it acts on: schemas/targets.py
    uses_roles = ("oncall", "lead", "security")  # the worker checks [roles]

    @workflow.run
    async def run(self, incident: IncidentInput) -> IncidentResult:
        agent_id = incident.target["agent_id"]
        kind = incident.target.get("kind", "anomaly")
        subsystem = incident.target.get("subsystem", agent_id)
        self.open(
            recommendation=f"Isolate agent {agent_id} now; remediate once the evidence is in",
            risk_if_no_action=f"Agent {agent_id} keeps acting with its tools and tokens ({kind})",
        )

        # 1. Kill switch and isolation.
        self.engages = patched(KILL_SWITCH_ENGAGED_PATCH)
        self.subsystem = subsystem
        switched = await self.act(
            "kill-switch",
            SecurityActivities.kill_switch,
            KillSwitchRequest(
                subsystem=subsystem,
                enabled=True,
                mode=KillSwitchMode.engaged if self.engages else None,
                by=workflow.info().workflow_id,
                reason=f"security incident on {agent_id}: {kind}",
            ),
            summary=f"Engage the kill switch of {subsystem}"
            if self.engages
            else f"Kill switch on for {subsystem}",
        )
        if switched is not None:
            mode = switched.mode.value if switched.mode else ("on" if switched.kill_switch else "off")
            observe(self, f"kill switch {switched.subsystem}", mode)
        if self.engages and switched is not None:
            # Not when the switch failed: the guardrail is unreachable, and isolation must not wait on it.
            await self._ask_about_isolation(agent_id, kind)
        revoked = await self.act(
            "revoke-tokens",
            AgentActivities.security_revoke_tokens,
            AgentAction(agent_id=agent_id, reason=kind),
            summary=f"Revoke tokens of agent {agent_id}",
        )
        if revoked is not None:
            observe(self, f"tokens of agent {agent_id}", "revoked")
        paused = await self.act(
            "pause",
            AgentActivities.pause_agent,
            AgentAction(agent_id=agent_id, reason=incident.summary),
            summary=f"Pause agent {agent_id}",
        )
        if paused is not None:
            observe_agent(self, paused)
        if paused is None or revoked is None:
            await self.notify(
                "isolation-failed",
                channel="security",
                title=f"Could not isolate agent {agent_id}",
                text=f"{incident.summary}. Tokens revoked: {revoked is not None}; paused: {paused is not None}. "
                "Cut its access by hand now.",
            )
            return await self.finish("action_failed")
        self.set_state("contained")

        # 2. Page.
        switch = ("engaged" if self.engages else "on") if switched else "FAILED (check the guardrail)"
        await self.notify(
            "page",
            channel="security",
            title=f"Security incident on agent {agent_id}: {kind}",
            text=f"{incident.summary}. Contained: kill switch {switch}, tokens revoked, agent paused. "
            "Evidence is being collected.",
        )

        # 3. Investigate.
        evidence = await self.act(
            "collect-evidence",
            AgentActivities.collect_evidence,
            EvidenceRequest(
                incident_id=incident.incident_id,
                agent_id=agent_id,
                kind=kind,
                summary=incident.summary,
            ),
            summary=f"Collect evidence on agent {agent_id}",
        )
        if evidence is not None:
            observe(
                self,
                "evidence",
                f"{evidence.events} events in {evidence.evidence_id}; likely {evidence.cause}",
            )
        cause = evidence.cause if evidence else kind
        impact = evidence.impact if evidence else "unknown: the evidence could not be collected"
        self.note("note", f"likely cause: {cause}; impact: {impact}")
        self.set_state("investigated")

        # 4. Remediate, once a human approves, and test the fix.
        final_state, remediation = await self._remediate(agent_id, paused.version, paused.previous_version)

        # 5. Post-mortem.
        published = await self.act(
            "post-mortem",
            DocumentActivities.security_publish_postmortem,
            PostmortemRequest(
                incident_id=incident.incident_id,
                subject=agent_id,
                what_happened=incident.summary,
                root_cause=cause,
                impact=impact,
                remediation=remediation,
                prevention=[
                    *PREVENTION.get(cause, GENERAL_PREVENTION),
                    f"Agent {agent_id} stays paused until a reviewer puts it back in service",
                ],
                timeline=timeline_lines(self.timeline.entries),
            ),
            summary=f"Publish post-mortem for agent {agent_id}",
        )
        if published is None and patched("security_incident-post-mortem-failure-pages"):
            await page_failure(
                self,
                "post-mortem-failed",
                what=f"publishing the post-mortem of the security incident on agent {agent_id}",
                state_left=f"agent {agent_id} stays paused with its tokens revoked ({remediation}); the "
                "post-mortem exists only in this incident's timeline. Publish it by hand",
            )
        return await self.finish(final_state)

    async def _remediate(self, agent_id: str, version: str, previous: str | None) -> tuple[str, str]:
        """The final state and what the post-mortem says about the fix."""
        if previous is None:
            return await self._hand_over(agent_id, [f"no earlier version of {agent_id} to roll back to"])
        decision = await self.gate.ask(
            ApprovalRequest(
                action="remediate",
                recommendation=f"Roll agent {agent_id} back from {version} to {previous} and run its gold set "
                "in the sandbox; it stays paused",
                risk=f"Agent {agent_id} stays isolated and its work waits",
                allowed_roles=["oncall", "lead"],
                safe_default=f"keep agent {agent_id} isolated and paused",
            )
        )
        if not decision.approved:
            state = "escalated" if decision.timed_out else "contained"
            return state, f"not remediated ({decision.comment or 'rejected'}); agent kept isolated"
        remediate_by = decision.decided_by
        if self.engages:
            cleared = await clear_with_guardrail(
                self,
                self.subsystem,
                action_check(
                    "remediate",
                    action=f"roll paused agent {agent_id} back from {version} to {previous}",
                    kind="rollback",
                    risk=Risk.high,
                    reason=f"security incident remediation approved by {decision.decided_by}",
                ),
                ApprovalRequest(
                    action="remediate-past-guardrail",
                    recommendation=f"Roll agent {agent_id} back from {version} to {previous} (approved by "
                    f"{decision.decided_by}); it stays paused",
                    risk=f"Agent {agent_id} stays isolated and its work waits",
                    allowed_roles=["oncall", "lead"],
                    safe_default=f"keep agent {agent_id} isolated and paused",
                ),
            )
            if not cleared.go:
                state = "escalated" if cleared.timed_out else "contained"
                return (
                    state,
                    f"not remediated (held back by the guardrail: {cleared.verdict.reason}); agent kept isolated",
                )
            if cleared.decision is not None:
                remediate_by = cleared.by

        fixed = await self.act(
            "remediate",
            AgentActivities.rollback_agent,
            AgentRollback(agent_id=agent_id, reason=decision.comment),
            summary=f"Roll back agent {agent_id} to {previous}",
            actor=remediate_by,
        )
        if fixed is not None:
            observe_agent(self, fixed)
        if fixed is None:
            return await self._hand_over(agent_id, [f"rollback of {agent_id} to {previous} failed"])
        test = await self.act(
            "test-fix",
            AgentActivities.security_run_gold_set,
            AgentAction(agent_id=agent_id, reason="test the fix"),
            summary=f"Gold set for agent {agent_id} on {fixed.version}",
        )
        observe_gold_set(self, test)
        if test is None or not test.passed:
            score = f"gold set {test.score:.0%} < {test.threshold:.0%}" if test else "gold set did not run"
            return await self._hand_over(agent_id, [f"rolled back to {fixed.version}", score])
        return "remediated", f"rolled back to {fixed.version}; gold set passed at {test.score:.0%}"

    async def _ask_about_isolation(self, agent_id: str, kind: str) -> None:
        """Count the isolation with the subsystem's other automatic actions. Its answer is audited, never
        waited on by a human: revoking access and pausing only take power away."""
        verdict = await ask_guardrail(
            self.subsystem,
            action_check(
                "isolate",
                action=f"revoke the tokens of agent {agent_id} and pause it",
                kind="isolate",
                risk=Risk.high,
                reason=f"security incident on {agent_id}: {kind}",
            ),
            self.incident.policy.guardrail_limits(self.subsystem),
        )
        await self.audit(
            "guardrail-isolate",
            action=f"ask guardrail {self.subsystem}: isolate agent {agent_id}",
            outcome=verdict.ruling.value,
            reason=verdict.reason,
        )
        if not verdict.allowed:
            self.note(
                "note",
                f"guardrail {self.subsystem} said {verdict.ruling.value} ({verdict.reason}); isolating anyway",
            )

    async def _hand_over(self, agent_id: str, tried: list[str]) -> tuple[str, str]:
        result = await hand_off(
            self,
            Handoff(
                trigger=Trigger.persistent_doubt,
                subject=agent_id,
                context=f"Security incident on {agent_id}: the automatic fix is not good enough.",
                tried=tried,
                options=AFTER_FAILED_FIX,
                recommendation="keep-isolated",
                priority=Severity.P0,
                requested_by=workflow.info().workflow_id,
            ),
        )
        chosen = result.chosen_option or "nothing"
        return "escalated", f"fix not verified ({'; '.join(tried)}); handed to a human, who chose {chosen}"
