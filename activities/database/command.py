"""The application database through the operator's own scripts (`[systems.database] adapter = "command"`):
one command per method of `Database`, e.g. a backup script and the migration tool's downgrade. The
machinery, the settings and the exit-code rule are `activities/command.py`."""

from __future__ import annotations

from activities.command import CommandAdapter
from activities.database.interface import Database


class CommandDatabase(CommandAdapter, Database):
    """Each `Database` method runs `[systems.database.actions.<method>]`, or goes where `otherwise` says."""
