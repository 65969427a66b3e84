"""Rollback: put one service back the way it was, by the kind of change that broke it (alert label `kind`).

- code: find the service's last stable deploy and, once a human approves, roll the live one back to it.
- database: find the migration to reverse; take a backup of the data as it is now and verify it — without
  a verified backup nothing is touched, ever; then, once approved (two people on a P0, as for every
  destructive step), run the reverse migration and check the data's integrity.
  The reverse migration is critical and destructive, so right before it runs the service's guardrail
  (subsystem: the service) judges it: with the kill switch engaged, or its critical window full, a human
  is asked again, told why, and until then the migration stays applied.
- infrastructure: revert the service's deploy configuration to the previous version, once approved.

Nobody answers: the escalation chain is walked, and the service is left as it is.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.database import DatabaseActivities
    from activities.deploys import DeployActivities
    from schemas.approvals import ApprovalOutcome, ApprovalRequest
    from schemas.database import BackupRef, MigrateDown
    from schemas.deploys import ServiceRequest
    from schemas.guardrail import Risk
    from schemas.incidents import IncidentInput, IncidentResult
    from schemas.targets import RollbackTarget
    from workflows.steps.approve_then_act import FailurePage, approve_then_act
    from workflows.steps.failures import page_failure
    from workflows.steps.guardrail import action_check, clear_with_guardrail
    from workflows.steps.incident import IncidentWorkflow
    from workflows.steps.patches import patched
    from workflows.steps.system_state import (
        observe,
        observe_alert_figures,
        observe_database,
        observe_deploys,
        observe_infra,
    )

KINDS = {
    "code": "code",
    "deploy": "code",
    "database": "database",
    "db": "database",
    "infrastructure": "infrastructure",
    "infra": "infrastructure",
}
APPROVERS = ["oncall", "lead"]
# Runs recorded before reversed an approved migration without asking the service's guardrail.
MIGRATE_DOWN_ASKS_GUARDRAIL_PATCH = "rollback-migrate-down-asks-the-guardrail"


@workflow.defn(name="rollback")
class Rollback(IncidentWorkflow):
    target_model = RollbackTarget  # what it acts on: schemas/targets.py
    uses_roles = ("oncall", "lead")  # the worker checks [roles]

    @workflow.run
    async def run(self, incident: IncidentInput) -> IncidentResult:
        service = incident.target.get("service") or incident.service
        kind = KINDS.get(incident.target.get("kind", "code").lower())
        self.open(
            recommendation=f"Roll {service} back ({kind or 'unknown kind'}) to its last known good state",
            risk_if_no_action=f"{service} keeps running the change that broke it",
        )
        observe_alert_figures(self, incident.alert)
        if kind == "database":
            return await self.database(service)
        if kind == "infrastructure":
            return await self.infrastructure(service)
        if kind == "code":
            return await self.code(service)
        await self.notify(
            "unknown-kind",
            channel="on-call",
            title=f"Rollback of {service}: unknown kind",
            text=f"The alert asks for a {incident.target.get('kind')!r} rollback; expected code, database "
            "or infrastructure. Nothing was done.",
        )
        return await self.finish("unknown_kind")

    # ---- code -----------------------------------------------------------------------------------------

    async def code(self, service: str) -> IncidentResult:
        deploys = await self.act(
            "find-deploy",
            DeployActivities.recent_deploys,
            self.service_request(service),
            summary=f"Recent deploys of {service}",
        )
        observe_deploys(self, service, deploys)
        if deploys is None:
            if patched("rollback-find-deploy-failure-pages"):
                await page_failure(
                    self,
                    "find-deploy-failed",
                    what=f"reading the recent deploys of {service}",
                    state_left=f"nothing was rolled back; {service} keeps running its live deploy. "
                    "Find its last stable deploy and roll back by hand",
                )
            return await self.finish("action_failed")
        live = deploys.live
        if live is None or not deploys.rollback_possible:
            return await self.nothing_to_do(service, "no earlier live deploy to go back to")
        rolled = await approve_then_act(
            self,
            ApprovalRequest(
                action="rollback-deploy",
                recommendation=f"Roll {service} back from {live.version} to its previous stable deploy",
                risk=f"{service} keeps running {live.version}",
                allowed_roles=APPROVERS,
                safe_default=f"keep {live.version} live",
            ),
            "rollback-deploy",
            DeployActivities.rollback_service,
            lambda decision: self.service_request(service, reason=decision.comment),
            summary=f"Roll back {service} from {live.version}",
            if_failed=FailurePage(
                "rollback-code-rollback-failure-pages",
                "rollback-deploy-failed",
                what=f"rolling {service} back from {live.version}",
                state_left=f"{service} still runs {live.version}; roll it back by hand",
            ),
        )
        if not rolled.approved:
            return await self.declined(rolled.decision)
        if rolled.result is not None:
            observe(
                self,
                f"deploy of {service}",
                f"{rolled.result.restored_version} (rolled back from {live.version})",
            )
        return await self.finish("rolled_back" if rolled.done else "action_failed")

    # ---- database -------------------------------------------------------------------------------------

    async def database(self, service: str) -> IncidentResult:
        state = await self.act(
            "find-migration",
            DatabaseActivities.database_state,
            self.service_request(service),
            summary=f"Applied migrations of {service}",
        )
        if state is not None:
            observe_database(self, service, state)
        if state is None:
            if patched("rollback-find-migration-failure-pages"):
                await page_failure(
                    self,
                    "find-migration-failed",
                    what=f"reading the applied migrations of {service}",
                    state_left="no backup was taken and no migration reversed; the database is untouched",
                )
            return await self.finish("action_failed")
        if len(state.migrations) < 2:
            return await self.nothing_to_do(service, "no migration after the initial schema to reverse")
        migration = state.migrations[-1]

        # Never touch production data without a backup of it as it is now, verified to be restorable.
        backup = await self.act(
            "backup",
            DatabaseActivities.backup_database,
            self.service_request(service),
            summary=f"Back up {service}'s database before reversing {migration}",
        )
        verified = None
        if backup is not None:
            verified = await self.act(
                "verify-backup",
                DatabaseActivities.verify_backup,
                BackupRef(service=service, backup_id=backup.id),
                summary=f"Verify backup {backup.id}",
            )
        if backup is not None:
            verdict = "verified" if verified is not None and verified.verified else "NOT verified"
            observe(self, "backup", f"{backup.id} of {backup.rows} rows, {verdict}")
        if backup is None or verified is None or not verified.verified:
            what = f"backup {backup.id} failed verification" if backup else "the backup failed"
            await self.notify(
                "no-backup",
                channel="on-call",
                title=f"Database rollback of {service} blocked: no verified backup",
                text=f"{self.incident.summary}. {what}; migration {migration} was not reversed and no data "
                "was touched. Fix the backup first.",
            )
            return await self.finish("blocked_no_backup")

        decision = await self.gate.ask(
            ApprovalRequest(
                action="migrate-down",
                recommendation=f"Reverse migration {migration} on {service}; verified backup {backup.id} "
                "holds the data as it is now",
                risk=f"{service} keeps the schema of {migration}",
                allowed_roles=APPROVERS,
                destructive=True,
                safe_default=f"leave {migration} applied; keep backup {backup.id}",
            )
        )
        if not decision.approved:
            return await self.declined(decision)
        migrate_by = decision.decided_by
        if patched(MIGRATE_DOWN_ASKS_GUARDRAIL_PATCH):
            cleared = await clear_with_guardrail(
                self,
                service,
                action_check(
                    "migrate-down",
                    action=f"reverse migration {migration} on {service}",
                    kind="migrate-down",
                    risk=Risk.critical,
                    reason=f"approved by {decision.decided_by}; verified backup {backup.id}",
                    destructive=True,
                ),
                ApprovalRequest(
                    action="migrate-down-past-guardrail",
                    recommendation=f"Reverse migration {migration} on {service} (approved by "
                    f"{decision.decided_by}; verified backup {backup.id})",
                    risk=f"{service} keeps the schema of {migration}",
                    allowed_roles=APPROVERS,
                    destructive=True,
                    safe_default=f"leave {migration} applied; keep backup {backup.id}",
                ),
            )
            if not cleared.go:
                return await self.finish("escalated" if cleared.timed_out else "declined")
            if cleared.decision is not None:
                migrate_by = cleared.by
        reversed_ = await self.act(
            "migrate-down",
            DatabaseActivities.migrate_down,
            MigrateDown(
                service=service,
                backup_id=backup.id,
                migration=migration,
            ),
            summary=f"Reverse migration {migration} on {service}",
            actor=migrate_by,
        )
        if reversed_ is not None:
            observe_database(self, service, reversed_)
        if reversed_ is None:
            if patched("rollback-migrate-down-failure-pages"):
                await page_failure(
                    self,
                    "migrate-down-failed",
                    what=f"reversing migration {migration} on {service} (approved by {decision.decided_by})",
                    state_left=f"{migration} may be partly reversed: check the schema of {service}; verified "
                    f"backup {backup.id} holds the data from before",
                )
            return await self.finish("action_failed")

        integrity = await self.act(
            "integrity-check",
            DatabaseActivities.check_integrity,
            self.service_request(service),
            summary=f"Check data integrity of {service}",
        )
        observe(
            self,
            "data integrity",
            ("ok" if integrity.ok else f"FAILED: {integrity.detail}") if integrity else "not checked",
        )
        if integrity is None or not integrity.ok:
            await self.notify(
                "integrity-failed",
                channel="on-call",
                title=f"Integrity check failed on {service} after reversing {migration}",
                text=f"{integrity.detail if integrity else 'the check did not run'}. Backup {backup.id} holds "
                "the data from before; restoring it is a human's call.",
            )
            return await self.finish("integrity_failed")
        return await self.finish("rolled_back")

    # ---- infrastructure -------------------------------------------------------------------------------

    async def infrastructure(self, service: str) -> IncidentResult:
        infra = await self.act(
            "find-config",
            DeployActivities.infra_status,
            self.service_request(service),
            summary=f"Deploy configuration of {service}",
        )
        observe_infra(self, service, infra)
        if infra is None:
            if patched("rollback-find-config-failure-pages"):
                await page_failure(
                    self,
                    "find-config-failed",
                    what=f"reading the deploy configuration of {service}",
                    state_left=f"nothing was reverted; {service} keeps its current configuration",
                )
            return await self.finish("action_failed")
        if infra.previous_config_version is None:
            return await self.nothing_to_do(service, "no previous configuration to revert to")
        reverted = await approve_then_act(
            self,
            ApprovalRequest(
                action="revert-config",
                recommendation=f"Revert {service}'s configuration from {infra.config_version} "
                f"to {infra.previous_config_version}",
                risk=f"{service} keeps configuration {infra.config_version} ({infra.status})",
                allowed_roles=APPROVERS,
                safe_default=f"keep configuration {infra.config_version}",
            ),
            "revert-config",
            DeployActivities.revert_infra_config,
            lambda decision: self.service_request(service, reason=decision.comment),
            summary=f"Revert {service} to configuration {infra.previous_config_version}",
            if_failed=FailurePage(
                "rollback-revert-config-failure-pages",
                "revert-config-failed",
                what=f"reverting {service} to configuration {infra.previous_config_version}",
                state_left=f"{service} keeps configuration {infra.config_version} ({infra.status}); "
                "revert it by hand",
            ),
        )
        if not reverted.approved:
            return await self.declined(reverted.decision)
        if reverted.result is not None:
            observe_infra(self, service, reverted.result)
        return await self.finish("rolled_back" if reverted.done else "action_failed")

    # ---- shared endings -------------------------------------------------------------------------------

    def service_request(self, service: str, reason: str = "") -> ServiceRequest:
        """A request about `service`, for the incident's own reason unless a decision gave one."""
        return ServiceRequest(service=service, reason=reason or self.incident.summary)

    async def declined(self, decision: ApprovalOutcome) -> IncidentResult:
        return await self.finish("escalated" if decision.timed_out else "declined")

    async def nothing_to_do(self, service: str, why: str) -> IncidentResult:
        await self.notify(
            "nothing-to-roll-back",
            channel="on-call",
            title=f"Nothing to roll back on {service}",
            text=f"{self.incident.summary}. {why.capitalize()}; nothing was changed.",
        )
        return await self.finish("nothing_to_roll_back")
