"""Every activity a workflow schedules carries the workflow's task priority (issue 15).

Temporal lets an activity inherit its workflow's priority when the activity names none, but the inherited
value appears nowhere: not in the `ActivityTaskScheduled` event nor in the activity's info. Naming it on
each activity makes it visible in the history (what the tests and an auditor read) and does not depend on
how a server version resolves inheritance. The intake sets the workflow's priority from the incident's
severity (workers/intake/app.py, `TASK_PRIORITY`); an activity that names its own priority keeps it.
Imported by the workflow sandbox (the worker's interceptors run inside it): temporalio only.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from temporalio import workflow
from temporalio.common import Priority
from temporalio.worker import (
    Interceptor,
    StartActivityInput,
    StartLocalActivityInput,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
    WorkflowOutboundInterceptor,
)
from temporalio.workflow import ActivityHandle


class _Outbound(WorkflowOutboundInterceptor):
    def start_activity(self, input: StartActivityInput) -> ActivityHandle[Any]:
        inherited = workflow.info().priority
        if input.priority == Priority.default and inherited != Priority.default:
            input = dataclasses.replace(input, priority=inherited)
        return super().start_activity(input)

    def start_local_activity(self, input: StartLocalActivityInput) -> ActivityHandle[Any]:
        return super().start_local_activity(input)  # local activities never reach a task queue


class _Inbound(WorkflowInboundInterceptor):
    def init(self, outbound: WorkflowOutboundInterceptor) -> None:
        super().init(_Outbound(outbound))


class ActivityPriorityFromWorkflow(Interceptor):
    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor] | None:
        return _Inbound
