"""The CLI answers at once because parsing a flag imports nothing heavy (issue 15, goal 7).

`stanch --help` used to import the Temporal client, FastAPI (through stanch.telemetry), httpx, the schemas
and the policy before it parsed anything. Each command now imports those in its own body; these tests
check, in a fresh interpreter, which modules an import actually loads. No timing here: the figures live
in `python -m bench.cli`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.core import TyperGroup

from stanch.ops.cli import app

# The console script `make install` puts next to this interpreter: what a person runs.
STANCH = Path(sys.executable).parent / "stanch"
HEAVY = ("temporalio.client", "temporalio.service", "fastapi", "starlette", "httpx", "pydantic", "rich")

# Every test here starts fresh interpreters of its own: importing Stanch in them is the test (2-5 s each on
# 2 cores).
pytestmark = pytest.mark.slow


def loaded_after(statement: str) -> list[str]:
    """Which of HEAVY a fresh interpreter holds in sys.modules after running `statement`."""
    probe = (
        f"{statement}\nimport json, sys\n"
        f"print(json.dumps([name for name in {list(HEAVY)!r} if name in sys.modules]))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    loaded: list[str] = json.loads(done.stdout.splitlines()[-1])
    return loaded


def test_importing_the_cli_loads_no_client_server_or_http_library() -> None:
    assert loaded_after("import stanch.ops.cli") == []


def test_the_probe_sees_a_heavy_import() -> None:
    # The check above must be able to fail: the same probe sees what the Temporal client and the intake load.
    assert {"temporalio.client", "pydantic"} <= set(loaded_after("import stanch.temporal_client"))
    assert {"fastapi", "starlette"} <= set(loaded_after("import workers.intake.app"))


def test_connecting_does_not_load_fastapi_when_nothing_instruments() -> None:
    # `stanch brief` connects through stanch.temporal_client, which asks stanch.telemetry for interceptors:
    # that must not pull in the intake's web framework or the OpenTelemetry SDK.
    loaded = loaded_after("import stanch.temporal_client, stanch.telemetry")
    assert "fastapi" not in loaded and "starlette" not in loaded
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import stanch.temporal_client, sys; print('opentelemetry.sdk' in sys.modules)",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.stdout.strip() == "False", done.stderr


def _help(*args: str) -> str:
    done = subprocess.run([STANCH, *args, "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _commands(group: TyperGroup) -> dict[str, object]:
    context = typer.Context(group)
    return {
        name: command
        for name in group.list_commands(context)
        if (command := group.get_command(context, name))
    }


def test_help_still_lists_every_command_and_every_group_its_commands() -> None:
    root = typer.main.get_command(app)
    assert isinstance(root, TyperGroup)
    commands = _commands(root)
    assert {"brief", "approve", "list", "audit", "keys", "schedule"} <= commands.keys()
    listed = _help()
    for name, command in commands.items():
        assert f"\n  {name} " in listed, f"stanch --help does not list {name}:\n{listed}"
        if isinstance(command, TyperGroup):
            group_help = _help(name)
            for sub in _commands(command):
                assert f"\n  {sub} " in group_help, f"stanch {name} --help does not list {sub}:\n{group_help}"
