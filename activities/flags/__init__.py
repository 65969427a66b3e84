"""The feature flags system: its interface, its adapters and the activities that call them."""

from activities.flags.activities import FlagActivities
from activities.flags.interface import Flags

__all__ = ["FlagActivities", "Flags"]
