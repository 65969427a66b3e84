"""Timeouts and retry policies, defined once for every runbook."""

from datetime import timedelta

from temporalio.common import RetryPolicy

# An effect on an outside system: retried with backoff through a few minutes of outage, never on a 4xx.
EFFECT_TIMEOUT = timedelta(seconds=30)
EFFECT_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=12,
    non_retryable_error_types=["PlatformRejected"],
)

# The audit trail must never be lost: a row is retried until Postgres is back.
AUDIT_TIMEOUT = timedelta(seconds=15)
AUDIT_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=20),
    maximum_attempts=0,
)
