"""The brief's "Current system state": what a runbook read of the systems it acts on, where people look first.

A runbook calls `observe` right after a read (a status, a diagnosis, an effect whose answer says where things
now stand), so the brief shows memory against its watermark, webhook lag, a balance, a gold-set score or
the deploy in place instead of only the workflow's own state. A reading replaces the last one of the same
name, keeping its place in the list, so a poll updates one line rather than growing the brief.

Setting the brief is no command: it changes nothing in the history and needs no `workflow.patched`. The
readings come from reads the runbooks already made; the one read added for the brief (number_banned's
number quality when it opens) is behind its patch below. An unreadable value is shown as such, never as
healthy.
"""

from __future__ import annotations

from typing import Protocol

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from schemas.agents import AgentState, GoldSetResult
    from schemas.alerts import Alert
    from schemas.briefs import Brief, Reading
    from schemas.database import DatabaseState
    from schemas.deploys import ExternalStatus, InfraStatus, QaRun, RecentDeploys
    from schemas.gateway import GatewayFlags, GatewayStatus

UNREADABLE = "unreadable"
# number_banned reads the number's quality when it opens, not only in the analysis days later: the brief
# of a banned number shows its standing with the provider while the appeal waits. One read, so a patch.
NUMBER_QUALITY_ON_OPEN_PATCH = "number_banned-reads-number-quality-on-open"


class HasBrief(Protocol):
    brief: Brief

    def publish_brief(self) -> None: ...


def observe(incident: HasBrief, name: str, value: str, *, limit: str | None = None) -> None:
    """Set (or replace) the reading `name` in the brief, stamped with the workflow's time, and publish it."""
    reading = Reading(name=name, value=value, limit=limit, read_at=workflow.now())
    readings = incident.brief.system_state
    for index, earlier in enumerate(readings):
        if earlier.name == name:
            readings[index] = reading
            break
    else:
        readings.append(reading)
    incident.publish_brief()


def observe_memory(
    incident: HasBrief, status: GatewayStatus | None, *, threshold: float | None = None
) -> None:
    """A gateway's memory against its cgroup high watermark (and the runbook's own threshold, if it has one)."""
    if status is None:
        observe(incident, "memory", UNREADABLE)
        return
    action = f"; acts above {threshold:.0%}" if threshold is not None else ""
    observe(
        incident,
        "memory",
        f"{status.memory_mb:g} MB ({status.memory_ratio:.0%} of the watermark)",
        limit=f"high watermark {status.high_watermark_mb:g} MB{action}",
    )


def observe_flags(incident: HasBrief, flags: GatewayFlags | GatewayStatus) -> None:
    """The pressure flags a gateway holds, as its last answer (a status or a flag change) gave them."""
    if isinstance(flags, GatewayFlags):
        observe(incident, "resource pressure", "marked" if flags.resource_pressure else "not marked")
    observe(incident, "risky spawns", "blocked" if flags.spawns_blocked else "open")


def observe_agent(incident: HasBrief, agent: AgentState) -> None:
    """An agent's state and version as the platform's last answer about it gave them."""
    previous = f" (previous {agent.previous_version})" if agent.previous_version else ""
    observe(incident, f"agent {agent.agent_id}", f"{agent.state} on {agent.version}{previous}")


def observe_gold_set(incident: HasBrief, run: GoldSetResult | None, *, label: str = "") -> None:
    """A gold-set score against the threshold it must pass; a run that did not happen proves nothing.
    A retried run replaces the last one's line; `label` (e.g. the attempt) goes with the value."""
    suffix = f" ({label})" if label else ""
    if run is None:
        observe(incident, "gold-set score", f"did not run{suffix}")
        return
    verdict = "passed" if run.passed else "failed"
    value = f"{run.score:.0%} on {run.version}, {verdict}{suffix}"
    observe(incident, "gold-set score", value, limit=f"threshold {run.threshold:.0%}")


def observe_deploys(incident: HasBrief, service: str, deploys: RecentDeploys | None) -> None:
    """The deploy in place, and whether there is an earlier one a rollback could go back to."""
    if deploys is None:
        observe(incident, f"deploy of {service}", UNREADABLE)
        return
    live = deploys.live
    back = (
        "an earlier live deploy to roll back to" if deploys.rollback_possible else "nothing to roll back to"
    )
    observe(
        incident,
        f"deploy of {service}",
        f"{live.version} live since {live.at}" if live else "none live",
        limit=back,
    )


def observe_infra(incident: HasBrief, service: str, infra: InfraStatus | None) -> None:
    if infra is None:
        observe(incident, f"infrastructure of {service}", UNREADABLE)
        return
    detail = f" ({infra.detail})" if infra.detail else ""
    previous = f"previous {infra.previous_config_version}" if infra.previous_config_version else None
    observe(
        incident,
        f"infrastructure of {service}",
        f"{infra.status}{detail} on {infra.config_version}",
        limit=previous,
    )


def observe_database(incident: HasBrief, service: str, database: DatabaseState) -> None:
    last = database.migrations[-1] if database.migrations else "none"
    observe(
        incident,
        f"database of {service}",
        f"{len(database.migrations)} migrations applied, last {last}; {database.rows} rows",
    )


def observe_triage(
    incident: HasBrief,
    service: str,
    deploys: RecentDeploys | None,
    infra: InfraStatus | None,
    external: ExternalStatus | None,
) -> None:
    """The war room's three looks: the deploy in place, the infrastructure, the services it depends on."""
    observe_deploys(incident, service, deploys)
    observe_infra(incident, service, infra)
    if external is None:
        observe(incident, "external services", UNREADABLE)
    else:
        states = ", ".join(f"{name} {status}" for name, status in sorted(external.dependencies.items()))
        observe(incident, "external services", states or "none known")


def observe_qa(incident: HasBrief, qa: QaRun | None, subject: str) -> None:
    observe(incident, "QA gate", f"{qa.verdict.value} for {qa.subject}" if qa else f"no answer for {subject}")


# Figures monitoring may send with an alert, by the reading they become; the first key present wins.
ALERT_FIGURES = {"error rate": ("error_rate", "error-rate"), "alert value": ("value", "values")}


def observe_alert_figures(incident: HasBrief, alert: Alert) -> None:
    """What monitoring measured when it fired (an `error_rate` annotation or label, Grafana's `values`), for
    the runbooks whose platform has no read of it: shown as the alert's, and only when the alert has one."""
    for name, keys in ALERT_FIGURES.items():
        figures = [alert.annotations.get(key) or alert.labels.get(key) for key in keys]
        figure = next((found for found in figures if found), None)
        if figure:
            observe(incident, name, f"{figure} (from the alert)")
