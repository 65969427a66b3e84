"""Documents and reviews over the documented HTTP contract (docs/platform-openapi.json), as the sandbox
implements it: `/postmortems`, `/backlog/stories`, `/handoffs`, `/reports`."""

from __future__ import annotations

from pydantic import BaseModel

from activities.documents.interface import Documents
from activities.http import HttpConnection, M
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


class HttpDocuments(HttpConnection, Documents):
    """Documents and reviews at the platform's base URL."""

    async def _post(self, path: str, key: str, body: BaseModel, result: type[M], what: str) -> M:
        return await self._http.effect(
            "POST", path, key=key, body=body.model_dump(mode="json"), result=result, what=what
        )

    async def store_postmortem(self, request: PostmortemRequest) -> DocumentReceipt:
        what = f"storing the post-mortem of {request.incident_id}"
        return await self._post(
            "/postmortems", request.idempotency_key, request.body(), DocumentReceipt, what
        )

    async def file_story(self, request: StoryRequest) -> StoryReceipt:
        return await self._post(
            "/backlog/stories", request.idempotency_key, request.body(), StoryReceipt, "backlog story"
        )

    async def store_handoff(self, request: HandoffDocument) -> HandoffRecord:
        what = f"storing handoff {request.handoff_id}"
        return await self._post("/handoffs", request.idempotency_key, request.body(), HandoffRecord, what)

    async def execute_handoff(self, request: HandoffExecution) -> HandoffRecord:
        path = f"/handoffs/{request.handoff_id}/execute"
        what = f"carrying out {request.option} for handoff {request.handoff_id}"
        return await self._post(path, request.idempotency_key, request.body(), HandoffRecord, what)

    async def publish_report(self, request: ReportDocument) -> DocumentReceipt:
        what = f"publishing report {request.report_id}"
        return await self._post("/reports", request.idempotency_key, request.body(), DocumentReceipt, what)
