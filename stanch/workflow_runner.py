"""The workflow runner every worker and replayer of Stanch uses: the SDK's sandbox, validated once per class.

Core: the worker (workers/worker.py) and the Replayer (stanch/ops/replay.py) both import it.
"""

from __future__ import annotations

from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner
from temporalio.workflow import _Definition as WorkflowDefinition

# (workflow class, name, restrictions) already validated in this process: see SandboxValidatedOnce.
_validated: set[tuple[type, str | None, int]] = set()


class SandboxValidatedOnce(SandboxedWorkflowRunner):
    """The SDK's sandboxed runner, which validates each workflow class once per process, not once per worker.

    A new Worker validates every workflow it registers by running it in a fresh sandbox: ~9 ms each, a
    quarter of a second for the catalogue, and most of a new worker's start. The answer depends only on the
    class and the sandbox's restrictions, fixed for the life of the process, and a process may build many
    workers (the test suite one per test; `stanch dev`, rehearsals and the benchmarks several; the Replayer
    one per replay), so each class is validated by the first. Every workflow run still gets its own sandbox."""

    def prepare_workflow(self, defn: WorkflowDefinition) -> None:
        key = (defn.cls, defn.name, id(self.restrictions))
        if key in _validated:
            return
        super().prepare_workflow(defn)
        _validated.add(key)
