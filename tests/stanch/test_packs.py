"""Runbook packs: found through entry points, refused when two define one runbook, their routes lose to
the policy's; and `stanch new runbook --pack` writes a pack whose own tests pass on Stanch's fixtures."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from stanch.ops.scaffold import ScaffoldError, new_runbook
from stanch.packs import Pack, PackError, load_packs
from stanch.policy import load_policy
from stanch.settings import REPO_ROOT
from workflows.registry import RUNBOOKS

STANCH = EntryPoint("stanch", "workflows.pack:stanch_pack", "stanch.packs")


def test_the_installed_entry_point_gives_stanchs_own_catalogue() -> None:
    packs = load_packs()
    assert set(RUNBOOKS) <= set(packs.runbooks)
    assert "agent-hallucination" in packs.samples


def test_two_packs_with_one_runbook_name_are_refused_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(PackError) as refused:
        load_packs([STANCH, EntryPoint("copycat", "tests.stanch.test_packs:copycat_pack", "stanch.packs")])
    message = str(refused.value)
    assert "\n" not in message and "'agent_emergency_stop'" in message and "'copycat'" in message


def copycat_pack() -> Pack:
    return Pack("copycat", runbooks={"agent_emergency_stop": RUNBOOKS["agent_emergency_stop"]})


def test_a_pack_route_comes_after_the_policys_and_one_of_the_same_name_is_the_policys() -> None:
    policy = load_policy(REPO_ROOT / "tests" / "policy.toml")
    first = policy.routes[0]
    pack = Pack(
        "defaults",
        runbooks={},
        routes=[
            {"name": first.name, "runbook": "rollback"},  # redefined by the policy: left out
            {"name": "pack-only", "runbook": "rollback", "match": {"alertname": "PackOnly"}},
        ],
    )
    from stanch.packs import combined

    merged = combined([pack]).policy_with_routes(policy)
    assert merged.routes[: len(policy.routes)] == policy.routes
    assert [route.name for route in merged.routes[len(policy.routes) :]] == ["pack-only"]
    assert merged.route_named(first.name) == first


def test_the_scaffold_refuses_a_bad_name_and_an_existing_file(tmp_path: Path) -> None:
    with pytest.raises(ScaffoldError, match="'Disk-Full'"):
        new_runbook("Disk-Full", tmp_path / "ops-pack")
    with pytest.raises(ScaffoldError, match="already has a runbook"):
        new_runbook("rollback", tmp_path / "ops-pack", set(RUNBOOKS))
    new_runbook("disk_full", tmp_path / "ops-pack")
    with pytest.raises(ScaffoldError, match=r"disk_full\.py already exists"):
        new_runbook("disk_full", tmp_path / "ops-pack")


# Slow tier: the generated pack's own tests run in a pytest process of their own, with its own stage (~11 s).
@pytest.mark.slow
def test_a_scaffolded_pack_is_found_by_its_entry_point_and_its_tests_pass(tmp_path: Path) -> None:
    pack_dir = tmp_path / "ops-pack"
    new_runbook("disk_full", pack_dir)
    # What `pip install -e` would leave: a distribution whose entry point names the pack (no pip: ~10 s).
    site = tmp_path / "site"
    info = site / "ops_pack-0.1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: ops-pack\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text("[stanch.packs]\nops_pack = ops_pack.pack:pack\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), str(pack_dir), str(site)])}
    ran = child_pytest(pack_dir, env, tmp_path / "t")
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-2000:]
    assert "3 passed" in ran.stdout


CHILD_PYTEST = (sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist")


def child_pytest(
    cwd: Path, env: dict[str, str], basetemp: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    """The generated tests, in a pytest process of their own, serial, with a basetemp of their own:
    pytest's shared numbered ones are pruned by other runs on the machine."""
    return subprocess.run(
        [*CHILD_PYTEST, f"--basetemp={basetemp}", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )


# What a checkout's catalogue needs for its tests to run (not its recorded histories, caches or dev state).
CATALOGUE_PARTS = ("activities", "config", "examples", "schemas", "stanch", "tests", "workers", "workflows")
NOT_COPIED = shutil.ignore_patterns("__pycache__", "histories", "node_modules", ".*")


# Slow tier: copies the catalogue and runs the generated tests in a pytest process of their own (~15 s).
@pytest.mark.slow
def test_without_a_pack_in_a_checkout_the_runbook_goes_into_the_catalogue_and_its_tests_pass(
    tmp_path: Path,
) -> None:
    checkout = tmp_path / "stanch"
    for part in CATALOGUE_PARTS:
        shutil.copytree(REPO_ROOT / part, checkout / part, ignore=NOT_COPIED)
    shutil.copy(REPO_ROOT / "pyproject.toml", checkout / "pyproject.toml")
    # The copy shadows this checkout: its workflows/pack.py is the `stanch` pack's entry point there.
    env = {**os.environ, "PYTHONPATH": str(checkout)}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, *args], cwd=checkout, env=env, capture_output=True, text=True, timeout=240
        )

    wrote = run("-m", "stanch", "new", "runbook", "disk_full")
    assert wrote.returncode == 0, wrote.stderr
    assert wrote.stdout.splitlines()[:2] == [
        "wrote tests/workflows/test_disk_full.py",
        "wrote workflows/disk_full.py",
    ]
    assert not (checkout / "runbooks-pack").exists()
    again = run("-m", "stanch", "new", "runbook", "disk_full")
    assert again.returncode == 2 and "already has a runbook" in again.stderr
    # Found by the catalogue pack with no registration by hand: runbook, target model, default route, sample.
    found = run(
        "-c",
        "from stanch.packs import installed_packs; from schemas.targets import target_model_for; "
        "packs = installed_packs(); print(packs.runbooks['disk_full'].__module__, "
        "target_model_for('disk_full').__name__, [r.name for r in packs.routes], 'disk-full' in packs.samples)",
    )
    assert found.stdout.split() == ["workflows.disk_full", "DiskFullTarget", "['disk-full']", "True"], (
        found.stderr
    )
    tested = child_pytest(checkout, env, tmp_path / "t", "tests/workflows/test_disk_full.py")
    assert tested.returncode == 0, tested.stdout[-3000:] + tested.stderr[-2000:]
    assert "3 passed" in tested.stdout
