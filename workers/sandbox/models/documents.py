"""The document store's own state: the post-mortems, backlog stories, hand-offs and reports it keeps, with
the ids and times it gave them and a hand-off's status and log. The contract's bodies and answers are
`schemas/documents.py`."""

from __future__ import annotations

from typing import Literal

from schemas.documents import HandoffBody, PostmortemBody, ReportBody, StoryReceipt


class StoryRecord(StoryReceipt):
    at: str


class HandoffDesk(HandoffBody):
    status: Literal["open", "executed"] = "open"
    executed_option: str | None = None
    decided_by: str | None = None
    comment: str = ""
    log: list[str] = []


class PostMortem(PostmortemBody):
    postmortem_id: str
    at: str


class Report(ReportBody):
    at: str
