"""A workflow the sandbox must refuse: its module reads the wall clock as it is imported, and a workflow's
sandbox forbids the clock (a replay would read another time)."""

from __future__ import annotations

import datetime

from temporalio import workflow

NAME = "clock_at_import_probe"
LOADED_AT = datetime.datetime.now()


@workflow.defn(name=NAME)
class ClockAtImport:
    @workflow.run
    async def run(self) -> str:
        return LOADED_AT.isoformat()
