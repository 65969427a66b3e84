"""The documents and reviews system: the interface its runbooks act through; adapters implement it."""

from __future__ import annotations

from abc import abstractmethod
from typing import ClassVar

from activities.adapters import Adapter
from schemas.hotfix import (
    PostmortemReceipt,
    PostmortemRequest,
    StoryReceipt,
    StoryRequest,
)
from schemas.systems import SystemName


class Documents(Adapter):
    system: ClassVar[SystemName] = "documents"

    @abstractmethod
    async def store_postmortem(self, request: PostmortemRequest) -> PostmortemReceipt:
        """Store the post-mortem of an incident."""

    @abstractmethod
    async def file_story(self, request: StoryRequest) -> StoryReceipt:
        """File a backlog story (a prevention item) for an incident."""
