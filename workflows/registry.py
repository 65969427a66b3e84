"""What the worker runs.

RUNBOOKS are the incident procedures, by the name a policy route starts them under. WORKFLOWS adds the
machinery around them that no route may start: the guardrail each runbook asks before an automatic action,
the workflow that audits an alert no route matched (kept so its recorded histories replay), and the
triage incident the intake opens, by name, for an alert no runbook can act on; a human hands it to a
runbook, so no route names it; and the post-mortem a resolved incident opens for its learning.
"""

from workflows.agent_emergency_stop import AgentEmergencyStop
from workflows.agent_onboarding import AgentOnboarding
from workflows.agent_termination import AgentTermination
from workflows.agent_upgrade import AgentUpgrade
from workflows.channel_downtime import ChannelDowntime
from workflows.daily_cockpit_report import DailyCockpitReport
from workflows.dead_mans_switch import DeadMansSwitch
from workflows.escalation_to_human import EscalationToHuman
from workflows.gateway_safe_restart import GatewaySafeRestart
from workflows.guardrail import Guardrail
from workflows.hotfix_cycle import HotfixCycle
from workflows.lost_session import LostSession
from workflows.number_banned import NumberBanned
from workflows.postmortem import PostmortemWorkflow
from workflows.resource_pressure import ResourcePressure
from workflows.retry_storm import RetryStorm
from workflows.rollback import Rollback
from workflows.security_incident import SecurityIncident
from workflows.template_rejected import TemplateRejected
from workflows.triage import Triage
from workflows.unrouted_alert import UnroutedAlert
from workflows.war_room import WarRoom
from workflows.zombie_gateway import ZombieGateway

RUNBOOKS: dict[str, type] = {
    "agent_emergency_stop": AgentEmergencyStop,
    "agent_onboarding": AgentOnboarding,
    "agent_upgrade": AgentUpgrade,
    "agent_termination": AgentTermination,
    "escalation_to_human": EscalationToHuman,
    "security_incident": SecurityIncident,
    "gateway_safe_restart": GatewaySafeRestart,
    "retry_storm": RetryStorm,
    "resource_pressure": ResourcePressure,
    "lost_session": LostSession,
    "zombie_gateway": ZombieGateway,
    "war_room": WarRoom,
    "rollback": Rollback,
    "channel_downtime": ChannelDowntime,
    "number_banned": NumberBanned,
    "template_rejected": TemplateRejected,
    "dead_mans_switch": DeadMansSwitch,
}

WORKFLOWS: list[type] = [
    *RUNBOOKS.values(),
    HotfixCycle,
    Guardrail,
    UnroutedAlert,
    Triage,
    DailyCockpitReport,
    PostmortemWorkflow,
]


def roles_used() -> dict[str, tuple[str, ...]]:
    """Each workflow → the roles it asks to decide or notifies (its `uses_roles`), for the start-up check."""
    names = {cls: name for name, cls in RUNBOOKS.items()}
    return {
        names.get(cls, cls.__module__.rpartition(".")[2]): tuple(getattr(cls, "uses_roles", ()))
        for cls in WORKFLOWS
    }
