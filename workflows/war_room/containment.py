"""Which mitigations the war room offers, fastest first (seed 001): roll back to the last stable deploy, else
switch the feature flag off, else run the hotfix cycle. Each one is offered only when it can work.

Pure: the approvals and effects are in `workflow.py`.
"""

from __future__ import annotations

from schemas.deploys import RecentDeploys

ROLLBACK = "rollback"
FEATURE_FLAG = "feature-flag"
HOTFIX = "hotfix"


def containment_options(deploys: RecentDeploys | None, flag: str | None) -> list[str]:
    """The mitigations to offer, in order. A rollback needs a previous stable deploy to go back to (an
    unknown deploy history offers none), a flag needs the alert's `feature` label; the hotfix is always
    the last resort."""
    return [
        *([ROLLBACK] if deploys is not None and deploys.rollback_possible else []),
        *([FEATURE_FLAG] if flag else []),
        HOTFIX,
    ]
