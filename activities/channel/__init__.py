"""The customer messaging channel: its interface, its adapters and the activities that call them."""

from activities.channel.activities import ChannelActivities
from activities.channel.interface import Channel

__all__ = ["Channel", "ChannelActivities"]
