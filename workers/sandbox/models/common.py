"""Wire models more than one fake system speaks."""

from __future__ import annotations

from pydantic import BaseModel


class EffectRequest(BaseModel):
    reason: str = ""
