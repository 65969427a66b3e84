"""Temporal Schedules Stanch keeps: today one, the daily cockpit report.

`apply_schedules` is idempotent: the first call creates the schedule, later calls bring its spec and action
up to date and leave exactly one schedule. An operator's pause (the schedule's state) survives an apply.
It runs at worker start (`apply_schedules_or_log`, which never stops the worker) and as
`stanch schedule apply`.
"""

from __future__ import annotations

import dataclasses
import logging
from datetime import timedelta

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleCalendarSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleRange,
    ScheduleSpec,
    ScheduleState,
    ScheduleUpdate,
    ScheduleUpdateInput,
)

from schemas.report import ReportRequest

log = logging.getLogger("stanch.schedules")

DAILY_REPORT_SCHEDULE = "stanch-daily-cockpit-report"
DAILY_REPORT_WORKFLOW = "daily_cockpit_report"
# The report covers the previous 24 hours; 07:00 UTC lands it before a European working day starts.
DAILY_REPORT_HOUR = 7
DAILY_REPORT_MINUTE = 0


def daily_report_schedule(
    task_queue: str, hour: int = DAILY_REPORT_HOUR, minute: int = DAILY_REPORT_MINUTE
) -> Schedule:
    return Schedule(
        action=ScheduleActionStartWorkflow(
            DAILY_REPORT_WORKFLOW,
            ReportRequest(),
            # Temporal appends the scheduled time, so each day's run has its own id (and report id).
            id="daily-cockpit-report",
            task_queue=task_queue,
            static_summary="Daily cockpit report",
        ),
        spec=ScheduleSpec(
            calendars=[
                ScheduleCalendarSpec(
                    hour=[ScheduleRange(hour)], minute=[ScheduleRange(minute)], comment="daily cockpit report"
                )
            ]
        ),
        # One report at a time; a report missed by more than an hour (worker or server down) is skipped,
        # not delivered late in a burst.
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP, catchup_window=timedelta(hours=1)),
        state=ScheduleState(note="applied by stanch"),
    )


async def apply_schedules(
    client: Client, task_queue: str, hour: int = DAILY_REPORT_HOUR, minute: int = DAILY_REPORT_MINUTE
) -> dict[str, str]:
    """Create or update every schedule; answers schedule id → 'created' or 'updated'."""
    wanted = daily_report_schedule(task_queue, hour, minute)
    try:
        await client.create_schedule(DAILY_REPORT_SCHEDULE, wanted)
        return {DAILY_REPORT_SCHEDULE: "created"}
    except ScheduleAlreadyRunningError:
        pass

    def keep_state(current: ScheduleUpdateInput) -> ScheduleUpdate:
        return ScheduleUpdate(schedule=dataclasses.replace(wanted, state=current.description.schedule.state))

    await client.get_schedule_handle(DAILY_REPORT_SCHEDULE).update(keep_state)
    return {DAILY_REPORT_SCHEDULE: "updated"}


async def apply_schedules_or_log(client: Client, task_queue: str) -> None:
    """For the worker's start: a schedule that cannot be applied is logged, never fatal."""
    try:
        applied = await apply_schedules(client, task_queue)
    except Exception as error:  # the worker must run its runbooks even if the report is not scheduled
        log.warning("schedules not applied (run `stanch schedule apply` later): %s", error)
        return
    for schedule_id, outcome in applied.items():
        log.info("schedule %s %s", schedule_id, outcome)
