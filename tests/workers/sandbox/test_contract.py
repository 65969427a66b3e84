"""docs/platform-openapi.json is the contract the code serves: regenerated, it is the checked-in file, and
it holds the contract's routes only — none of the sandbox's test controls."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from stanch.tls import default_tls_context
from workers.sandbox import create_app
from workers.sandbox.app import CONTROL_ROUTERS
from workers.sandbox.contract import SPEC_PATH, contract_spec, render

REGENERATE = "python -m workers.sandbox.contract --write"


def operations(spec: dict[str, Any]) -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, ops in spec["paths"].items() for method in ops}


def control_operations() -> set[tuple[str, str]]:
    """Every route of the test controls, read the way the spec is (FastAPI's own OpenAPI of them)."""
    app = FastAPI()
    for module in CONTROL_ROUTERS:
        app.include_router(module.router)
    return operations(app.openapi())


def test_the_checked_in_spec_is_what_the_code_generates() -> None:
    assert SPEC_PATH.read_text() == render(), (
        f"docs/platform-openapi.json drifted from the code: {REGENERATE}"
    )


@pytest.mark.slow  # a fresh interpreter of its own prints the spec (~7 s on 2 cores)
def test_the_generator_prints_the_same_spec_it_writes() -> None:
    printed = subprocess.run(
        [sys.executable, "-m", "workers.sandbox.contract"], capture_output=True, text=True, check=True
    ).stdout
    assert printed == render()


def test_no_control_or_scenario_route_is_in_the_spec() -> None:
    controls = control_operations()
    # The check can fail: the controls are there to find (call log, faults, set-up and inspection).
    assert {
        ("GET", "/calls"),
        ("POST", "/faults"),
        ("PUT", "/runtimes/{name}"),
        ("GET", "/flags"),
    } <= controls
    spec = contract_spec()
    assert controls & operations(spec) == set()
    assert not [path for path in spec["paths"] if path.startswith(("/calls", "/faults"))]


def test_the_spec_is_every_route_the_sandbox_serves_but_its_controls() -> None:
    served = operations(create_app().openapi())
    assert operations(contract_spec()) == served - control_operations()


def test_the_health_check_every_adapter_reads_is_in_the_contract() -> None:
    spec = contract_spec()
    assert "get" in spec["paths"]["/healthz"]
    assert "Idempotency-Key" in spec["info"]["description"]


def test_every_effect_requires_the_idempotency_key_and_no_read_takes_one() -> None:
    for (method, path), operation in _each_operation(contract_spec()):
        keys = [p for p in operation.get("parameters", []) if p["name"] == "Idempotency-Key"]
        if method == "GET":
            assert keys == [], f"{method} {path} is a read: it takes no key"
        else:
            assert [(k["in"], k["required"]) for k in keys] == [("header", True)], f"{method} {path}"
            assert "400" in operation["responses"], f"{method} {path}"


async def test_an_effect_without_the_key_is_answered_400_as_the_spec_says() -> None:
    # What the spec promises about the key is what the sandbox does: no key, 400, nothing applied.
    async with httpx.AsyncClient(
        verify=default_tls_context(),
        transport=httpx.ASGITransport(app=create_app()),
        base_url="http://sandbox",
    ) as sandbox:
        refused = await sandbox.put("/flags/agent-tool-calls", json={"enabled": False})
        flags = {f["name"]: f["enabled"] for f in (await sandbox.get("/flags")).json()}
    assert refused.status_code == 400
    assert flags["agent-tool-calls"] is True


def _each_operation(spec: dict[str, Any]) -> list[tuple[tuple[str, str], dict[str, Any]]]:
    return [((m.upper(), path), op) for path, ops in spec["paths"].items() for m, op in ops.items()]
