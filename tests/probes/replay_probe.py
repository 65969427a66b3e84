"""A tiny workflow and a changed copy of it, to prove that replay catches a non-deterministic change.

`ReplayProbe` is what "shipped": it waits on a timer, then runs one activity. `ReplayProbeReordered` is
the careless edit of the same workflow type (same name, so the Replayer matches it to old histories)
that runs the activity first. A history recorded from `ReplayProbe` must fail to replay against it.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity, workflow

NAME = "replay_probe"


@activity.defn(name="replay_probe_echo")
async def echo(text: str) -> str:
    return text


@workflow.defn(name=NAME)
class ReplayProbe:
    @workflow.run
    async def run(self, text: str) -> str:
        await workflow.sleep(timedelta(minutes=1), summary="wait before echoing")
        return await workflow.execute_activity(echo, text, start_to_close_timeout=timedelta(seconds=10))


@workflow.defn(name=NAME)
class ReplayProbeReordered:
    @workflow.run
    async def run(self, text: str) -> str:
        # The edit under test: the activity now comes before the timer.
        echoed = await workflow.execute_activity(echo, text, start_to_close_timeout=timedelta(seconds=10))
        await workflow.sleep(timedelta(minutes=1), summary="wait after echoing")
        return echoed
