"""Replaying recorded histories against the current workflow code.

A history is what Temporal recorded of one run. Replaying it through today's code proves that the code
still makes the same decisions in the same order; if it does not, a worker picking up a running incident
would fail its workflow tasks (nondeterminism). Auditors and CI use this before shipping a change.

Pure: no Temporal server, no database. Histories come from files (the Temporal UI's Download,
`temporal workflow show --output json`, `stanch audit export`) or from the caller.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter
from temporalio.worker import Replayer

from stanch.workflow_runner import SandboxValidatedOnce

# The core SDK words its nondeterminism failures like
#   [TMPRL1100] Nondeterminism error: Activity machine does not handle this event: HistoryEvent(id: 5, ...)
# inside a longer debug rendering of the failure; these pull out the sentence and the event at fault.
_REASON = re.compile(r"\[TMPRL\d+\]\s*([^\"]+)")
_EVENT = re.compile(r"HistoryEvent\(id: (\d+), (\w+)")


@dataclass(frozen=True)
class ReplayOutcome:
    source: str
    workflow_id: str
    workflow_type: str
    ok: bool
    problem: str = ""
    event_id: int | None = None
    event_type: str = ""

    def line(self) -> str:
        head = f"{self.source} ({self.workflow_type} {self.workflow_id})"
        if self.ok:
            return f"OK    {head}"
        at = f" at event {self.event_id} ({self.event_type})" if self.event_id is not None else ""
        return f"FAIL  {head}{at}: {self.problem}"


def load_history(path: Path, workflow_id: str | None = None) -> WorkflowHistory:
    """Load a history file in the Temporal UI / `temporal workflow show --output json` format.

    Those files carry only `{"events": [...]}`; the workflow id is taken from the start event when the
    server recorded it there, else from the workflow's audit writes, else from the file name.
    """
    data = json.loads(path.read_text(encoding="utf-8"))
    history = WorkflowHistory.from_json(workflow_id or path.stem, data)
    if workflow_id is None:
        # Not just a label: runbooks derive child workflow ids and step keys from their own id, and
        # replay compares child ids. Servers that leave the start event's id empty (the test server)
        # still show it in every audit write the workflow made.
        from stanch.ops.history_audit import audited_run

        recorded_id = _started_workflow_id(history) or audited_run(history)[0]
        if recorded_id:
            history = WorkflowHistory(recorded_id, history.events)
    return history


def _started_workflow_id(history: WorkflowHistory) -> str:
    if not history.events:
        return ""
    return history.events[0].workflow_execution_started_event_attributes.workflow_id


def workflow_type(history: WorkflowHistory) -> str:
    if not history.events:
        return "?"
    return history.events[0].workflow_execution_started_event_attributes.workflow_type.name or "?"


def _definition(cls: type) -> workflow._Definition | None:
    return workflow._Definition.from_class(cls)


def explain(failure: BaseException) -> tuple[str, int | None, str]:
    """The readable sentence of a replay failure, and the history event it names, if any."""
    text = str(failure)
    reason = _REASON.search(text)
    event = _EVENT.search(text)
    sentence = reason.group(1).strip() if reason else f"{type(failure).__name__}: {text}"
    if event:
        return sentence, int(event.group(1)), event.group(2)
    return sentence, None, ""


async def replay(
    histories: Sequence[tuple[str, WorkflowHistory]],
    workflows: Sequence[type] | None = None,
    data_converter: DataConverter = pydantic_data_converter,
) -> list[ReplayOutcome]:
    """Replay each (source label, history) against `workflows` (default: the installed packs' workflows, as the worker runs them).

    `data_converter` must match the worker's: with payload encryption on, pass the one with the codec.
    """
    if workflows is None:
        # The same packs the worker loads, as the same plugins; loaded here so that `stanch` commands
        # that never replay do not import every workflow module.
        from stanch.packs import installed_packs

        packs = installed_packs()
        workflows = packs.workflows
        replayer = Replayer(
            workflows=[],
            plugins=list(packs),
            data_converter=data_converter,
            workflow_runner=SandboxValidatedOnce(),
        )
    else:
        replayer = Replayer(
            workflows=list(workflows), data_converter=data_converter, workflow_runner=SandboxValidatedOnce()
        )
    known = {definition.name for definition in map(_definition, workflows) if definition}
    sources = {id(history): source for source, history in histories}

    async def feed() -> AsyncIterator[WorkflowHistory]:
        for _, history in histories:
            yield history

    outcomes = []
    # One replay worker for the whole batch: a worker per history costs ~0.2 s each.
    async with replayer.workflow_replay_iterator(feed()) as results:
        async for result in results:
            history = result.history
            source = sources.get(id(history), history.workflow_id)
            if result.replay_failure is None:
                outcomes.append(ReplayOutcome(source, history.workflow_id, workflow_type(history), ok=True))
                continue
            problem, event_id, event_type = explain(result.replay_failure)
            if workflow_type(history) not in known:
                # The SDK reports this as an opaque activation failure; say what it means.
                problem = f"workflow type {workflow_type(history)!r} is not in the current code"
            outcomes.append(
                ReplayOutcome(
                    source,
                    history.workflow_id,
                    workflow_type(history),
                    ok=False,
                    problem=problem,
                    event_id=event_id,
                    event_type=event_type,
                )
            )
    return outcomes
