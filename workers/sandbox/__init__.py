"""The sandbox platform: an in-memory stand-in for the operator's systems, for the dev stack and the tests.

Laid out like FastAPI's "bigger applications": `app.py` assembles the platform contract
(`CONTRACT_ROUTERS`: one `APIRouter` per fake system, `routers/agents.py`, `routers/gateway.py`,
`routers/chat_channels.py` …, and `routers/health.py`), whose bodies and answers are the `schemas/<system>.py`
models the http adapters send and read; the test controls (`CONTROL_ROUTERS`: `routers/control.py`, call
log and faults; `routers/scenarios.py`, state set-up and inspection); and the call-recording middleware
(`recording.py`: `Idempotency-Key` replay and the call log) over one in-memory `Sandbox` (`state.py`, its
own records in `models/`). `contract.py` writes the contract alone as docs/platform-openapi.json. Never
used in production.
"""

from workers.sandbox.app import create_app, main
from workers.sandbox.state import Sandbox

__all__ = ["Sandbox", "create_app", "main"]
