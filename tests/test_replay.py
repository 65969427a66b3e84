"""Recorded histories replay against the current code; a non-deterministic change is caught.

The histories under tests/histories/ come from real runs of the runbook tests (see its README). If a
change to a runbook makes one of them fail here, running incidents recorded with the old code would fail
on the new worker: guard the change with `workflow.patched(...)` instead.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker
from typer.testing import CliRunner

from stanch.ops.cli import app
from stanch.ops.replay import load_history, replay
from tests.probes.replay_probe import ReplayProbe, ReplayProbeReordered, echo
from workflows.pack import stanch_pack

HISTORIES = Path(__file__).parent / "histories"
NONDETERMINISTIC = HISTORIES / "nondeterministic"
RECORDED = sorted(p for p in HISTORIES.glob("*/*.json") if p.parent != NONDETERMINISTIC)


def test_every_runbook_has_recorded_histories() -> None:
    # The catalogue pack's runbooks: workflows/registry.py's and those the scaffold wrote into workflows/.
    runbooks = set(stanch_pack().runbooks)
    recorded = {path.parent.name for path in RECORDED}
    assert runbooks <= recorded, f"no history for {sorted(runbooks - recorded)}"


@pytest.mark.parametrize("path", RECORDED, ids=lambda p: f"{p.parent.name}/{p.stem}")
async def test_recorded_history_replays(path: Path) -> None:
    # One replay each: with the workflows validated once per process (stanch/workflow_runner.py) it costs
    # what its share of one batch did, and the xdist workers split the histories instead of each
    # replaying all of them for a module fixture.
    [outcome] = await replay([(str(path), load_history(path))])
    assert outcome.ok, outcome.line()


async def test_reordered_probe_fails_replay_of_a_live_history(time_env: WorkflowEnvironment) -> None:
    # Recorded by tests/histories/record.py into tests/histories/nondeterministic/ as well.
    task_queue = f"probe-{uuid.uuid4().hex[:8]}"
    async with Worker(time_env.client, task_queue=task_queue, workflows=[ReplayProbe], activities=[echo]):
        handle = await time_env.client.start_workflow(
            ReplayProbe.run, "hello", id=f"replay-probe-{uuid.uuid4().hex[:8]}", task_queue=task_queue
        )
        assert await handle.result() == "hello"
    history = await handle.fetch_history()

    [same] = await replay([("live", history)], workflows=[ReplayProbe])
    [changed] = await replay([("live", history)], workflows=[ReplayProbeReordered])
    assert same.ok, same.line()
    assert not changed.ok
    assert "Nondeterminism" in changed.problem
    assert changed.event_type == "TimerStarted" and changed.event_id is not None


async def test_checked_in_nondeterministic_history_fails_against_the_changed_code() -> None:
    [path] = NONDETERMINISTIC.glob("*.json")
    history = load_history(path)

    [same] = await replay([(path.name, history)], workflows=[ReplayProbe])
    [changed] = await replay([(path.name, history)], workflows=[ReplayProbeReordered])
    assert same.ok, same.line()  # the file itself is sound: only the code change breaks it
    assert not changed.ok
    assert changed.event_id is not None
    assert f"at event {changed.event_id} (TimerStarted)" in changed.line()


def test_cli_replay_prints_each_history_and_fails_when_any_fails() -> None:
    good = [str(p) for p in RECORDED[:2]]
    [bad] = (str(p) for p in NONDETERMINISTIC.glob("*.json"))
    runner = CliRunner()

    passed = runner.invoke(app, ["audit", "replay", *good])
    assert passed.exit_code == 0, passed.output
    assert passed.output.count("OK ") == 2

    # The probe type is not a shipped workflow at all: the current code cannot replay it.
    failed = runner.invoke(app, ["audit", "replay", *good, bad])
    assert failed.exit_code == 1, failed.output
    assert failed.output.count("OK ") == 2 and "FAIL" in failed.output and bad in failed.output
    assert "'replay_probe' is not in the current code" in failed.output
