"""The contract's health check: `GET /healthz` answers 200 when the system's side of the contract is up.

Every http adapter's `check()` reads it (`activities/http.py`), so a real implementation serves it too."""

from __future__ import annotations

from fastapi import APIRouter

from schemas.systems import Health

router = APIRouter()


@router.get("/healthz")
async def healthz() -> Health:
    return Health(ok=True)
