"""The documents and reviews system: post-mortems, backlog stories, the hand-off desk (decisions handed to
a human) and the cockpit's report shelf.

Runbooks store and read what people read after, or during, an incident only through this interface.
Adapters: `http` (the contract, the sandbox's `/postmortems`, `/backlog/stories`, `/handoffs`, `/reports`).
Every effect is applied once per idempotency key.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import ClassVar

from activities.adapters import Adapter
from schemas.documents import (
    DocumentReceipt,
    HandoffDocument,
    HandoffExecution,
    HandoffRecord,
    PostmortemRequest,
    ReportDocument,
    StoryReceipt,
    StoryRequest,
)
from schemas.systems import SystemName


class Documents(Adapter):
    system: ClassVar[SystemName] = "documents"

    @abstractmethod
    async def store_postmortem(self, request: PostmortemRequest) -> DocumentReceipt:
        """Store the post-mortem of an incident beside the others (every runbook's goes here)."""

    @abstractmethod
    async def file_story(self, request: StoryRequest) -> StoryReceipt:
        """File a backlog story (a prevention item) for an incident."""

    @abstractmethod
    async def store_handoff(self, request: HandoffDocument) -> HandoffRecord:
        """Put a hand-off document on the desk, open, where the human it is for reads it."""

    @abstractmethod
    async def execute_handoff(self, request: HandoffExecution) -> HandoffRecord:
        """Carry out the option a person chose; refused for an option the hand-off does not offer, or
        for a hand-off already carried out."""

    @abstractmethod
    async def publish_report(self, request: ReportDocument) -> DocumentReceipt:
        """Put a report (the daily cockpit report) on the shelf."""
