"""The application database system: its interface, its adapters and the activities that call them."""

from activities.database.activities import DatabaseActivities
from activities.database.interface import Database

__all__ = ["Database", "DatabaseActivities"]
