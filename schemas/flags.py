"""The feature-flag system's requests and results."""

from __future__ import annotations

from pydantic import BaseModel, Field

from schemas.actions import SET_BY_ACT


class FlagChange(BaseModel):
    name: str
    enabled: bool
    idempotency_key: str = Field("", description=SET_BY_ACT)


class FlagState(BaseModel):
    name: str
    enabled: bool
    replayed: bool = False
