"""The clock of one escalation level, shared by every wait for a human (the approval gate, triage incidents).

A level runs out after its interval unless a human decides. `acknowledge` stops the clock at this level
("I am on it") until a decision or an `escalate` ("next level now"); a new level starts with its own clock.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from schemas.incidents import IncidentPolicy


def level_waits(policy: IncidentPolicy) -> list[timedelta]:
    """How long each level waits: the first answer window, then each escalation level's interval."""
    return [policy.approval_timeout] + [level.after for level in policy.escalation]


class LevelClock:
    def __init__(self) -> None:
        self.acknowledged = False
        self.escalate_now = False

    def restart(self) -> None:
        """A new level (or a new question): an acknowledgement or escalation was for the one before."""
        self.acknowledged = self.escalate_now = False

    async def wait(self, closed: Callable[[], bool], wait: timedelta, summary: str) -> bool:
        """True once `closed()` holds; False when the level ran out or `escalate` asked for the next one."""
        try:
            await workflow.wait_condition(
                lambda: closed() or self.escalate_now or self.acknowledged,
                timeout=wait,
                timeout_summary=summary,
            )
        except TimeoutError:
            return False
        if self.acknowledged and not closed() and not self.escalate_now:
            await workflow.wait_condition(lambda: closed() or self.escalate_now)
        return closed()
