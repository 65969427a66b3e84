"""pytest plugin that records the history of every workflow a test waits for, for the replay tests.

Loaded by `python -m tests.histories.record` as `-p tests.recording` (see tests/histories/README.md);
inert unless `STANCH_RECORD_HISTORIES=1`, so loading it by accident changes nothing.

Why wrap `WorkflowHandle.result`: every runbook test already drives its incident to the end and awaits
the result, so the recorded histories are exactly the paths the tests prove (happy, rejected, escalated,
refused answers ...), with real activities, without a second copy of any scenario.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client, WorkflowHandle, WorkflowHistory

HISTORIES = Path(__file__).parent / "histories"
# Histories of the probe that exists to be replayed against a changed copy of itself.
NONDETERMINISTIC = HISTORIES / "nondeterministic"
# A history larger than this is left out: the checked-in set must stay small and quick to replay.
MAX_BYTES = 400_000


def current_test() -> str:
    return os.environ.get("PYTEST_CURRENT_TEST", "unknown").split(" ")[0].split("::")[-1]


def _registered_types() -> set[str]:
    from temporalio.workflow import _Definition

    from workflows.registry import WORKFLOWS

    return {defn.name for defn in map(_Definition.must_from_class, WORKFLOWS) if defn.name}


class Recorder:
    def __init__(self) -> None:
        self.types = _registered_types()
        # (test, workflow id) -> file, so a test that awaits the same workflow twice rewrites one file.
        self.files: dict[tuple[str, str], Path] = {}
        # Guardrails are started by an activity (update-with-start) and never awaited by a test: the ids
        # of those each test touched, saved (still running, which replays fine) when the test awaits.
        self.side: dict[str, dict[str, Client]] = {}
        self.taken: set[Path] = set()
        self.skipped: list[str] = []

    def target(self, history: WorkflowHistory, workflow_type: str) -> Path | None:
        key = (current_test(), history.workflow_id)
        if key in self.files:
            return self.files[key]
        if workflow_type == "replay_probe":
            folder = NONDETERMINISTIC
        elif workflow_type in self.types:
            folder = HISTORIES / workflow_type
        else:
            return None  # test-only workflows (gate_probe ...) are not part of the shipped code
        stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", current_test()).strip("_")
        path, n = folder / f"{stem}.json", 1
        while path in self.taken:
            n += 1
            path = folder / f"{stem}--{n}.json"
        self.taken.add(path)
        self.files[key] = path
        return path

    async def save(self, handle: WorkflowHandle[Any, Any]) -> None:
        # The latest run of this id: a handle may point at a run that continued as new.
        history = await handle._client.get_workflow_handle(handle.id).fetch_history()
        await self.save_history(handle, history)
        for workflow_id, client in self.side.get(current_test(), {}).items():
            side = client.get_workflow_handle(workflow_id)
            await self.save_history(side, await side.fetch_history())

    async def save_history(self, handle: WorkflowHandle[Any, Any], history: WorkflowHistory) -> None:
        attributes = history.events[0].workflow_execution_started_event_attributes
        path = self.target(history, attributes.workflow_type.name)
        if path is None:
            return
        # Compact JSON: the same document as `to_json()` (which indents), at a fraction of the size.
        text = json.dumps(json.loads(history.to_json()), separators=(",", ":"))
        if len(text) > MAX_BYTES:
            self.skipped.append(f"{path} ({len(text)} bytes)")
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text + "\n", encoding="utf-8")
        # Children (hotfix cycles, hand-offs) are awaited by their parent, not by the test: record them
        # from the parent's history so every workflow the runbooks start gets a history too.
        for event in history.events:
            if event.HasField("child_workflow_execution_started_event_attributes"):
                child = event.child_workflow_execution_started_event_attributes.workflow_execution
                child_handle = handle._client.get_workflow_handle(child.workflow_id, run_id=child.run_id)
                await self.save_history(child_handle, await child_handle.fetch_history())


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("STANCH_RECORD_HISTORIES") != "1":
        return
    recorder = Recorder()
    original = WorkflowHandle.result

    async def result(self: WorkflowHandle[Any, Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return await original(self, *args, **kwargs)
        finally:
            # Failed and cancelled runs are histories too; record them whatever the result was. A history
            # that cannot be fetched must not change the test's own outcome.
            try:
                await recorder.save(self)
            except Exception as error:
                recorder.skipped.append(f"{self.id} (could not fetch: {error})")

    WorkflowHandle.result = result  # type: ignore[method-assign]

    original_with_start = Client.execute_update_with_start_workflow

    async def with_start(self: Client, *args: Any, **kwargs: Any) -> Any:
        operation = kwargs["start_workflow_operation"]
        recorder.side.setdefault(current_test(), {})[operation._start_workflow_input.id] = self
        return await original_with_start(self, *args, **kwargs)

    Client.execute_update_with_start_workflow = with_start  # type: ignore[method-assign]
    config.stash[RECORDER] = recorder


RECORDER = pytest.StashKey[Recorder]()


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    recorder = config.stash.get(RECORDER, None)
    if recorder is None:
        return
    terminalreporter.write_line(f"recorded {len(recorder.files)} histories under {HISTORIES}")
    for line in recorder.skipped:
        terminalreporter.write_line(f"skipped: {line}")
