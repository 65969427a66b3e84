"""The feature-flag service: the contract's one flag route, switching a flag (`schemas/flags.py`)."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from schemas.flags import FlagSetting, FlagState
from workers.sandbox.dependencies import SandboxDep, require_idempotency_key

# Everything on this router changes the stand-in's state, so it must be safe to retry.
router = APIRouter(dependencies=[Depends(require_idempotency_key)])


@router.put("/flags/{name}")
async def set_flag(sandbox: SandboxDep, name: str, setting: FlagSetting) -> FlagState:
    """Turn a feature flag on or off."""
    sandbox.flags[name] = setting.enabled
    return FlagState(name=name, enabled=setting.enabled)
