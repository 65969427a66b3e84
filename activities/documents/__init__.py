"""The documents and reviews system: its interface, its adapters and the activities that call them."""

from activities.documents.activities import DocumentActivities
from activities.documents.interface import Documents

__all__ = ["DocumentActivities", "Documents"]
