"""The gateway/runtime system: its interface, its adapters and the activities that call them."""

from activities.gateway.activities import GatewayActivities
from activities.gateway.interface import Gateway

__all__ = ["Gateway", "GatewayActivities"]
