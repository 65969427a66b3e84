"""The documents and reviews system's activities: each calls the adapter the policy names (`[systems.documents]`).

The activity type names are those recorded histories hold; new ones follow `<system>_<verb>`. The
post-mortem has three names, one per runbook that recorded it — the war room's
(`deploys_store_postmortem`), the security incident's (`security_publish_postmortem`) and the
post-incident report's (`postmortem_store_report`): all stay registered, as the same call to the same
adapter method with the same request.
"""

from __future__ import annotations

from typing import Any

from temporalio import activity

from activities.documents.interface import Documents
from activities.heartbeat import heartbeating
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


class DocumentActivities:
    """Built once in the worker around the documents and reviews adapter."""

    def __init__(self, system: Documents) -> None:
        self._system = system

    # ---- post-mortems and their stories ---------------------------------------------------------------

    @activity.defn(name="deploys_store_postmortem")
    @heartbeating
    async def store_postmortem(self, request: PostmortemRequest) -> DocumentReceipt:
        return await self._system.store_postmortem(request)

    @activity.defn(name="security_publish_postmortem")
    @heartbeating
    async def security_publish_postmortem(self, request: PostmortemRequest) -> DocumentReceipt:
        return await self._system.store_postmortem(request)

    @activity.defn(name="postmortem_store_report")
    @heartbeating
    async def postmortem_store_report(self, request: PostmortemRequest) -> DocumentReceipt:
        return await self._system.store_postmortem(request)

    @activity.defn(name="deploys_file_story")
    @heartbeating
    async def file_story(self, request: StoryRequest) -> StoryReceipt:
        return await self._system.file_story(request)

    # ---- the hand-off desk ----------------------------------------------------------------------------

    @activity.defn(name="handoff_store_document")
    @heartbeating
    async def store_handoff(self, request: HandoffDocument) -> HandoffRecord:
        return await self._system.store_handoff(request)

    @activity.defn(name="handoff_execute_decision")
    @heartbeating
    async def execute_handoff(self, request: HandoffExecution) -> HandoffRecord:
        return await self._system.execute_handoff(request)

    # ---- the report shelf -----------------------------------------------------------------------------

    @activity.defn(name="report_publish")
    @heartbeating
    async def publish_report(self, request: ReportDocument) -> DocumentReceipt:
        return await self._system.publish_report(request)

    def all(self) -> list[Any]:
        """Every activity of this class, for the worker's list."""
        return [
            self.store_postmortem,
            self.security_publish_postmortem,
            self.postmortem_store_report,
            self.file_story,
            self.store_handoff,
            self.execute_handoff,
            self.publish_report,
        ]
