"""Agent termination: retire an agent for good (its mission is over, it was replaced, it fell short).

A human confirms first; the action is destructive, so during a P0 two different people must. The agent is
paused, so that what it holds stops changing, and its workspace, memory and logs go into an archive, which
is then read back from the store. Only an archive that reads back unlocks the part that cannot be undone:
terminate the agent, revoke its tokens, delete its secrets, and keep the archive until its retention date.
A final report goes to the owner, and every agent that depends on this one is told that it is gone.

Right before that irreversible part the agent's guardrail (subsystem: the agent's id, the one a security
incident on the agent engages) judges it as a critical, destructive action: with the kill switch engaged, or
its critical window full, a human is asked again, told why, and until then the agent stays paused and
archived with nothing revoked or deleted.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.agents import AgentActivities
    from schemas.agents import AgentAction, ArchiveCheck, ArchiveResult, NoticeRequest, RetentionRequest
    from schemas.approvals import ApprovalRequest
    from schemas.guardrail import Risk
    from schemas.incidents import IncidentInput, IncidentResult
    from schemas.targets import AgentTarget
    from workflows.steps.failures import page_failure
    from workflows.steps.guardrail import action_check, clear_with_guardrail
    from workflows.steps.incident import IncidentWorkflow
    from workflows.steps.patches import patched
    from workflows.steps.roles import owner_or
    from workflows.steps.system_state import observe, observe_agent

# How long a terminated agent's archive is kept before it may be purged.
ARCHIVE_RETENTION = timedelta(days=365)
APPROVER_ROLES_BEFORE = ["lead", "oncall"]  # who confirmed before the owner role existed (owner_or)
# Runs recorded before went from a verified archive straight to the clean-up, without asking the guardrail.
CLEANUP_ASKS_GUARDRAIL_PATCH = "agent_termination-cleanup-asks-the-guardrail"


@workflow.defn(name="agent_termination")
class AgentTermination(IncidentWorkflow):
    target_model = AgentTarget  # what it acts on: schemas/targets.py
    uses_roles = ("owner", "oncall")  # the worker checks [roles]

    @workflow.run
    async def run(self, incident: IncidentInput) -> IncidentResult:
        agent_id = incident.target["agent_id"]
        self.open(
            recommendation=f"Archive agent {agent_id}, then terminate it and remove its credentials",
            risk_if_no_action=f"Agent {agent_id} keeps running with its tokens and secrets",
        )

        # 1. Confirmation: nothing happens to the agent without it.
        decision = await self.gate.ask(
            ApprovalRequest(
                action="terminate",
                recommendation=f"Terminate agent {agent_id} once its workspace, memory and logs are archived",
                risk=f"Agent {agent_id} keeps running and keeps its access",
                allowed_roles=owner_or(self.incident.policy, APPROVER_ROLES_BEFORE),
                destructive=True,
                safe_default=f"keep agent {agent_id} as it is: nothing archived, revoked or deleted",
            )
        )
        if not decision.approved:
            return await self.finish("escalated" if decision.timed_out else "kept")
        lessons = decision.comment or "none recorded"

        # 2. Archive: stop the agent answering so the copy is whole, copy, then read the copy back.
        self.set_state("archiving")
        paused = await self.act(
            "pause",
            AgentActivities.pause_agent,
            AgentAction(agent_id=agent_id, reason="termination"),
            summary=f"Pause agent {agent_id}",
            actor=decision.decided_by,
        )
        if paused is not None:
            observe_agent(self, paused)
        archive = None
        if paused is not None:
            archive = await self.act(
                "archive",
                AgentActivities.archive,
                AgentAction(agent_id=agent_id, reason="termination"),
                summary=f"Archive workspace, memory and logs of agent {agent_id}",
            )
        verified = None
        if archive is not None:
            verified = await self.act(
                "verify-archive",
                AgentActivities.verify_archive,
                ArchiveCheck(agent_id=agent_id, archive_id=archive.archive_id),
                summary=f"Read back archive {archive.archive_id}",
            )
            observe(self, "archive", archive_text(archive, verified))
        if archive is None or verified is None or not _same_contents(archive, verified):
            await self.notify(
                "archive-failed",
                channel="on-call",
                title=f"Agent {agent_id} not terminated: no confirmed archive",
                text=f"The archive of agent {agent_id} could not be made or read back, so nothing was "
                "terminated, revoked or deleted. Archive it by hand (it is paused if the pause went through), "
                "then ask again.",
            )
            return await self.finish("archive_failed")

        # 3. Clean-up, now that everything is safe in the archive, if the agent's guardrail lets it run: each
        #    step is tried, failures are kept.
        if patched(CLEANUP_ASKS_GUARDRAIL_PATCH):
            cleared = await clear_with_guardrail(
                self,
                agent_id,
                action_check(
                    "terminate",
                    action=f"terminate agent {agent_id}, revoke its tokens and delete its secrets",
                    kind="terminate",
                    risk=Risk.critical,
                    reason=f"confirmed by {decision.decided_by}; archive {archive.archive_id} verified",
                    destructive=True,
                ),
                ApprovalRequest(
                    action="terminate-past-guardrail",
                    recommendation=f"Terminate agent {agent_id} (confirmed by {decision.decided_by}; archive "
                    f"{archive.archive_id} verified), revoke its tokens and delete its secrets",
                    risk=f"Agent {agent_id} stays paused, keeping its tokens and secrets",
                    allowed_roles=owner_or(self.incident.policy, APPROVER_ROLES_BEFORE),
                    destructive=True,
                    safe_default=f"keep agent {agent_id} paused and archived in {archive.archive_id}; nothing "
                    "terminated, revoked or deleted",
                ),
            )
            if not cleared.go:
                return await self.finish("escalated" if cleared.timed_out else "kept")
        self.set_state("cleaning_up")
        step = AgentAction(agent_id=agent_id, reason=f"terminated: {lessons}")
        cleanup = [
            ("terminate", AgentActivities.terminate, f"Terminate agent {agent_id}"),
            (
                "revoke-tokens",
                AgentActivities.revoke_tokens,
                f"Revoke the tokens of agent {agent_id}",
            ),
            (
                "delete-secrets",
                AgentActivities.delete_secrets,
                f"Delete the secrets of agent {agent_id}",
            ),
        ]
        failed = [
            summary
            for key, effect, summary in cleanup
            if await self.act(key, effect, step, summary=summary) is None
        ]
        if f"Terminate agent {agent_id}" not in failed:
            observe(self, f"agent {agent_id}", "terminated")
        observe(
            self, "clean-up", f"failed: {'; '.join(failed)}" if failed else "tokens revoked, secrets deleted"
        )
        until = workflow.now() + ARCHIVE_RETENTION
        retention = await self.act(
            "retention",
            AgentActivities.set_retention,
            RetentionRequest(
                agent_id=agent_id,
                archive_id=archive.archive_id,
                until=until,
            ),
            summary=f"Keep archive {archive.archive_id} until {until:%Y-%m-%d}",
        )
        if retention is None:
            failed.append(f"retention of {archive.archive_id}")

        # 4. Documentation: the final report to the owner and the cockpit, and the termination log row.
        outcome = "terminated" if not failed else "cleanup_incomplete"
        dependents = await self.act(
            "dependents",
            AgentActivities.dependents,
            AgentAction(agent_id=agent_id),
            summary=f"List the agents that depend on {agent_id}",
        )
        names = dependents.dependents if dependents else []
        await self.notify(
            "final-report",
            channel="owner",
            title=f"Agent {agent_id} terminated" if not failed else f"Agent {agent_id}: clean-up incomplete",
            text=f"Archive {archive.archive_id} ({verified.files} files, {verified.memory_items} memories, "
            f"{verified.log_entries} log entries) kept until {until:%Y-%m-%d}. Lessons learned: {lessons}. "
            f"Dependent agents: {', '.join(names) or 'none'}."
            + (f" Still to do by hand: {'; '.join(failed)}." if failed else ""),
        )
        if failed and patched("agent_termination-cleanup-failure-pages"):
            # The owner's report lists what is left; on-call must hear it too: a live token is a live risk.
            left = {
                f"Terminate agent {agent_id}": f"agent {agent_id} is paused, not terminated",
                f"Revoke the tokens of agent {agent_id}": "its tokens still work",
                f"Delete the secrets of agent {agent_id}": "its secrets are still stored",
                f"retention of {archive.archive_id}": f"archive {archive.archive_id} has no retention date",
            }
            await page_failure(
                self,
                "cleanup-failed",
                what=f"the clean-up of agent {agent_id}: {'; '.join(failed)}",
                state_left=f"archive {archive.archive_id} holds everything; "
                + ", ".join(left[step] for step in failed)
                + ". Finish the clean-up by hand",
            )
        await self.audit(
            "termination-log",
            action=f"terminate agent {agent_id}",
            outcome=outcome,
            actor=decision.decided_by,
            reason=f"archive {archive.archive_id} kept until {until:%Y-%m-%d}; lessons learned: {lessons}",
            details={"archive": archive.archive_id, "retention_until": until.isoformat()},
        )

        # 5. Communication: every dependent agent hears that this one is gone.
        for name in names:
            await self.act(
                f"inform-{name}",
                AgentActivities.notify_dependent,
                NoticeRequest(
                    agent_id=name,
                    from_agent=agent_id,
                    text=f"Agent {agent_id} was terminated; stop routing work to it.",
                ),
                summary=f"Tell agent {name} that {agent_id} is gone",
            )
        return await self.finish(outcome)


def archive_text(written: ArchiveResult, read_back: ArchiveResult | None) -> str:
    contents = f"{written.files} files, {written.memory_items} memories, {written.log_entries} log entries"
    if read_back is None:
        return f"{written.archive_id} ({contents}), not read back"
    same = "read back whole" if _same_contents(written, read_back) else "read back DIFFERENT"
    return f"{written.archive_id} ({contents}), {same}"


def _same_contents(written: ArchiveResult, read_back: ArchiveResult) -> bool:
    """The archive read back holds everything that was written: files, memories and log entries."""
    return (written.files, written.memory_items, written.log_entries) == (
        read_back.files,
        read_back.memory_items,
        read_back.log_entries,
    )
