"""Stanch's own catalogue as a pack: every runbook in workflows/, the machinery around them, the activities
of activities/, and the demo samples. Its entry point is `stanch = "workflows.pack:stanch_pack"` in the
`stanch.packs` group of pyproject.toml.

It lives here, beside the workflows it lists, rather than in stanch/ (core must not know the catalogue:
the loader would then special-case it) or in workers/ (a pack is what runs, not the process that runs it).
Its routes are the policy's own `[[routes]]` in config/stanch.toml, which predate packs.

A runbook `stanch new runbook <name>` wrote into workflows/ (in a Stanch checkout, without `--pack`) needs
no registration: the module names its `RUNBOOK` class, its default `ROUTE` and its `SAMPLE` alerts, and
`catalogue_modules()` finds it, as a scaffolded pack's pack.py finds its own. The runbooks that predate the
scaffold stay listed by hand in workflows/registry.py (and their target models in schemas/targets.py).

Not a workflow file: the loader imports it once at start-up, outside the workflow sandbox.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from types import ModuleType
from typing import TYPE_CHECKING, Any

import workflows
from stanch.packs import Pack, PackContext
from workflows.long_lived import LONG_LIVED
from workflows.registry import RUNBOOKS, WORKFLOWS
from workflows.samples import SAMPLES

if TYPE_CHECKING:
    from activities.systems import Systems


def stanch_activities(context: PackContext) -> list[Any]:
    """Stanch's activities, each built once around the worker's shared clients, pool and adapters."""
    from activities.audit import AuditActivities
    from activities.guardrail import GuardrailActivities
    from activities.notify import NotifyActivities
    from activities.reports import PostmortemActivities, ReportActivities
    from activities.security import SecurityActivities
    from stanch.policy import PolicyError

    settings, client, policy = context.settings, context.client, context.policy
    try:
        # Channels from the policy, secrets from the environment; either missing stops the worker.
        notify = NotifyActivities.from_policy(
            policy, settings, context.notify_http, context.pool, metrics=context.metrics
        )
    except PolicyError as error:
        print(f"stanch: policy file {settings.config}: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    audit = AuditActivities(context.pool, context.metrics)
    # Guardrails run on this worker's own task queue; runbooks reach them through this activity. One it
    # starts checks kill-switch changes against the policy's keys, where the policy says (issue 13).
    guardrail = GuardrailActivities(
        client, settings.task_queue, signatures=policy.approvals.signatures, keyring=policy.keyring()
    )
    reports = ReportActivities(context.pool)
    # Resolved incidents start their post-mortems on this worker's own task queue.
    postmortems = PostmortemActivities(client, settings.task_queue)
    # The security runbook flips guardrail kill switches, so it needs the guardrails' queue and limits.
    security = SecurityActivities(client, settings.task_queue, policy.guardrail_limits)
    return [
        reports.audit_summary,
        postmortems.open,
        security.kill_switch,
        notify.send_notification,
        audit.write_audit,
        audit.write_audit_rows,
        guardrail.ask,
        *system_activities(context.systems),
    ]


def system_activities(systems: Systems) -> list[Any]:
    """The activities of every system, each around the adapter the policy names."""
    from activities.agents import AgentActivities
    from activities.channel import ChannelActivities
    from activities.database import DatabaseActivities
    from activities.deploys import DeployActivities
    from activities.documents import DocumentActivities
    from activities.flags import FlagActivities
    from activities.gateway import GatewayActivities

    return [
        *AgentActivities(systems.agents).all(),
        *GatewayActivities(systems.gateway).all(),
        *ChannelActivities(systems.channel).all(),
        *DeployActivities(systems.deploys).all(),
        *FlagActivities(systems.flags).all(),
        *DatabaseActivities(systems.database).all(),
        *DocumentActivities(systems.documents).all(),
    ]


# Modules of workflows/ that are not runbook files: the pack itself, its lists, the shared steps.
NOT_RUNBOOKS = {"pack", "registry", "samples", "steps"}


def catalogue_modules() -> list[ModuleType]:
    """The runbook modules of workflows/ that name a `RUNBOOK` of their own (the scaffold's), not listed in
    workflows/registry.py; imported once, at start-up, outside the workflow sandbox."""
    listed = set(RUNBOOKS.values())
    names = sorted(
        info.name for info in pkgutil.iter_modules(workflows.__path__) if info.name not in NOT_RUNBOOKS
    )
    modules = [importlib.import_module(f"workflows.{name}") for name in names]
    return [module for module in modules if getattr(module, "RUNBOOK", None) not in (None, *listed)]


def stanch_pack() -> Pack:
    scaffolded = catalogue_modules()
    return Pack(
        "stanch",
        runbooks={
            **RUNBOOKS,
            **{module.__name__.rpartition(".")[2]: module.RUNBOOK for module in scaffolded},
        },
        workflows=WORKFLOWS,
        activities=stanch_activities,
        long_lived=LONG_LIVED,
        routes=[module.ROUTE for module in scaffolded if hasattr(module, "ROUTE")],
        samples={
            **SAMPLES,
            **{name: sample for module in scaffolded for name, sample in module.SAMPLE.items()},
        },
    )
