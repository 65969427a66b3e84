"""What the test controls show and take: recorded calls, their counts, and injected faults."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class CallRecord(BaseModel):
    method: str
    path: str
    idempotency_key: str | None
    body: Any
    replayed: bool
    status_code: int
    at: str


class CallCount(BaseModel):
    applied: int
    replayed: int


class Fault(BaseModel):
    path_prefix: str
    status: int = Field(500, ge=400, le=599)
    times: int = Field(1, ge=1)
    # A hanging endpoint: hold the request this long before answering with `status`.
    hang_seconds: float = Field(0, ge=0, le=600)
    # A slow platform rather than a failing one: apply the call at once and hold only its own answer, so the
    # caller can give up or die although the effect happened (`status` is not used then).
    apply_first: bool = False
