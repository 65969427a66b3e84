"""Documents and reviews: post-mortems, backlog stories, hand-offs and the cockpit's report shelf.

Hand-offs are the operator's desk for decisions handed to humans."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException

from schemas.documents import (
    DocumentReceipt,
    HandoffBody,
    HandoffDecision,
    HandoffRecord,
    PostmortemBody,
    ReportBody,
    StoryBody,
    StoryReceipt,
)
from workers.sandbox.common import found_or_404, now_iso
from workers.sandbox.dependencies import SandboxDep, require_idempotency_key
from workers.sandbox.models.documents import HandoffDesk, PostMortem, Report, StoryRecord

# Reads: not effects a runbook performs, so no key is needed.
router = APIRouter()
# Everything on this router changes the stand-in's state, so it must be safe to retry.
effects = APIRouter(dependencies=[Depends(require_idempotency_key)])


@effects.post("/backlog/stories", status_code=201)
async def file_story(sandbox: SandboxDep, body: StoryBody) -> StoryReceipt:
    story = StoryRecord(**body.model_dump(), id=f"story-{len(sandbox.stories) + 1}", at=now_iso())
    sandbox.stories.append(story)
    return story


@router.get("/backlog/stories")
async def list_stories(sandbox: SandboxDep, incident_id: str = "") -> list[StoryRecord]:
    return [story for story in sandbox.stories if not incident_id or story.incident_id == incident_id]


@effects.post("/handoffs", status_code=201)
async def open_handoff(sandbox: SandboxDep, body: HandoffBody) -> HandoffRecord:
    desk = HandoffDesk(**body.model_dump(), log=[f"{now_iso()} opened ({body.priority})"])
    sandbox.handoffs[body.handoff_id] = desk
    return HandoffRecord(handoff_id=desk.handoff_id, status=desk.status)


@router.get("/handoffs")
async def list_handoffs(sandbox: SandboxDep) -> list[HandoffDesk]:
    return list(sandbox.handoffs.values())


@router.get("/handoffs/{handoff_id}")
async def get_handoff(sandbox: SandboxDep, handoff_id: str) -> HandoffDesk:
    return found_or_404(sandbox.handoffs, handoff_id, f"unknown handoff {handoff_id}")


@effects.post("/handoffs/{handoff_id}/execute")
async def execute_handoff(sandbox: SandboxDep, handoff_id: str, body: HandoffDecision) -> HandoffRecord:
    desk = await get_handoff(sandbox, handoff_id)
    if desk.status == "executed":
        raise HTTPException(409, f"handoff {handoff_id} was already carried out ({desk.executed_option})")
    names = [option.get("name") for option in desk.handoff.get("options", [])]
    if names and body.option not in names:
        raise HTTPException(409, f"{body.option!r} is not an option of handoff {handoff_id}: {names}")
    desk.status, desk.executed_option = "executed", body.option
    desk.decided_by, desk.comment = body.decided_by, body.comment
    desk.log.append(f"{now_iso()} {body.decided_by} chose {body.option}; carried out")
    return HandoffRecord(
        handoff_id=handoff_id, status=desk.status, executed_option=body.option, decided_by=body.decided_by
    )


@effects.post("/postmortems", status_code=201)
async def store_postmortem(sandbox: SandboxDep, body: PostmortemBody) -> DocumentReceipt:
    document = PostMortem(
        **body.model_dump(), postmortem_id=f"pm-{len(sandbox.postmortems) + 1}", at=now_iso()
    )
    sandbox.postmortems[document.postmortem_id] = document
    return DocumentReceipt(id=document.postmortem_id)


@router.get("/postmortems")
async def list_postmortems(sandbox: SandboxDep, incident_id: str = "") -> list[PostMortem]:
    return [p for p in sandbox.postmortems.values() if p.incident_id.startswith(incident_id)]


@effects.post("/reports", status_code=201)
async def publish_report(sandbox: SandboxDep, body: ReportBody) -> DocumentReceipt:
    sandbox.reports[body.report_id] = Report(**body.model_dump(), at=now_iso())
    return DocumentReceipt(id=body.report_id)


@router.get("/reports")
async def list_reports(sandbox: SandboxDep) -> list[Report]:
    return list(sandbox.reports.values())


@router.get("/reports/{report_id}")
async def get_report(sandbox: SandboxDep, report_id: str) -> Report:
    return found_or_404(sandbox.reports, report_id, f"unknown report {report_id}")


router.include_router(effects)
