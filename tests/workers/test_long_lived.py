"""The long-lived workflows' AUTO_UPGRADE copies (workflows/long_lived.py): a versioned worker registers
them in their originals' place, an unversioned one the originals, and each copy replays its original's
recorded histories (same workflow type, same commands). That a copy moves to a new version after a promote
is tests/workers/test_worker_versions.py, on a dev server; that an unversioned worker runs the originals on
a dev server is tests/stanch/test_keys.py (the guardrail) and tests/e2e/test_triage.py (triage)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio.common import WorkerDeploymentVersion
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from stanch.ops.replay import load_history, replay
from stanch.packs import Pack, PackError, Packs, combined, installed_packs
from stanch.settings import Settings
from tests.clock import settle_and_terminate
from tests.helpers import Incidents
from tests.probes.long_lived_pack import TeamWatch, TeamWatchAutoUpgrade, team_pack
from workers.worker import activity_implementations, build_worker
from workflows.long_lived import LONG_LIVED, TriageAutoUpgrade
from workflows.triage import Triage

HISTORIES = Path(__file__).parents[1] / "histories"
# The recorded histories' folder of each long-lived workflow (tests/histories/README.md).
HISTORY_FOLDERS = {
    "Guardrail": "guardrail",
    "DailyCockpitReport": "daily_cockpit_report",
    "DeadMansSwitch": "dead_mans_switch",
    "Triage": "triage",
    "PostmortemWorkflow": "postmortem",
}


def registered(
    env: WorkflowEnvironment, deployment: WorkerDeploymentVersion | None, packs: Packs | None = None
) -> list[type]:
    chosen = installed_packs() if packs is None else packs
    worker = build_worker(
        env.client, f"not-polled-{uuid.uuid4().hex[:8]}", [], packs=chosen, deployment=deployment
    )
    return list(worker.config(active_config=True).get("workflows", []))


async def test_only_a_versioned_worker_registers_the_long_lived_workflows_as_auto_upgrade(
    time_env: WorkflowEnvironment,
) -> None:
    unversioned = registered(time_env, None)
    versioned = registered(time_env, WorkerDeploymentVersion(deployment_name="stanch", build_id="v1"))

    assert set(LONG_LIVED) <= set(unversioned)  # every long-lived workflow is one the packs register
    assert not set(LONG_LIVED.values()) & set(unversioned)
    assert versioned == [LONG_LIVED.get(cls, cls) for cls in unversioned]  # in place, nothing else changed


@pytest.mark.parametrize("original", list(LONG_LIVED), ids=lambda cls: cls.__name__)
async def test_an_auto_upgrade_copy_replays_its_originals_recorded_histories(original: type) -> None:
    paths = sorted((HISTORIES / HISTORY_FOLDERS[original.__name__]).glob("*.json"))
    assert paths, f"no recorded history of {original.__name__}"
    outcomes = await replay(
        [(str(path), load_history(path)) for path in paths], workflows=[LONG_LIVED[original]]
    )
    assert [outcome.line() for outcome in outcomes if not outcome.ok] == []


async def test_a_triage_run_on_todays_original_replays_on_its_copy(
    time_env: WorkflowEnvironment, settings: Settings, policy: Any
) -> None:
    """The recorded histories predate patches every incident run now takes at its start, so they cannot
    tell a copy whose run is wrapped twice (`IncidentWorkflow.__init_subclass__`) from one wrapped once; a
    fresh run can (a second response-target timer, markers in another order). An incident moving from an
    unversioned worker, or from a build before the copies, onto a versioned one would fail the same way."""
    client = time_env.client
    task_queue = f"long-lived-{uuid.uuid4().hex[:8]}"
    worker_settings = settings.model_copy(update={"task_queue": task_queue})
    async with (
        activity_implementations(worker_settings, client) as activities,
        Worker(client, task_queue=task_queue, workflows=[Triage], activities=activities),
    ):
        # The shipped policy has a P1 response target, so the run starts its watch of it.
        handle, _ = await Incidents(client, task_queue, policy).agent_hallucination_triage(
            service="support-bot",
            summary="support-bot promised a 90% discount",
            incident_policy=policy.incident_policy(),
        )
        await time_env.sleep(timedelta(minutes=5))
        history = await handle.fetch_history()
        await settle_and_terminate(client, [handle.id])
    [outcome] = await replay([("triage today", history)], workflows=[TriageAutoUpgrade])
    assert outcome.ok, outcome.line()


async def test_a_teams_pack_marks_its_own_workflow_long_lived_and_a_versioned_worker_runs_the_copy(
    time_env: WorkflowEnvironment,
) -> None:
    packs = combined([*installed_packs(), team_pack()])
    v1 = WorkerDeploymentVersion(deployment_name="stanch", build_id="v1")

    assert TeamWatch in registered(time_env, None, packs)
    # Built, so validated: the sandbox found the copy again by its module and name.
    versioned = registered(time_env, v1, packs)
    assert TeamWatchAutoUpgrade in versioned and TeamWatch not in versioned
    assert set(LONG_LIVED.values()) <= set(versioned)  # Stanch's own copies are still there beside it


def test_a_pack_whose_long_lived_entry_is_not_its_own_auto_upgrade_copy_is_refused_naming_it() -> None:
    with pytest.raises(PackError, match="pack 'team': long-lived TeamWatch is not one of its workflows"):
        Pack("team", runbooks={}, long_lived={TeamWatch: TeamWatchAutoUpgrade})
    with pytest.raises(
        PackError, match=r"needs an AUTO_UPGRADE copy made with .*auto_upgrade_copy, not 'TeamWatch'"
    ):
        Pack("team", runbooks={}, workflows=[TeamWatch], long_lived={TeamWatch: TeamWatch})
