"""The clock of one escalation level, shared by every wait for a human (the approval gate, triage incidents).

A level runs out after its interval unless a human decides. `acknowledge` ("I am on it") stops the clock at
this level for the policy's `acknowledge_holds` (runs recorded before `NEVER_SILENT_PATCH`: until a decision
or an `escalate`); when the hold runs out, the level has run out too and the ladder resumes, and the caller
pages that the acknowledgement ran out (`lapsed_ack`). `escalate` asks for the next level now. A new level
starts with its own clock.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from schemas.incidents import IncidentPolicy
    from workflows.steps.policies import NEVER_SILENT_PATCH


def level_waits(policy: IncidentPolicy) -> list[timedelta]:
    """How long each level waits: the first answer window, then each escalation level's interval."""
    return [policy.approval_timeout] + [level.after for level in policy.escalation]


class LevelClock:
    def __init__(self) -> None:
        self.acknowledged = False
        self.acknowledged_by = ""
        self.escalate_now = False
        # Who acknowledged the level that just ran out because the hold did; "" when none did.
        self.lapsed_ack = ""
        self._lapsed_hold = timedelta(0)

    def acknowledge(self, by: str) -> None:
        self.acknowledged, self.acknowledged_by = True, by

    def lapsed_text(self) -> str:
        """The opening sentence of the page after an acknowledgement ran out; "" when none did."""
        if not self.lapsed_ack:
            return ""
        minutes = int(self._lapsed_hold.total_seconds() // 60)
        return f"The acknowledgement by {self.lapsed_ack} ran out after {minutes} minutes. "

    def restart(self) -> None:
        """A new level (or a new question): an acknowledgement or escalation was for the one before."""
        self.acknowledged = self.escalate_now = False
        self.acknowledged_by = ""

    async def wait(
        self, closed: Callable[[], bool], wait: timedelta, summary: str, *, hold: timedelta | None = None
    ) -> bool:
        """True once `closed()` holds; False when the level ran out or `escalate` asked for the next one.

        `hold`: how long an acknowledgement stops the clock (None: until a decision or an `escalate`)."""
        self.lapsed_ack = ""
        try:
            await workflow.wait_condition(
                lambda: closed() or self.escalate_now or self.acknowledged,
                timeout=wait,
                timeout_summary=summary,
            )
        except TimeoutError:
            return False
        if self.acknowledged and not closed() and not self.escalate_now:
            # Here old and new runs part: the old held the clock with no timer at all.
            if hold is not None and workflow.patched(NEVER_SILENT_PATCH):
                try:
                    await workflow.wait_condition(
                        lambda: closed() or self.escalate_now,
                        timeout=hold,
                        timeout_summary=f"acknowledgement by {self.acknowledged_by} runs out",
                    )
                except TimeoutError:
                    self.lapsed_ack = self.acknowledged_by or "someone"
                    self._lapsed_hold = hold
                    return False
            else:
                await workflow.wait_condition(lambda: closed() or self.escalate_now)
        return closed()
