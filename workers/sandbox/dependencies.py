"""What every route asks FastAPI for: the app's `Sandbox`, and the `Idempotency-Key` every effect requires."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, HTTPException, Request

from workers.sandbox.state import Sandbox


def _sandbox(request: Request) -> Sandbox:
    sandbox: Sandbox = request.app.state.sandbox
    return sandbox


def require_idempotency_key(idempotency_key: Annotated[str | None, Header()] = None) -> str:
    if not idempotency_key:
        raise HTTPException(400, "Idempotency-Key header is required")
    return idempotency_key


SandboxDep = Annotated[Sandbox, Depends(_sandbox)]


IdempotencyKey = Annotated[str, Depends(require_idempotency_key)]
