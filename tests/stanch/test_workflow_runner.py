"""A new worker still validates every workflow in the sandbox (stanch/workflow_runner.py, SandboxValidatedOnce),
though a process validates each class only once: a refused workflow is refused again by every worker that
registers it (a valid one registers with every worker: the whole suite builds one per test)."""

from __future__ import annotations

import uuid

import pytest
from temporalio.testing import WorkflowEnvironment

from stanch.packs import Packs
from tests.probes.clock_at_import import NAME, ClockAtImport
from workers.worker import build_worker

NO_PACKS = Packs(packs=())


async def test_every_new_worker_refuses_a_workflow_that_reads_the_clock_in_the_sandbox(
    time_env: WorkflowEnvironment,
) -> None:
    for _ in range(2):
        with pytest.raises(RuntimeError, match=f"Failed validating workflow {NAME}") as refused:
            build_worker(
                time_env.client, f"refused-{uuid.uuid4().hex[:8]}", [], [ClockAtImport], packs=NO_PACKS
            )
        assert "datetime.datetime.now" in repr(refused.value.__cause__)
