"""The AI-agent platform: its interface, its adapters and the activities that call them."""

from activities.agents.activities import AgentActivities
from activities.agents.interface import Agents

__all__ = ["AgentActivities", "Agents"]
