"""Reading the chat channel from inside a runbook: diagnostics and polls that change nothing.

A read is not an effect: it is neither audited nor listed among the automatic actions (a poll every two
minutes would bury the audit log); the runbook audits what it concluded instead. A read that keeps failing
answers None, and the runbook treats that as "unknown", never as "healthy".
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

from pydantic import BaseModel
from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

READ_TIMEOUT = timedelta(seconds=15)
# A poll comes back on its own timer, so a read gives up quickly rather than stall the runbook.
READ_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=10),
    maximum_attempts=4,
    non_retryable_error_types=["PlatformRejected"],
)

Answer = TypeVar("Answer", bound=BaseModel)


async def read(
    activity: Callable[[Any, Any], Awaitable[Answer]], request: BaseModel, *, summary: str
) -> Answer | None:
    try:
        answer: Answer = await workflow.execute_activity_method(
            activity,
            request,
            start_to_close_timeout=READ_TIMEOUT,
            retry_policy=READ_RETRY,
            summary=summary,
        )
    except ActivityError:
        return None
    return answer
