"""Effects heartbeat while they run, so Temporal hands the attempt of a dead worker to a live one in seconds.

The mechanism end to end (a SIGKILLed worker's pause retried after its heartbeat timeout) is in
tests/e2e/test_chaos_worker_kill.py; here, without a server: `@heartbeating` keeps beating while the activity
waits and stops when it ends, and every activity the worker runs through `act` is built with it (the
exceptions are the audit writes, `write_audit` and `audit_write_rows`, which `act` never runs and which have
their own short connect timeout).
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import pkgutil
from typing import Any

import pytest
from temporalio import activity
from temporalio.testing import ActivityEnvironment

import activities
from activities import heartbeat
from activities.agents import AgentActivities
from activities.heartbeat import heartbeating, heartbeats

NOT_RUN_BY_ACT = {"write_audit", "audit_write_rows"}


@activity.defn(name="held_call")
@heartbeating
async def held_call(seconds: float) -> str:
    await asyncio.sleep(seconds)
    return "answered"


def beating_every(seconds: float, monkeypatch: pytest.MonkeyPatch) -> tuple[ActivityEnvironment, list[Any]]:
    """An activity environment whose heartbeats land in the returned list, beating every `seconds`."""
    monkeypatch.setattr(heartbeat, "HEARTBEAT_EVERY", seconds)
    env = ActivityEnvironment()
    beats: list[tuple[Any, ...]] = []
    env.on_heartbeat = lambda *details: beats.append(details)
    return env, beats


async def test_a_heartbeating_activity_beats_while_it_waits_and_stops_when_it_ends(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env, beats = beating_every(0.02, monkeypatch)

    assert await env.run(held_call, 0.3) == "answered"
    during = len(beats)
    await asyncio.sleep(0.1)

    assert during >= 5, during  # ~15 at one every 20 ms; the bound leaves room for a loaded machine
    assert len(beats) == during  # nothing after the activity returned


async def test_an_effect_that_ends_within_the_first_interval_sends_no_heartbeat(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Until the first heartbeat the server times an attempt from its start, so a quick effect needs none;
    # a beat at once would cost the server a write per activity (bench/README.md, 2026-12-06).
    env, beats = beating_every(0.2, monkeypatch)

    assert await env.run(held_call, 0.05) == "answered"
    assert beats == []  # that nothing comes after the return is the test above's

    assert await env.run(held_call, 0.3) == "answered"
    assert len(beats) == 1  # at 0.2 s, not at the start


async def test_outside_an_activity_the_wrapped_function_just_runs() -> None:
    assert await held_call(0) == "answered"


def activity_definitions() -> dict[str, Any]:
    """Every activity defined in the `activities` package, by its registered name.

    The SDK has no public way to read a function's activity definition; `_Definition.from_callable` is the
    one private call, and the assertions on known names below fail if the SDK changes it."""
    found: dict[str, Any] = {}
    for module_info in pkgutil.walk_packages(activities.__path__, f"{activities.__name__}."):
        module = importlib.import_module(module_info.name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ != module.__name__:
                continue
            for _, member in inspect.getmembers(cls, inspect.isfunction):
                definition = activity._Definition.from_callable(member)
                if definition is not None and definition.name:
                    found[definition.name] = member
    return found


def test_every_effect_the_runbooks_run_heartbeats() -> None:
    defined = activity_definitions()
    assert "pause_agent" in defined and "send_notification" in defined and "write_audit" in defined
    silent = sorted(name for name, fn in defined.items() if not heartbeats(fn) and name not in NOT_RUN_BY_ACT)
    assert silent == [], f"activities without @heartbeating: {silent}"
    assert not heartbeats(defined["write_audit"]) and not heartbeats(defined["audit_write_rows"])
    # The mark survives @activity.defn, which is where `act` reads it from.
    assert heartbeats(AgentActivities.pause_agent)
