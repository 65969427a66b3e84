"""The sandbox platform: an in-memory stand-in for the operator's systems, for the dev stack and the tests.

Laid out like FastAPI's "bigger applications": `app.py` assembles one `APIRouter` per fake system
(`routers/agents.py`, `routers/gateway.py`, `routers/chat_channels.py` …, their wire models in `models/`),
the test controls (`routers/control.py`: health, call log, faults; `routers/scenarios.py`: state set-up),
and the call-recording middleware (`recording.py`: `Idempotency-Key` replay and the call log) over one
in-memory `Sandbox` (`state.py`). Never used in production.
"""

from workers.sandbox.app import create_app, main
from workers.sandbox.state import Sandbox

__all__ = ["Sandbox", "create_app", "main"]
