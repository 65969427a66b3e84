"""The escalation ladder of one incident, shared by every wait for a human (approval gates, triage incidents),
and the clock of one wait on it.

`Ladder` is where the incident stands: how many levels have run out (`level`), and whether a human has
responded at all (acknowledge, a decision, resolve). There is ONE per incident (`IncidentWorkflow.ladder`),
so whichever timer fires first moves the incident up one level — a gate's level timer, a second gate's, or
the severity's response target (`IncidentWorkflow` watches it) — and every other wait sees the move and
goes on from the new level without paging again. A gate asked later starts where the incident stands, not
from zero. Runs recorded before `SHARED_LADDER_PATCH` give each gate a ladder of its own, from zero.

`LevelClock` is one wait's clock on its current level. A level runs out after its interval unless a human
decides. `acknowledge` ("I am on it") stops the clock at this level for the policy's `acknowledge_holds`
(runs recorded before `NEVER_SILENT_PATCH`: until a decision or an `escalate`); when the hold runs out, the
level has run out too and the ladder resumes, and the caller pages that the acknowledgement ran out
(`lapsed_ack`). `escalate` asks for the next level now. A new level starts with its own clock.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from schemas.incidents import IncidentPolicy
    from workflows.steps.patches import patched
    from workflows.steps.policies import NEVER_SILENT_PATCH


def level_waits(policy: IncidentPolicy) -> list[timedelta]:
    """How long each level waits: the first answer window, then each escalation level's interval."""
    return [policy.approval_timeout] + [level.after for level in policy.escalation]


class Ladder:
    """Where one incident stands on its escalation ladder.

    `level` counts the level waits that ran out: 0 is the first answer window, `k` (1 ≤ k ≤ len(chain))
    means chain level k-1 has been paged, and len(chain) + 1 means past the last level (unattended).
    """

    def __init__(self) -> None:
        self.level = 0
        # Who answered first (acknowledge, a decision or resolve); "" while nobody has: the response
        # target watches this.
        self.responded_by = ""

    def respond(self, by: str) -> None:
        if not self.responded_by:
            self.responded_by = by or "someone"

    def _moved_from(self, level: int) -> bool:
        return self.level != level

    async def climb(
        self,
        clock: LevelClock,
        policy: IncidentPolicy,
        closed: Callable[[], bool],
        *,
        summary: Callable[[int], str],
        ran_out: Callable[[int], Awaitable[None]],
        moved: Callable[[int], None],
    ) -> bool:
        """Wait level by level until `closed()` (True) or past the last level (False).

        `summary(level)` labels the level's timer; `ran_out(level)` pages chain level `level` when this
        wait's own clock ran out on it (the incident has already moved up); `moved(level)` shows the level
        someone else moved the incident to (they paged). Past the last level nobody is paged here: the
        caller goes on as unattended."""
        waits = level_waits(policy)
        while self.level < len(waits):
            level = self.level
            if await clock.wait(
                closed,
                waits[level],
                summary(level),
                hold=policy.acknowledge_holds,
                moved=functools.partial(self._moved_from, level),
            ):
                return True
            if self.level != level:
                clock.restart()
                moved(self.level)
                continue
            self.level = level + 1
            if level < len(policy.escalation):
                await ran_out(level)
                clock.restart()
        return False


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
        self,
        closed: Callable[[], bool],
        wait: timedelta,
        summary: str,
        *,
        hold: timedelta | None = None,
        moved: Callable[[], bool] = lambda: False,
    ) -> bool:
        """True once `closed()` holds; False when the level ran out, `escalate` asked for the next one, or
        `moved()` says the incident's shared level moved on without this clock.

        `hold`: how long an acknowledgement stops the clock (None: until a decision or an `escalate`)."""
        self.lapsed_ack = ""
        try:
            await workflow.wait_condition(
                lambda: closed() or self.escalate_now or self.acknowledged or moved(),
                timeout=wait,
                timeout_summary=summary,
            )
        except TimeoutError:
            return False
        if self.acknowledged and not closed() and not self.escalate_now and not moved():
            # Here old and new runs part: the old held the clock with no timer at all.
            if hold is not None and patched(NEVER_SILENT_PATCH):
                try:
                    await workflow.wait_condition(
                        lambda: closed() or self.escalate_now or moved(),
                        timeout=hold,
                        timeout_summary=f"acknowledgement by {self.acknowledged_by} runs out",
                    )
                except TimeoutError:
                    self.lapsed_ack = self.acknowledged_by or "someone"
                    self._lapsed_hold = hold
                    return False
            else:
                await workflow.wait_condition(lambda: closed() or self.escalate_now or moved())
        return closed()
