"""Test controls: the call log and fault injection.

These paths inspect or steer the sandbox itself, not a system it stands for, so the call-recording
middleware never faults nor logs them."""

from __future__ import annotations

from fastapi import APIRouter

from workers.sandbox.dependencies import SandboxDep
from workers.sandbox.models.calls import CallCount, CallRecord, Fault

router = APIRouter()


@router.get("/calls")
async def list_calls(sandbox: SandboxDep, path_prefix: str = "") -> list[CallRecord]:
    return [call for call in sandbox.calls if call.path.startswith(path_prefix)]


@router.get("/calls/count")
async def count_calls(sandbox: SandboxDep, path: str, method: str = "POST") -> CallCount:
    matching = [call for call in sandbox.calls if call.path == path and call.method == method.upper()]
    return CallCount(
        applied=sum(1 for call in matching if not call.replayed and 200 <= call.status_code < 300),
        replayed=sum(1 for call in matching if call.replayed),
    )


@router.get("/faults")
async def list_faults(sandbox: SandboxDep) -> list[Fault]:
    # A fault leaves this list once taken: a test can tell that its request has reached the platform.
    return sandbox.faults


@router.post("/faults")
async def add_fault(sandbox: SandboxDep, fault: Fault) -> list[Fault]:
    sandbox.faults.append(fault)
    return sandbox.faults


@router.delete("/faults")
async def clear_faults(sandbox: SandboxDep) -> list[Fault]:
    sandbox.faults.clear()
    return sandbox.faults
