"""`stanch new runbook <name> [--pack DIR]`: a runbook that runs, in a pip-installable pack or, without
`--pack` inside a Stanch checkout, in Stanch's own catalogue.

The pack's `pack.py` finds its runbooks by module (each runbook file names its workflow class, its default
route and its sample alert), so adding a runbook after the first touches the runbook's own file and, if
the default route does not fit, its route in the policy: nothing else.

Layout written (DIR `ops-pack` gives the package `ops_pack`):

    ops-pack/pyproject.toml          the distribution, its `stanch.packs` entry point, pytest settings
    ops-pack/conftest.py             the tests use Stanch's own fixtures (tests/conftest.py)
    ops-pack/ops_pack/__init__.py
    ops-pack/ops_pack/pack.py        the Pack: every runbook module of the package
    ops-pack/ops_pack/<name>.py      the runbook: procedure docstring, target model, numbered steps
    ops-pack/tests/test_<name>.py    happy, rejected, escalated on the time-skipping server

Into the catalogue (a checkout: the folder holding workflows/pack.py and schemas/targets.py):

    workflows/<name>.py              the runbook, with its default ROUTE and SAMPLE; workflows/pack.py finds
                                     it (catalogue_modules), so nothing is registered by hand
    tests/workflows/test_<name>.py   the same three tests, beside the catalogue's
"""

from __future__ import annotations

import keyword
import re
from pathlib import Path

NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class ScaffoldError(Exception):
    """Why nothing was written, in one line naming the name or the file."""


def class_name(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_") if part)


def package_name(pack_dir: Path) -> str:
    return re.sub(r"[^a-z0-9_]", "_", pack_dir.resolve().name.lower()).strip("_") or "runbooks"


def check_name(name: str, known: set[str] = frozenset()) -> None:  # type: ignore[assignment]
    if not NAME.match(name) or keyword.iskeyword(name) or name in {"pack", "tests", "conftest"}:
        raise ScaffoldError(
            f"runbook name {name!r}: use lower-case letters, digits and underscores, starting with a letter "
            "(it is the route's runbook name, the workflow type and the module name), e.g. disk_full"
        )
    if name in known:
        raise ScaffoldError(f"runbook name {name!r}: an installed pack already has a runbook of that name")


def new_runbook(name: str, pack_dir: Path, known: set[str] = frozenset()) -> list[Path]:  # type: ignore[assignment]
    """Write the runbook (and the pack around it, the first time) into `pack_dir`; the files written."""
    check_name(name, known)
    package = package_name(pack_dir)
    if not NAME.match(package) or keyword.iskeyword(package):
        raise ScaffoldError(f"pack folder {pack_dir}: its name must make a Python package name")
    files = runbook_files(name, pack_dir / package / f"{name}.py", pack_dir / "tests" / f"test_{name}.py")
    if not (pack_dir / "pyproject.toml").exists():
        dist = pack_dir.resolve().name
        files |= {
            pack_dir / "pyproject.toml": PYPROJECT.format(dist=dist, package=package),
            pack_dir / "conftest.py": CONFTEST,
            pack_dir / package / "__init__.py": f'"""The {dist} runbook pack for Stanch."""\n',
            pack_dir / package / "pack.py": PACK.format(package=package, dist=dist),
        }
    elif not (pack_dir / package / "pack.py").exists():
        raise ScaffoldError(
            f"{pack_dir / 'pyproject.toml'} exists but {pack_dir / package / 'pack.py'} does not"
        )
    return write(files)


def runbook_files(name: str, runbook: Path, tests: Path) -> dict[Path, str]:
    """The runbook file and its tests, at these paths, refused if either exists already."""
    files = {
        runbook: RUNBOOK.format(name=name, cls=class_name(name), dashed=name.replace("_", "-")),
        tests: TESTS.format(name=name, cls=class_name(name)),
    }
    for path in files:
        if path.exists():
            raise ScaffoldError(f"{path} already exists: choose another runbook name")
    return files


def write(files: dict[Path, str]) -> list[Path]:
    """Write every file, making its folders; the paths written, sorted."""
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return sorted(files)


def is_checkout(root: Path) -> bool:
    """Whether `root` is a Stanch checkout, whose catalogue a runbook without `--pack` goes into."""
    return all(
        (root / part).is_file() for part in ("workflows/pack.py", "schemas/targets.py", "pyproject.toml")
    )


def new_catalogue_runbook(name: str, root: Path, known: set[str] = frozenset()) -> list[Path]:  # type: ignore[assignment]
    """Write the runbook into the catalogue of the checkout at `root`; the files written."""
    check_name(name, known)
    if not is_checkout(root):
        raise ScaffoldError(f"{root} is not a Stanch checkout (no workflows/pack.py): give --pack DIR")
    return write(
        runbook_files(
            name, root / "workflows" / f"{name}.py", root / "tests" / "workflows" / f"test_{name}.py"
        )
    )


PYPROJECT = """\
[build-system]
requires = ["setuptools>=69,<81"]
build-backend = "setuptools.build_meta"

[project]
name = "{dist}"
version = "0.1.0"
description = "Runbooks for Stanch"
requires-python = ">=3.11,<3.14"
dependencies = ["stanch>=0.1,<0.2"]

# Stanch's worker, intake, Replayer and `stanch fire` load every pack of this group.
[project.entry-points."stanch.packs"]
{package} = "{package}.pack:pack"

[tool.setuptools.packages.find]
include = ["{package}*"]

[tool.pytest.ini_options]
asyncio_mode = "auto"
asyncio_default_fixture_loop_scope = "session"
asyncio_default_test_loop_scope = "session"
testpaths = ["tests"]
timeout = 300
"""

CONFTEST = '''\
"""The runbook tests use Stanch's own fixtures: a real Postgres, the sandbox platform, the time-skipping
Temporal server and a worker running every installed pack. Run them from a Stanch checkout's virtualenv
with the checkout on PYTHONPATH (`PYTHONPATH=/path/to/stanch pytest`)."""

pytest_plugins = ["tests.conftest"]
'''

PACK = '''\
"""The {dist} pack: every runbook module of {package}/ (each names its `RUNBOOK` class, its default `ROUTE`
and its `SAMPLE` alert). A new runbook is a new module here: nothing else to register."""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType
from typing import Any

from stanch.packs import Pack, PackContext

import {package}


def runbook_modules() -> list[ModuleType]:
    names = sorted(info.name for info in pkgutil.iter_modules({package}.__path__) if info.name != "pack")
    modules = [importlib.import_module(f"{package}.{{name}}") for name in names]
    return [module for module in modules if hasattr(module, "RUNBOOK")]


def activities(context: PackContext) -> list[Any]:
    """This pack's own activities, built around the worker's shared resources (context.systems,
    context.pool, context.platform_http ...). Its runbooks use Stanch's shared activities, so: none yet."""
    return []


def pack() -> Pack:
    modules = runbook_modules()
    return Pack(
        "{dist}",
        runbooks={{module.__name__.rpartition(".")[2]: module.RUNBOOK for module in modules}},
        routes=[module.ROUTE for module in modules],
        samples={{name: sample for module in modules for name, sample in module.SAMPLE.items()}},
        activities=activities,
    )
'''

RUNBOOK = '''\
"""{cls}: <what is wrong, in one sentence a person on call recognises>.

First tell the people on call what happened and what is proposed; then, once a human approves, pause the
agent so that humans take over its conversations. Nobody answers: escalate along the policy's ladder and
leave the agent as it is (the safe default). <What a human investigates next.>
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.agents import AgentActivities
    from schemas.agents import AgentAction
    from schemas.approvals import ApprovalRequest
    from schemas.incidents import IncidentInput, IncidentResult
    from schemas.targets import Name, Target
    from stanch.packs import Sample
    from workflows.steps.approve_then_act import approve_then_act
    from workflows.steps.incident import IncidentWorkflow


class {cls}Target(Target):
    """What the runbook acts on: the route's `target_labels` must supply every required field."""

    agent_id: Name


@workflow.defn(name="{name}")
class {cls}(IncidentWorkflow):
    target_model = {cls}Target
    uses_roles = ("oncall",)  # the worker checks [roles]

    @workflow.run
    async def run(self, incident: IncidentInput) -> IncidentResult:
        agent_id = incident.target["agent_id"]
        self.open(
            recommendation=f"Pause agent {{agent_id}} so that humans take over its conversations",
            risk_if_no_action=f"Agent {{agent_id}} keeps answering customers",
        )

        # 1. Tell the people on call what happened and what is proposed.
        await self.notify(
            "tell-oncall",
            channel="on-call",
            title=f"{cls}: agent {{agent_id}}",
            text=f"{{incident.summary}}. Approve pausing agent {{agent_id}} when ready.",
        )

        # 2. Pause the agent, once a human says so; unanswered, escalate and leave it running.
        paused = await approve_then_act(
            self,
            ApprovalRequest(
                action="pause",
                recommendation=f"Pause agent {{agent_id}}",
                risk=f"Agent {{agent_id}} keeps answering customers",
                allowed_roles=["oncall"],
                safe_default=f"leave agent {{agent_id}} running and keep paging",
            ),
            "pause",
            AgentActivities.pause_agent,
            lambda decision: AgentAction(agent_id=agent_id, reason=decision.comment or incident.summary),
            summary=f"Pause agent {{agent_id}}",
        )
        if not paused.approved:
            return await self.finish("escalated" if paused.timed_out else "rejected")
        return await self.finish("paused" if paused.done else "action_failed")


RUNBOOK = {cls}

# The default route: the policy's own `[[routes]]` match first, and one named "{dashed}" replaces it.
ROUTE = {{
    "name": "{dashed}",
    "runbook": "{name}",
    "severity": "P1",
    "match": {{"alertname": "{cls}"}},
    "target_labels": {{"agent_id": "agent"}},
}}

# `stanch fire {dashed}` sends this; `{{agent}}` is the agent it names.
SAMPLE = {{
    "{dashed}": Sample("{cls}", "Agent {{agent}} needs a human: {name}", {{"agent": "{{agent}}", "severity": "critical"}}),
}}
'''

TESTS = '''\
"""{cls} on the time-skipping server, with real effects: the sandbox platform over HTTP, the audit log in
Postgres (Stanch's fixtures: tests/conftest.py)."""

from __future__ import annotations

from datetime import timedelta

from schemas.approvals import ApprovalAnswer
from tests.helpers import Incidents, Running, agent, applied, audit_rows, new_agent, until_state

OPENING = ["tell-oncall", "gate1-requested"]


async def test_pauses_the_agent_once_approved(stanch: Running, incidents: Incidents) -> None:
    sandbox = stanch.settings.platform_url
    agent_id = new_agent(sandbox)
    handle = await incidents.open("{name}", target={{"agent_id": agent_id}})
    await until_state(handle, "awaiting_approval")
    assert agent(sandbox, agent_id)["state"] == "active"

    await handle.signal("approve", ApprovalAnswer(approver="alice", action="pause", comment="go"))
    result = await handle.result()

    assert result.final_state == "paused"
    assert agent(sandbox, agent_id)["state"] == "paused"
    assert applied(sandbox, f"/agents/{{agent_id}}/pause") == 1
    steps = [row["step_key"] for row in audit_rows(stanch.settings, handle.id)]
    assert steps == [*OPENING, "gate1-decision", "pause", "closed"]


async def test_a_rejection_leaves_the_agent_running(stanch: Running, incidents: Incidents) -> None:
    sandbox = stanch.settings.platform_url
    agent_id = new_agent(sandbox)
    handle = await incidents.open("{name}", target={{"agent_id": agent_id}})
    await until_state(handle, "awaiting_approval")

    await handle.signal("reject", ApprovalAnswer(approver="bob", action="pause", comment="not yet"))
    result = await handle.result()

    assert result.final_state == "rejected"
    assert agent(sandbox, agent_id)["state"] == "active"
    assert applied(sandbox, f"/agents/{{agent_id}}/pause") == 0
    rows = audit_rows(stanch.settings, handle.id)
    assert [row["step_key"] for row in rows] == [*OPENING, "gate1-decision", "closed"]
    assert rows[-2]["outcome"] == "rejected"


async def test_no_answer_escalates_and_leaves_the_agent_running(stanch: Running, incidents: Incidents) -> None:
    sandbox = stanch.settings.platform_url
    agent_id = new_agent(sandbox)
    handle = await incidents.open("{name}", target={{"agent_id": agent_id}})
    await until_state(handle, "awaiting_approval")

    await stanch.env.sleep(timedelta(minutes=30, seconds=5))  # skipped, not waited
    await until_state(handle, "escalated")
    result = await handle.result()  # nobody answers the ladder either: the safe default stands

    assert result.final_state == "closed_unattended"
    assert agent(sandbox, agent_id)["state"] == "active"
    assert applied(sandbox, f"/agents/{{agent_id}}/pause") == 0
    steps = [row["step_key"] for row in audit_rows(stanch.settings, handle.id)]
    assert steps[: len(OPENING) + 1] == [*OPENING, "gate1-escalate-1"]
    assert steps[-3:] == ["gate1-safe-default", "gate1-give-up", "closed"]
'''
