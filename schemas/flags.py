"""The feature-flag system's requests and results; `FlagSetting` is the HTTP contract's body of
`PUT /flags/{name}` (docs/platform-openapi.json)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from schemas.actions import SET_BY_ACT


class FlagChange(BaseModel):
    name: str
    enabled: bool
    idempotency_key: str = Field("", description=SET_BY_ACT)


class FlagSetting(BaseModel):
    enabled: bool


class FlagState(BaseModel):
    name: str
    enabled: bool
    replayed: bool = False
