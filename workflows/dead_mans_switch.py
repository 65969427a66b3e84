"""Runbook: dead man's switch — page when Alertmanager's always-firing `Watchdog` stops arriving.

Prometheus fires `Watchdog` all the time (deploy/prometheus/stanch-rules.yml) and Alertmanager re-sends it
to Stanch every minute; the route `watchdog` in config/stanch.toml opens this one long-lived incident. Its
silence means the monitoring pipeline itself is down — Prometheus, Alertmanager, or the path between them
and Stanch — so no other alert can arrive either, and only Stanch's own notifiers can still say so.

1. Watch: every firing Watchdog restarts the timer (the alert's `silence_minutes` label, default 10).
2. Silence: the timer runs out — page on-call once ("no Watchdog from Alertmanager for N min: the
   monitoring pipeline is down"), then wait for the next Watchdog, however long it takes, without paging
   again for the same silence.
3. Back: the next Watchdog tells on-call the pipeline is back, and how long it was silent; watch again.
4. Bounded history: after `alerts_per_run` Watchdogs the run continues as new, carrying the silence.
5. A human `resolve` ends the watch (e.g. that Alertmanager is retired).

The other direction — Stanch itself broken — does not go through Stanch: docs/monitoring.md.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from schemas.alerts import Alert, AlertStatus
    from schemas.incidents import IncidentResult
    from schemas.targets import NoTarget
    from schemas.watchdog import DEFAULT_SILENCE_MINUTES, SILENCE_LABEL, DeadMansSwitchInput
    from workflows.steps.incident import IncidentWorkflow

WATCHING = "watching"
SILENT = "silent"


def silence_window(incident: DeadMansSwitchInput) -> float:
    """Minutes of silence that page: the input's, else the alert's label, else the default."""
    if incident.silence_minutes is not None:
        return incident.silence_minutes
    try:
        minutes = float(incident.alert.labels.get(SILENCE_LABEL, ""))
    except ValueError:
        return DEFAULT_SILENCE_MINUTES
    return minutes if minutes > 0 else DEFAULT_SILENCE_MINUTES


def _minutes(span: timedelta) -> str:
    return f"{span.total_seconds() / 60:.0f} min"


@workflow.defn(name="dead_mans_switch")
class DeadMansSwitch(IncidentWorkflow):
    target_model = NoTarget  # what it acts on: schemas/targets.py
    uses_roles = ("oncall",)  # the worker checks [roles]
    owns_resolve = True  # `resolve` ends the watch (step 5)
    response_target_applies = False  # a watcher, waiting on no human

    @workflow.init
    def __init__(self, incident: DeadMansSwitchInput) -> None:
        super().__init__(incident)
        self.switch = incident
        self.heartbeats = 0  # firing Watchdogs in this run
        self.last_seen_at: datetime | None = incident.last_seen_at
        self.seen = 0

    @workflow.signal(name="alert")
    def on_alert(self, alert: Alert) -> None:
        super().on_alert(alert)
        # A resolved Watchdog is Prometheus no longer firing it: not a sign of life.
        if alert.status is AlertStatus.firing:
            self.heartbeats += 1
            self.last_seen_at = workflow.now()

    def _woken(self) -> bool:
        return self.heartbeats > self.seen or self.resolution is not None

    def _bounded(self, incident: DeadMansSwitchInput) -> bool:
        return self.heartbeats >= incident.alerts_per_run or workflow.info().is_continue_as_new_suggested()

    @workflow.run
    async def run(self, incident: DeadMansSwitchInput) -> IncidentResult:
        window = timedelta(minutes=silence_window(incident))
        silent_since = incident.silent_since
        silences = incident.silences
        self.open(
            recommendation="Nothing to do while the Watchdog keeps arriving. If this pages, check "
            "Prometheus, Alertmanager and the path from Alertmanager to Stanch's intake.",
            risk_if_no_action="While the pipeline is down no alert reaches Stanch: incidents go unseen.",
        )
        self.set_state(SILENT if silent_since else WATCHING)
        self.seen = 0  # heartbeats already accounted for
        while self.resolution is None and not self._bounded(incident):
            if silent_since is None:
                # 1. Watch: a firing Watchdog within the window restarts it.
                try:
                    await workflow.wait_condition(
                        self._woken,
                        timeout=window,
                        timeout_summary=f"Page if no Watchdog for {_minutes(window)}",
                    )
                except TimeoutError:
                    # 2. Silence: page once for it.
                    silent_since = workflow.now() - window
                    silences += 1
                    self.set_state(SILENT)
                    await self.notify(
                        f"silence-{silences}",
                        channel="on-call",
                        title="Monitoring pipeline down: no Watchdog from Alertmanager",
                        text=f"No Watchdog from Alertmanager for {_minutes(window)}: the monitoring "
                        "pipeline is down (Prometheus, Alertmanager, or their path to Stanch). No other "
                        "alert can reach Stanch until it is back.",
                    )
                    continue
            else:
                await workflow.wait_condition(self._woken)
                if self.resolution is None:
                    # 3. Back: say so, once per silence, and watch again.
                    await self.notify(
                        f"back-{silences}",
                        channel="on-call",
                        title="Monitoring pipeline back: Watchdog from Alertmanager again",
                        text=f"The Watchdog from Alertmanager arrives again after "
                        f"{_minutes(workflow.now() - silent_since)} of silence. Alerts fired meanwhile "
                        "may never have reached Stanch: check Alertmanager for them.",
                    )
                    silent_since = None
                    self.set_state(WATCHING)
            self.seen = self.heartbeats
        if self.resolution is not None:
            return await self.finish("resolved")
        # 4. Bounded history: the next run carries the silence (if any) and the counts.
        await workflow.wait_condition(workflow.all_handlers_finished)
        workflow.continue_as_new(
            incident.model_copy(
                update={
                    "silent_since": silent_since,
                    "last_seen_at": self.last_seen_at,
                    "silences": silences,
                    "alerts_seen": incident.alerts_seen + self.heartbeats,
                }
            )
        )
