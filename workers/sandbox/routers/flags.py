"""The feature-flag service: list the flags, and switch one."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from workers.sandbox.dependencies import SandboxDep, require_idempotency_key
from workers.sandbox.models.flags import Flag, FlagSetting

# Reads: not effects a runbook performs, so no key is needed.
router = APIRouter()
# Everything on this router changes the stand-in's state, so it must be safe to retry.
effects = APIRouter(dependencies=[Depends(require_idempotency_key)])


@router.get("/flags")
async def list_flags(sandbox: SandboxDep) -> list[Flag]:
    return [Flag(name=name, enabled=enabled) for name, enabled in sandbox.flags.items()]


@effects.put("/flags/{name}")
async def set_flag(sandbox: SandboxDep, name: str, setting: FlagSetting) -> Flag:
    sandbox.flags[name] = setting.enabled
    return Flag(name=name, enabled=setting.enabled)


router.include_router(effects)
