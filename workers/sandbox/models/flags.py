"""Wire models of the feature-flag service."""

from __future__ import annotations

from pydantic import BaseModel


class FlagSetting(BaseModel):
    enabled: bool


class Flag(BaseModel):
    name: str
    enabled: bool
    replayed: bool = False
