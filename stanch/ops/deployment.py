"""`stanch deployment`: which worker version takes new incidents, and whether an old one has drained.

`promote` is the deploy step after a new build's workers are up (docs/deployment.md, "Upgrading"): new
incidents start on it, incidents parked on older versions stay there, and the long-lived workflows
(workflows/long_lived.py: AUTO_UPGRADE) move to it at their next task. `status` says what each version
is doing, `drained` exits 0 once a version has no open incident pinned to it (a deploy script's wait
before stopping its workers). The same as `temporal worker deployment set-current-version` and
`describe-version`, without the `temporal` CLI, which the production image does not have.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from stanch.deployments import DeploymentState

deployment_app = typer.Typer(
    help="Worker versions: make a build current, see which versions have drained.",
    no_args_is_help=True,
    rich_markup_mode=None,  # plain help, as the other groups of stanch/ops/cli.py, for the same reason
)


def _deployment_name(deployment: str | None) -> tuple[str, str | None]:
    from stanch.settings import load_settings_or_exit

    settings = load_settings_or_exit()
    return deployment or settings.deployment_name, settings.build_id


@deployment_app.command("promote")
def promote(
    build_id: str = typer.Argument(None, help="the build to make current (default: STANCH_BUILD_ID)"),
    deployment: str = typer.Option(None, help="the worker deployment (default: STANCH_DEPLOYMENT_NAME)"),
) -> None:
    """Make a build the current version: new incidents start on it from now on, and the long-lived
    workflows (guardrails, triage ...) move to it at their next task. Waits (up to a minute) for its workers
    to poll, then for the task queues to route by it."""
    from temporalio.common import WorkerDeploymentVersion

    from stanch.deployments import set_current_version
    from stanch.ops.cli import _run, _settings, connect

    name, own_build = _deployment_name(deployment)
    build = build_id or own_build
    if not build:
        typer.echo("stanch: name the build to promote, or set STANCH_BUILD_ID", err=True)
        raise typer.Exit(2)
    version = WorkerDeploymentVersion(deployment_name=name, build_id=build)

    async def go() -> None:
        await set_current_version(await connect(_settings()), version)

    try:
        _run(go())
    except LookupError as error:
        typer.echo(f"stanch: {error}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"{version.to_canonical_string()} is current: new incidents start on it")


@deployment_app.command("status")
def status(
    deployment: str = typer.Option(None, help="the worker deployment (default: STANCH_DEPLOYMENT_NAME)"),
) -> None:
    """Each version of the deployment: current, ramping, inactive, draining (incidents still pinned to it:
    keep its workers) or drained (none left: its workers may stop)."""
    state = _describe(deployment)
    typer.echo(
        f"deployment {state.deployment_name}: current {state.current_build_id or '(none: unversioned)'}"
    )
    for version in state.versions:
        checked = (
            f" (checked {version.drainage_checked_at:%Y-%m-%d %H:%M:%S} UTC)"
            if version.drainage_checked_at
            else ""
        )
        typer.echo(f"  {version.build_id:<24} {version.status}{checked}")


@deployment_app.command("drained")
def drained(
    build_id: str = typer.Argument(..., help="the old build"),
    deployment: str = typer.Option(None, help="the worker deployment (default: STANCH_DEPLOYMENT_NAME)"),
) -> None:
    """Exit 0 if no open incident is pinned to the build any more (its workers may stop), 1 if some still
    are or it is current or ramping, 2 if the deployment has no such build."""
    state = _describe(deployment)
    version = state.version(build_id)
    if version is None:
        typer.echo(f"stanch: deployment {state.deployment_name} has no build {build_id!r}", err=True)
        raise typer.Exit(2)
    typer.echo(f"{build_id}: {version.status}")
    if version.status != "drained":
        raise typer.Exit(1)


def _describe(deployment: str | None) -> DeploymentState:
    from stanch.deployments import describe_deployment
    from stanch.ops.cli import _run, _settings, connect

    name, _ = _deployment_name(deployment)

    async def go() -> DeploymentState | None:
        return await describe_deployment(await connect(_settings()), name)

    state = _run(go())
    if state is None:
        typer.echo(f"stanch: no worker of deployment {name!r} has polled this namespace", err=True)
        raise typer.Exit(2)
    return state
