"""The deploys and code system: its interface, its adapters and the activities that call them."""

from activities.deploys.activities import DeployActivities
from activities.deploys.interface import Deploys

__all__ = ["DeployActivities", "Deploys"]
