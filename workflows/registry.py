"""Every runbook the worker runs, by the name alerts are routed to."""

from workflows.agent_emergency_stop import AgentEmergencyStop

RUNBOOKS: dict[str, type] = {
    "agent_emergency_stop": AgentEmergencyStop,
}
