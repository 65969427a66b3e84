"""The gateway through the operator's own scripts (`[systems.gateway] adapter = "command"`): one command per
method of `Gateway` — above all the safe-restart script, never the service manager directly. The machinery,
the settings and the exit-code rule are `activities/command.py`; the example is examples/gateway/
(`gatewayctl`, `safe-restart`) wired in config/dev.toml."""

from __future__ import annotations

from activities.command import CommandAdapter
from activities.gateway.interface import Gateway


class CommandGateway(CommandAdapter, Gateway):
    """Each `Gateway` method runs `[systems.gateway.actions.<method>]`, or goes where `otherwise` says."""
