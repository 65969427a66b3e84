"""The default chat channel: the messages notifiers post (the webhook notifier's target) and its status."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from workers.sandbox.common import now_iso
from workers.sandbox.dependencies import IdempotencyKey, SandboxDep, require_idempotency_key
from workers.sandbox.models.chat import ChatMessage, ChatReceipt, ChatStatus

# Reads: not effects a runbook performs, so no key is needed.
router = APIRouter()
# Everything on this router changes the stand-in's state, so it must be safe to retry.
effects = APIRouter(dependencies=[Depends(require_idempotency_key)])


@effects.post("/chat/messages", status_code=201)
async def post_chat_message(sandbox: SandboxDep, key: IdempotencyKey, body: dict[str, Any]) -> ChatReceipt:
    message = ChatMessage(id=len(sandbox.messages) + 1, body=body, idempotency_key=key, at=now_iso())
    sandbox.messages.append(message)
    return ChatReceipt(id=message.id)


@router.get("/chat/messages")
async def list_chat_messages(sandbox: SandboxDep) -> list[ChatMessage]:
    return sandbox.messages


@router.get("/chat/status")
async def get_chat_status(sandbox: SandboxDep) -> ChatStatus:
    return sandbox.chat_status


router.include_router(effects)
