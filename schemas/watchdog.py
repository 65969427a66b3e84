"""The dead man's switch: what one run of `dead_mans_switch` carries over to the next (continue-as-new)."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from schemas.incidents import IncidentInput

# Alertmanager re-sends the firing Watchdog every `repeat_interval` (1 min in
# deploy/alertmanager/alertmanager.example.yml); ten minutes without one is not a hiccup.
DEFAULT_SILENCE_MINUTES = 10
# History stays bounded: ~4 events per Watchdog received, so a run holds a few thousand events at most.
DEFAULT_ALERTS_PER_RUN = 500
# The Watchdog rule may set the window itself with this label (minutes), next to where it sets the repeat.
SILENCE_LABEL = "silence_minutes"


class DeadMansSwitchInput(IncidentInput):
    """An IncidentInput as the intake sends it, plus the state a continued run inherits."""

    silence_minutes: float | None = Field(
        None, gt=0, description=f"unset: the alert's `{SILENCE_LABEL}` label, else {DEFAULT_SILENCE_MINUTES}"
    )
    alerts_per_run: int = Field(DEFAULT_ALERTS_PER_RUN, ge=1)
    # Carried over continue-as-new, so a silence that spans two runs pages once and is told once it ends.
    silent_since: datetime | None = None
    last_seen_at: datetime | None = None
    silences: int = Field(0, ge=0, description="silences paged so far, over every run")
    alerts_seen: int = Field(0, ge=0, description="Watchdog alerts received, over every run")
