"""The platform contract as OpenAPI, generated from the contract's routers alone (`CONTRACT_ROUTERS`).

    python -m workers.sandbox.contract > docs/platform-openapi.json
    python -m workers.sandbox.contract --write      # the same, into docs/platform-openapi.json

Keys are sorted and the layout fixed, so the file changes only when the contract does;
tests/workers/sandbox/test_contract.py fails when the checked-in file and the code drift apart.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from workers.sandbox.app import CONTRACT_ROUTERS, router_tag

SPEC_PATH = Path(__file__).resolve().parents[2] / "docs" / "platform-openapi.json"
# The contract's own version, not the package's: it changes when an implementer has something to change.
CONTRACT_VERSION = "1"
# FastAPI names a header parameter after its Python name, with dashes.
IDEMPOTENCY_HEADER = "idempotency-key"

DESCRIPTION = """\
What Stanch's `http` adapters call: implement these routes and point `STANCH_PLATFORM_URL` (or a system's
`[systems.<name>] base_url`) at your service, and the runbooks act on your systems. The sandbox platform of
`make dev` and the tests implements exactly this; docs/connect-your-systems.md says what each call must do.

**Effects and the `Idempotency-Key` header.** Every call that changes something (every method but `GET`)
carries an `Idempotency-Key` header, chosen by the workflow step (`<workflow id>/<run id>/<step>`), and is
answered `400` without one. The first successful (2xx) answer for a key is that key's answer: a request
with the same method, path and key returns that first answer again (with `"replayed": true` added where it
is an object) and applies nothing. An answer that was not a success is not stored: the retry is applied for
real. Two deliveries of one key that arrive together apply once (the second waits for the first). Reads
(`GET`) carry no key and change nothing.

**Status codes.** A `4xx` answer is a refusal: Stanch does not retry it, and the runbook pages a human
(`409` when the system's state forbids the effect, `404` for an unknown object, `422` for a body it cannot
accept). A `5xx` answer, a timeout or a network error is retried with the same key, so the effect happens
once however often it is delivered.

**Health.** `GET /healthz` answers `200` when the service is up; `stanch systems` and every adapter's
`check()` read it. Authentication, when a system's policy names a `token_env`, is `Authorization: Bearer
<token>`.
"""

IDEMPOTENCY_DESCRIPTION = (
    "The workflow step's key. The first 2xx answer for this method, path and key is returned again for "
    "every later request with the same key, and nothing is applied twice; required on every effect "
    "(400 without it)."
)


def contract_app() -> FastAPI:
    """An app of the contract's routers only; it is read for its spec, never served."""
    app = FastAPI(title="Stanch platform contract", version=CONTRACT_VERSION, description=DESCRIPTION)
    for module in CONTRACT_ROUTERS:
        app.include_router(module.router, tags=[router_tag(module)])
    return app


def _document_idempotency_key(spec: dict[str, Any]) -> None:
    """FastAPI sees the key as an optional header (the route answers 400 itself when it is missing); the
    contract states it as what it is: required, with its rule, and the 400 named."""
    for operations in spec["paths"].values():
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "header" and parameter["name"] == IDEMPOTENCY_HEADER:
                    parameter.update(
                        name="Idempotency-Key",
                        required=True,
                        description=IDEMPOTENCY_DESCRIPTION,
                        schema={"type": "string", "title": "Idempotency-Key"},
                    )
                    operation["responses"].setdefault(
                        "400", {"description": "No Idempotency-Key header: nothing was applied"}
                    )


def contract_spec() -> dict[str, Any]:
    spec = contract_app().openapi()
    _document_idempotency_key(spec)
    return spec


def render() -> str:
    """The spec as the checked-in file holds it."""
    return json.dumps(contract_spec(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m workers.sandbox.contract", description=__doc__)
    parser.add_argument("--write", action="store_true", help=f"write {SPEC_PATH} instead of printing")
    args = parser.parse_args(argv)
    text = render()
    if args.write:
        SPEC_PATH.write_text(text)
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main()
