"""What the worker runs.

RUNBOOKS are the incident procedures, by the name a policy route starts them under. WORKFLOWS adds the
machinery around them that no route may start: the guardrail each runbook asks before an automatic action,
and the workflow that audits an alert no route matched.
"""

from workflows.agent_emergency_stop import AgentEmergencyStop
from workflows.guardrail import Guardrail
from workflows.unrouted_alert import UnroutedAlert

RUNBOOKS: dict[str, type] = {
    "agent_emergency_stop": AgentEmergencyStop,
}

WORKFLOWS: list[type] = [*RUNBOOKS.values(), Guardrail, UnroutedAlert]
