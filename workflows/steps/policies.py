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
# How long an effect may go without a heartbeat before Temporal gives its attempt to another worker. Effects
# built with `activities.heartbeat.heartbeating` beat every second while their call is in flight, so a
# worker SIGKILLed mid-call costs this, not EFFECT_TIMEOUT; the retry carries the same idempotency key.
EFFECT_HEARTBEAT_TIMEOUT = timedelta(seconds=5)

# The audit trail must never be lost: a row is retried until Postgres is back.
AUDIT_TIMEOUT = timedelta(seconds=15)
AUDIT_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=20),
    maximum_attempts=0,
)

# Audit rows of an incident drain through one in-workflow queue (IncidentWorkflow.audit); runs recorded
# before it wrote each row inline. The marker is set at an incident's first audit row.
AUDIT_QUEUE_PATCH = "audit-rows-drain-through-a-queue"
# The queue's drainer writes every row queued so far in one `audit_write_rows` activity (issue 15: fewer
# history events per incident); runs recorded before wrote one `write_audit` per row. The marker is set at
# an incident's first drain.
AUDIT_BATCH_PATCH = "audit-queue-writes-rows-in-batches"
# At most this many rows per batch: a queue that grew through a long outage (refused answers keep coming)
# goes out in several, each payload far below Temporal's blob size limits (~1 KB a row).
AUDIT_BATCH_MAX_ROWS = 100

# After the last escalation level the gate stays open as `unattended`, re-paging, until it gives up
# (`closed_unattended`), and an acknowledgement holds the clock for a while only. Runs recorded before took
# the safe default at once and held an acknowledgement forever. The marker is set where the two part: the
# first acknowledgement hold, or the end of the ladder, whichever a run reaches first.
NEVER_SILENT_PATCH = "escalation-never-ends-in-silence"

# One escalation level per incident (workflows/steps/escalation.py `Ladder`), moved up by whichever timer
# fires first: a gate's level timer or the severity's response target, which the incident watches from
# its start. Runs recorded before gave each gate a ladder of its own and had no response target. The marker
# is set when the run starts.
SHARED_LADDER_PATCH = "one-escalation-level-per-incident-with-response-targets"

# `resolve` stands every runbook down from any wait (gate, poll, timer, child) and closes it `resolved`;
# runs recorded before only noted it. The marker is set when the run starts.
RESOLVE_STANDS_DOWN_PATCH = "resolve-stands-down-every-runbook"

# The gate keeps the KeywordList search attribute StanchAwaiting: the people who may decide now. The
# marker is set at the incident's first question.
STANCH_AWAITING_PATCH = "gate-publishes-stanch-awaiting"
# The incident keeps StanchEscalationLevel = how far up its ladder it stands, from the first time it moves
# (issue 14: the console's incidents list shows it from the one visibility query). Runs recorded before
# never upserted it; they replay without it.
ESCALATION_LEVEL_PATCH = "incident-publishes-stanch-escalation-level"
