"""The documents and reviews system's activities: each calls the adapter the policy names (`[systems.documents]`).

The activity type names are those recorded histories hold (`deploys_…`); new ones follow `<system>_<verb>`.
"""

from __future__ import annotations

from temporalio import activity

from activities.documents.interface import Documents
from activities.heartbeat import heartbeating
from schemas.hotfix import (
    PostmortemReceipt,
    PostmortemRequest,
    StoryReceipt,
    StoryRequest,
)


class DocumentActivities:
    """Built once in the worker around the documents and reviews adapter."""

    def __init__(self, system: Documents) -> None:
        self._system = system

    @activity.defn(name="deploys_store_postmortem")
    @heartbeating
    async def store_postmortem(self, request: PostmortemRequest) -> PostmortemReceipt:
        return await self._system.store_postmortem(request)

    @activity.defn(name="deploys_file_story")
    @heartbeating
    async def file_story(self, request: StoryRequest) -> StoryReceipt:
        return await self._system.file_story(request)

    def all(self) -> list[object]:
        """Every activity of this class, for the worker's list."""
        return [
            self.store_postmortem,
            self.file_story,
        ]
