"""A team's pack with a long-lived workflow of its own: a watch that waits for as long as it is told to,
and its AUTO_UPGRADE copy, made in this module, where the workflow sandbox finds it again."""

from __future__ import annotations

from temporalio import workflow

# The sandbox re-imports this module for every run: what it needs from outside is passed through, as in
# every workflow module.
with workflow.unsafe.imports_passed_through():
    from stanch.packs import Pack
    from workflows.long_lived import auto_upgrade_copy


@workflow.defn(name="team_watch_probe")
class TeamWatch:
    @workflow.run
    async def run(self, beats: int) -> int:
        await workflow.wait_condition(lambda: False, timeout=beats)
        return beats


TeamWatchAutoUpgrade = auto_upgrade_copy(TeamWatch, "TeamWatchAutoUpgrade", __name__)


def team_pack() -> Pack:
    return Pack("team", runbooks={}, workflows=[TeamWatch], long_lived={TeamWatch: TeamWatchAutoUpgrade})
