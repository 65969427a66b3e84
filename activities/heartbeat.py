"""Heartbeats for effects: a worker that dies mid-call is noticed in seconds, not after the whole timeout.

Temporal cannot see a worker die. Without heartbeats it learns that an attempt is lost only when the
attempt's start-to-close timeout (30 s for an effect) runs out; with them, when no heartbeat came for the
heartbeat timeout (`EFFECT_HEARTBEAT_TIMEOUT`, 5 s), and the retry — same idempotency key, so the platform
applies the effect once — goes to a live worker. `@heartbeating` keeps one heartbeat going every
`HEARTBEAT_EVERY` while the activity runs, whatever it waits on (an HTTP call the platform holds, a hanging
chat channel, a guardrail update), and marks the activity so `IncidentWorkflow.act` asks for the heartbeat
timeout only where heartbeats really come.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar

from temporalio import activity

# Well inside the heartbeat timeout, so one late tick on a loaded machine does not time a live attempt out.
# The SDK throttles what it sends to the server (at most one per 80 % of the timeout), so ticking is cheap.
HEARTBEAT_EVERY = 1.0

_MARK = "__stanch_heartbeats__"

P = ParamSpec("P")
R = TypeVar("R")


def heartbeating(fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """Run the activity `fn` with a heartbeat every `HEARTBEAT_EVERY` until it returns or raises.

    Put it under `@activity.defn`. Outside an activity (a unit test calling the method) it just runs `fn`.
    """

    @functools.wraps(fn)
    async def run_heartbeating(*args: P.args, **kwargs: P.kwargs) -> R:
        if not activity.in_activity():
            return await fn(*args, **kwargs)
        beat = asyncio.create_task(_beat())
        try:
            return await fn(*args, **kwargs)
        finally:
            beat.cancel()

    setattr(run_heartbeating, _MARK, True)
    return run_heartbeating


def heartbeats(fn: Callable[..., Any]) -> bool:
    """Whether the activity `fn` was built with `@heartbeating` (read by workflows, so no I/O here)."""
    return bool(getattr(fn, _MARK, False))


async def _beat() -> None:
    # The first beat only after one interval. Until an attempt's first heartbeat the server counts its
    # heartbeat timeout from the attempt's start, so a worker dying at once is noticed as soon as before;
    # and an effect that ends within the interval (nearly every one) sends no heartbeat at all, where the
    # SDK would send the first at once: an RPC and a write of the server's workflow state per activity,
    # which during an alert storm queue with every other write on the dev server's one SQLite writer.
    while True:
        await asyncio.sleep(HEARTBEAT_EVERY)
        activity.heartbeat()
