"""Documents and reviews over the documented HTTP contract (docs/platform-openapi.json), as the sandbox implements it.

Reads carry the idempotency key too: the platform ignores it for a GET, and the call log stays uniform.
"""

from __future__ import annotations

from typing import Any

from activities.documents.interface import Documents
from activities.http import HttpConnection, M
from schemas.hotfix import (
    PostmortemReceipt,
    PostmortemRequest,
    StoryReceipt,
    StoryRequest,
)


class HttpDocuments(HttpConnection, Documents):
    """Documents and reviews at the platform's base URL."""

    async def _call(
        self, method: str, path: str, key: str, result: type[M], what: str, body: Any = None
    ) -> M:
        return await self._http.effect(method, path, key=key, body=body, result=result, what=what)

    async def _post(self, path: str, key: str, result: type[M], what: str, body: Any = None) -> M:
        """A POST; an effect without a body of its own sends `{}`."""
        return await self._call("POST", path, key, result, what, {} if body is None else body)

    async def store_postmortem(self, request: PostmortemRequest) -> PostmortemReceipt:
        # The platform's document store speaks its own field names; the timeline goes as readable lines.
        postmortem = request.postmortem
        body = {
            "incident_id": postmortem.incident_id,
            "subject": postmortem.title,
            "what_happened": f"{postmortem.severity} incident on {postmortem.service}",
            "root_cause": postmortem.root_cause,
            "impact": postmortem.impact,
            "remediation": postmortem.response,
            "prevention": postmortem.prevention,
            "timeline": [
                f"{entry.at:%Y-%m-%d %H:%M:%S} [{entry.kind}] {entry.actor}: {entry.text}"
                for entry in postmortem.timeline
            ],
        }
        stored = await self._http.call(
            "POST", "/postmortems", what="post-mortem", key=request.idempotency_key, body=body
        )
        return PostmortemReceipt(
            id=stored["id"], incident_id=postmortem.incident_id, replayed=stored.get("replayed", False)
        )

    async def file_story(self, request: StoryRequest) -> StoryReceipt:
        body = {"incident_id": request.incident_id, "title": request.title}
        return await self._post(
            "/backlog/stories", request.idempotency_key, StoryReceipt, "backlog story", body
        )
