"""Every workflow the worker runs: the runbooks, by the name alerts are routed to, and the guardrail
they all ask before an automatic action."""

from workflows.agent_emergency_stop import AgentEmergencyStop
from workflows.guardrail import Guardrail
from workflows.unrouted_alert import UnroutedAlert

RUNBOOKS: dict[str, type] = {
    "agent_emergency_stop": AgentEmergencyStop,
    "guardrail": Guardrail,
    # Audits an alert no route matched (the intake starts it); not a runbook, but the worker must run it.
    "unrouted_alert": UnroutedAlert,
}
