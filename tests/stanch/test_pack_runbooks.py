"""A pack's runbook is a first-class runbook: once its pack is loaded, the intake routes an alert to it
(checking its target model), the console's new-incident form offers it with its target fields, and a
triage incident hands over to it on a worker that runs the pack, exactly as for the catalogue's.

The pack is the one `stanch new runbook disk_full --pack DIR` writes, imported from a tmp dir; its target
models are registered into a fresh registry per test (monkeypatch), as `installed_packs()` does at start-up.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

import schemas.targets as targets
from schemas.alerts import Alert
from schemas.incidents import IncidentResult
from schemas.severity import Severity
from schemas.triage import TRIAGE_WORKFLOW, RunbookStarted, RunRunbook
from stanch.ops.scaffold import new_runbook
from stanch.packs import ENTRY_POINT_GROUP, Packs, load_packs
from stanch.policy import Policy, load_policy
from stanch.settings import REPO_ROOT, Settings
from tests.clock import free_clock, settle_and_terminate
from tests.helpers import Incidents, agent, audit_rows, new_agent, until_state
from workers.console import auth
from workers.console.app import create_app
from workers.intake.routing import RoutingError, route_by_hand, route_item
from workers.worker import activity_implementations, build_worker
from workflows.triage import target_problem

POLICY = REPO_ROOT / "tests" / "policy.toml"


@dataclass(frozen=True)
class LoadedPack:
    packs: Packs
    policy: Policy  # the test policy with the packs' default routes after its own


@pytest.fixture
def disk_full_pack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> LoadedPack:
    # A package name of its own per test: the pack's modules stay in sys.modules after it.
    package = f"ops_pack_{uuid.uuid4().hex[:8]}"
    pack_dir = tmp_path / package
    new_runbook("disk_full", pack_dir)
    monkeypatch.syspath_prepend(str(pack_dir))
    monkeypatch.setattr(targets, "PACK_TARGET_MODELS", {})
    packs = load_packs(
        [
            EntryPoint("stanch", "workflows.pack:stanch_pack", ENTRY_POINT_GROUP),
            EntryPoint(package, f"{package}.pack:pack", ENTRY_POINT_GROUP),
        ]
    )
    packs.register_target_models()
    return LoadedPack(packs, packs.policy_with_routes(load_policy(POLICY)))


def disk_full_alert(agent_label: str) -> Alert:
    labels = {"alertname": "DiskFull", "agent": agent_label, "severity": "critical"}
    return Alert(source="alertmanager", name="DiskFull", fingerprint=uuid.uuid4().hex[:16], labels=labels)


def test_the_packs_runbook_is_known_with_its_own_target_model(disk_full_pack: LoadedPack) -> None:
    model = disk_full_pack.packs.target_models()["disk_full"]
    assert targets.target_model_for("disk_full") is model
    assert "disk_full" in targets.runbook_names() and "agent_emergency_stop" in targets.runbook_names()
    assert targets.check_route_targets(disk_full_pack.policy) is None


def test_the_intake_routes_an_alert_to_the_packs_runbook_and_checks_its_target(
    disk_full_pack: LoadedPack,
) -> None:
    routed = route_item(disk_full_pack.policy, disk_full_alert("bot-1"))
    assert routed.incident is not None
    assert (routed.incident.runbook, routed.incident.target) == ("disk_full", {"agent_id": "bot-1"})
    # A value the pack's model refuses goes to a human, as for a catalogue runbook; unregistered, the
    # intake would have started the runbook on it.
    refused = route_item(disk_full_pack.policy, disk_full_alert("not a name!"))
    assert refused.incident is not None and refused.incident.runbook == TRIAGE_WORKFLOW
    [problem] = refused.incident.problems  # type: ignore[attr-defined]
    assert problem.field == "labels.agent" and "runbook 'disk_full'" in problem.problem


def test_the_triage_hand_over_check_accepts_the_packs_runbook(disk_full_pack: LoadedPack) -> None:
    assert target_problem(RunRunbook(by="alice", runbook="disk_full", target={"agent_id": "bot-1"})) is None
    missing = target_problem(RunRunbook(by="alice", runbook="disk_full", target={}))
    assert missing is not None and missing.startswith("target.agent_id")


def test_the_console_offers_the_packs_runbook_with_its_target_fields(disk_full_pack: LoadedPack) -> None:
    settings = Settings(console_secret=SecretStr("s" * 32), temporal_address="127.0.0.1:9", config=POLICY)
    console = TestClient(create_app(settings, disk_full_pack.policy))
    token = re.search(r'name="csrf_token" value="([^"]+)"', console.get("/login").text)
    assert token
    console.post(
        "/login", data={"name": "alice", "password": auth.DEMO_PASSWORD, "csrf_token": token.group(1)}
    )
    assert re.search(r"<option[^>]*>disk_full</option>", console.get("/new").text)
    fields = console.get("/new/fields", params={"runbook": "disk_full"}).text
    assert 'name="target.agent_id"' in fields
    routed = route_by_hand(
        disk_full_pack.policy, "disk_full", {"agent_id": "bot-1"}, Severity.P1, "disk full", "alice"
    )
    assert routed.incident is not None and routed.incident.runbook == "disk_full"
    with pytest.raises(RoutingError, match=r"target\.agent_id"):
        route_by_hand(disk_full_pack.policy, "disk_full", {}, Severity.P1, "disk full", "alice")


@pytest.fixture
async def pack_worker(
    time_env: WorkflowEnvironment, settings: Settings, disk_full_pack: LoadedPack
) -> AsyncIterator[tuple[Client, str]]:
    """A worker running the catalogue and the scaffolded pack, as `stanch worker` would with it installed."""
    task_queue = f"test-{uuid.uuid4().hex[:8]}"
    client = time_env.client
    worker_settings = settings.model_copy(update={"task_queue": task_queue})
    async with activity_implementations(worker_settings, client, disk_full_pack.packs) as activities:
        async with build_worker(client, task_queue, activities, packs=disk_full_pack.packs):
            yield client, task_queue
    await free_clock(time_env)


async def test_a_triage_incident_hands_over_to_the_packs_runbook(
    pack_worker: tuple[Client, str], settings: Settings, disk_full_pack: LoadedPack
) -> None:
    client, task_queue = pack_worker
    incidents = Incidents(client, task_queue, disk_full_pack.policy)
    agent_id = new_agent(settings.platform_url)
    handle, triage = await incidents.agent_hallucination_triage(service="support-bot", summary="disk is full")
    await until_state(handle, "awaiting_triage")

    request = RunRunbook(by="alice", runbook="disk_full", target={"agent_id": agent_id})
    started = await handle.execute_update("run_runbook", request, result_type=RunbookStarted)

    assert started.runbook == "disk_full"
    child = client.get_workflow_handle(started.workflow_id, result_type=IncidentResult)
    try:
        await until_state(child, "awaiting_approval")
        assert (await child.describe()).workflow_type == "disk_full"
        assert (await handle.result()).final_state == "handed_over"
        assert audit_rows(settings, triage.incident_id)[2]["step_key"] == "handed-over"
        assert agent(settings.platform_url, agent_id)["state"] == "active"
    finally:
        await settle_and_terminate(client, [child.id, handle.id])


def test_a_rehearsal_routes_the_packs_sample_by_the_packs_default_route(
    disk_full_pack: LoadedPack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import stanch.ops.rehearse as rehearse

    monkeypatch.setattr(rehearse, "installed_packs", lambda: disk_full_pack.packs)
    rehearsal = rehearse.rehearsal_policy(POLICY, [], tmp_path)
    route = rehearsal.policy.route_for({"alertname": "DiskFull", "agent": "bot-1"})
    assert route is not None and (route.name, route.runbook) == ("disk-full", "disk_full")
