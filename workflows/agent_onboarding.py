"""Agent onboarding: someone needs a new agent; Stanch takes it from the request to a tested, live agent.

Three drafts go to the owner one after the other — the scope of the job, the job description, and the
capabilities manifest (tools and permissions) — and each needs its own approval: a rejection, or nobody
answering, ends the onboarding with nothing deployed. Then the agent is deployed (workspace, config),
health-checked and announced, and run against its gold set. It starts serving only once it passes; a failed
run is debugged and retried a bounded number of times, with a pause between, and then handed to a human.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.agents import AgentActivities
    from schemas.agents import AgentAction, ConfigRequest, WorkspaceRequest
    from schemas.approvals import ApprovalRequest
    from schemas.incidents import IncidentInput, IncidentResult
    from schemas.targets import AgentOnboardingTarget
    from workflows.steps.failures import page_failure
    from workflows.steps.incident import IncidentWorkflow
    from workflows.steps.patches import patched
    from workflows.steps.roles import owner_or
    from workflows.steps.system_state import observe, observe_agent, observe_gold_set

OWNER_ROLES_BEFORE = ["lead"]  # who decided before the owner role existed (owner_or)
FIRST_VERSION = "v1"
DEFAULT_TOOLS = "knowledge-base:read"
# A failed gold set is debugged and rerun this many times before a human takes over.
MAX_RETRIES = 3
RETRY_PAUSE = timedelta(minutes=10)


@workflow.defn(name="agent_onboarding")
class AgentOnboarding(IncidentWorkflow):
    target_model = AgentOnboardingTarget  # what it acts on: schemas/targets.py
    uses_roles = ("owner", "oncall")  # the worker checks [roles]

    @workflow.run
    async def run(self, incident: IncidentInput) -> IncidentResult:
        agent_id = incident.target["agent_id"]
        role = incident.target.get("role", "assistant")
        tools = [
            tool.strip() for tool in incident.target.get("tools", DEFAULT_TOOLS).split(",") if tool.strip()
        ]
        need = incident.summary
        self.open(
            recommendation=f"Approve the scope, job description and capabilities of agent {agent_id}",
            risk_if_no_action=f"Agent {agent_id} is not created and the need stays unserved: {need}",
        )

        # 1-3. Scope, job description, capabilities manifest: each approved on its own, in this order.
        scope = f"Agent {agent_id}, a level-1 {role}, for: {need}. Anything outside this is escalated."
        job = (
            f"Role: {role}. Mission: {need}. Answers to its owner. Done well when it passes its gold set "
            "and escalates what it is unsure of."
        )
        manifest = f"Tools: {', '.join(tools)}. Permissions: level 1, nothing destructive without approval."
        drafts = [
            ("approve-scope", "scope", scope),
            ("approve-job-description", "job description", job),
            ("approve-capabilities", "capabilities manifest", manifest),
        ]
        for action, what, draft in drafts:
            decision = await self.gate.ask(
                ApprovalRequest(
                    action=action,
                    recommendation=f"Approve the {what} of agent {agent_id}: {draft}",
                    risk=f"Agent {agent_id} is not created; the need stays unserved",
                    allowed_roles=owner_or(self.incident.policy, OWNER_ROLES_BEFORE),
                    safe_default=f"deploy nothing; agent {agent_id} is not created",
                )
            )
            if not decision.approved:
                return await self.finish("escalated" if decision.timed_out else "rejected")

        # 4. Deploy: workspace, config, health check, then tell the owner.
        self.set_state("deploying")
        workspace = await self.act(
            "workspace",
            AgentActivities.create_workspace,
            WorkspaceRequest(
                agent_id=agent_id,
                files={"SCOPE.md": scope, "JOB.md": job, "CAPABILITIES.md": manifest},
            ),
            summary=f"Create the workspace of agent {agent_id}",
        )
        config = None
        if workspace is not None:
            config = await self.act(
                "config",
                AgentActivities.inject_config,
                ConfigRequest(
                    agent_id=agent_id,
                    version=FIRST_VERSION,
                    config={"role": role, "tools": tools, "level": "L1"},
                    reason="onboarding",
                ),
                summary=f"Inject the config of agent {agent_id} {FIRST_VERSION}",
            )
        health = None
        if config is not None:
            health = await self.act(
                "health-check",
                AgentActivities.health_check,
                AgentAction(agent_id=agent_id),
                summary=f"Health check of agent {agent_id}",
            )
            if health is not None:
                observe(
                    self,
                    f"health of agent {agent_id}",
                    "healthy" if health.healthy else f"unhealthy: {health.detail}",
                )
        if health is None or not health.healthy:
            why = health.detail if health else "the deploy did not complete"
            await self.notify(
                "deploy-failed",
                channel="owner",
                title=f"Agent {agent_id} could not be deployed",
                text=f"{why}. The agent serves nobody; the deploy needs a person.",
            )
            return await self.finish("deploy_failed")
        await self.notify(
            "deployed",
            channel="owner",
            title=f"Agent {agent_id} deployed",
            text=f"Agent {agent_id} ({role}, tools: {', '.join(tools)}) is deployed and healthy; "
            "it starts serving once it passes its gold set.",
        )

        # 5. Test: pass the gold set to go live; otherwise debug, wait, retry; past the limit, a human.
        self.set_state("testing")
        for attempt in range(1, MAX_RETRIES + 2):
            gold = await self.act(
                f"gold-set-{attempt}",
                AgentActivities.run_gold_set,
                AgentAction(agent_id=agent_id),
                summary=f"Run the gold set on agent {agent_id} (attempt {attempt})",
            )
            observe_gold_set(self, gold, label=f"attempt {attempt} of {MAX_RETRIES + 1}")
            if gold is not None and gold.passed:
                return await self.go_live(agent_id, gold.version, gold.score)
            if attempt > MAX_RETRIES:
                break
            fixed = await self.act(
                f"debug-{attempt}",
                AgentActivities.debug,
                AgentAction(
                    agent_id=agent_id,
                    reason=f"gold set attempt {attempt} failed",
                ),
                summary=f"Debug agent {agent_id} after gold set attempt {attempt}",
            )
            if fixed is None:
                break
            await workflow.sleep(RETRY_PAUSE, summary=f"pause before gold set attempt {attempt + 1}")

        # The first escalation level hears it, like an approval nobody answered.
        levels = incident.policy.escalation
        await self.page_level(
            "gold-set-escalation",
            levels[0] if levels else None,
            title=f"Agent {agent_id} keeps failing its gold set",
            text=f"Agent {agent_id} failed its gold set after {MAX_RETRIES} debug-and-retry rounds. "
            "It is deployed but serves nobody; a person has to look at it.",
        )
        return await self.finish("escalated")

    async def go_live(self, agent_id: str, version: str, score: float) -> IncidentResult:
        live = await self.act(
            "activate",
            AgentActivities.activate,
            AgentAction(agent_id=agent_id, reason="gold set passed"),
            summary=f"Put agent {agent_id} {version} in service",
        )
        if live is not None:
            observe_agent(self, live)
        if live is None:
            if patched("agent_onboarding-activate-failure-pages"):
                await page_failure(
                    self,
                    "activate-failed",
                    what=f"putting agent {agent_id} {version} in service after it passed its gold set",
                    state_left=f"agent {agent_id} is deployed and passed its gold set ({score:.0%}) but serves "
                    "nobody; resume it by hand",
                )
            return await self.finish("action_failed")
        await self.notify(
            "operational",
            channel="owner",
            title=f"Agent {agent_id} is operational",
            text=f"Agent {agent_id} {version} passed its gold set ({score:.0%}) and is now serving.",
        )
        return await self.finish("operational")
