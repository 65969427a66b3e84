"""Shared fixtures: a real embedded Postgres, a real sandbox platform over HTTP, the time-skipping
Temporal test server, and a worker running the real runbooks and activities on a fresh task queue."""

from __future__ import annotations

import os
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from temporalio.client import (
    Client,
)
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from stanch.ops.devstack import DevStack, postgres, settings_on_free_ports
from stanch.ops.rehearse import StartedWorkflows
from stanch.policy import load_policy
from stanch.settings import Settings, get_settings
from stanch.trust import TRUST_DEMO_KEYS
from tests.clock import free_clock, settle_and_terminate
from tests.helpers import (  # re-exported: tests written before tests/helpers.py import them from here
    SERVER_STARTUP,
    TEST_POLICY,
    Incidents,
    Running,
    ThreadedServer,
    applied,
    audit_rows,
    free_port,
    new_agent,
    register_search_attributes,
)
from tests.helpers_intake import start_dev_server
from tests.probes.gate_probe import GateProbe
from workers.sandbox import create_app as create_sandbox
from workers.worker import activity_implementations, build_worker

# The tests sign with the demo keys of config/dev-keys/ and start workers, intakes and CLIs on policies that
# hold them: as the dev stack does for its children, say they may trust them (stanch/trust.py). A test that
# proves the refusal removes it from its subprocess's environment.
os.environ[TRUST_DEMO_KEYS] = "1"

# The shipped policy with a demo key for every person (tests/policy.toml, TEST_POLICY in tests/helpers.py):
# every process the tests run reads it — the in-process CLI and activities through STANCH_CONFIG too,
# whichever loads the settings first.
os.environ.setdefault("STANCH_CONFIG", str(TEST_POLICY))

# The local HTTP and SMTP receivers (`receiver`, `mailbox`, `http`) serve tests in several folders.
pytest_plugins = ["tests.helpers_notify"]

__all__ = [
    "SERVER_STARTUP",
    "Running",
    "ThreadedServer",
    "applied",
    "audit_rows",
    "free_port",
    "new_agent",
    "register_search_attributes",
]

# The real-stack tier (`e2e`): everything under tests/e2e/, and any test elsewhere that asks for the shared
# dev stack. `make test-fast` deselects it; see tests/README.md.
E2E_FOLDER = Path(__file__).parent / "e2e"
STACK_FIXTURES = frozenset({"stack"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        in_folder = item.path.is_relative_to(E2E_FOLDER)
        if in_folder or STACK_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def postgres_settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """One embedded Postgres for the session; each test uses its own incident ids, so rows never mix."""
    home = tmp_path_factory.mktemp("pg")
    port = free_port()
    settings = Settings(
        home=home,
        postgres_port=port,
        database_url=f"postgresql://stanch_app@127.0.0.1:{port}/stanch",
        database_admin_url=f"postgresql://postgres@127.0.0.1:{port}/stanch",
    )
    logs = home / "logs"
    logs.mkdir()
    child = postgres.launch(settings, logs)
    try:
        postgres.wait_ready(child, settings)
        yield settings
    finally:
        child.stop()


@pytest.fixture(scope="session")
def sandbox_url() -> Iterator[str]:
    port = free_port()
    server = ThreadedServer(
        uvicorn.Config(create_sandbox(), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("sandbox platform did not start")
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=5)


@pytest.fixture(scope="session")
def settings(postgres_settings: Settings, sandbox_url: str) -> Settings:
    return postgres_settings.model_copy(
        update={"platform_url": sandbox_url, "notify_webhook_url": f"{sandbox_url}/chat/messages"}
    )


@pytest.fixture(scope="session")
async def time_env() -> AsyncIterator[WorkflowEnvironment]:
    binary = Path(sys.executable).parent / "temporal-test-server"
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_startup_timeout=SERVER_STARTUP,
        data_converter=pydantic_data_converter,
        test_server_existing_path=str(binary),
    )
    await register_search_attributes(env.client)
    yield env
    await env.shutdown()


@pytest.fixture
async def stanch(time_env: WorkflowEnvironment, settings: Settings) -> AsyncIterator[Running]:
    task_queue = f"test-{uuid.uuid4().hex[:8]}"
    started = StartedWorkflows()
    config = time_env.client.config()
    config["interceptors"] = [*config["interceptors"], started]
    client = Client(**config)
    # The guardrail activity starts guardrails on the worker's queue, so it must know this test's queue.
    worker_settings = settings.model_copy(update={"task_queue": task_queue})
    async with activity_implementations(worker_settings, client) as activities:
        async with build_worker(client, task_queue, activities, extra_workflows=[GateProbe]):
            yield Running(time_env, client, task_queue, settings)
            # The test server is shared: terminate what is left while the worker still runs, once
            # nothing of it is in flight, or its hold on the clock outlives it (tests/clock.py).
            await settle_and_terminate(client, started.ids)
    await free_clock(time_env)


@pytest.fixture(scope="session")
def test_policy_once() -> Any:
    # Parsed and validated once per xdist worker (~5 ms each, and nearly every workflow test asks for it).
    return load_policy(TEST_POLICY)


@pytest.fixture
def policy(test_policy_once: Any) -> Any:
    # A deep copy per test: a test that changes its policy cannot change the next test's.
    return test_policy_once.model_copy(deep=True)


@pytest.fixture
def cli_env(stanch: Running) -> dict[str, str]:
    """The CLI's environment as an operator sets it, pointed at this test's Temporal server and Postgres
    (for `tests.helpers.cli`)."""
    get_settings.cache_clear()
    return {
        "STANCH_TEMPORAL_ADDRESS": stanch.client.service_client.config.target_host,
        "STANCH_NAMESPACE": stanch.client.namespace,
        "STANCH_DATABASE_URL": stanch.settings.database_url,
        "STANCH_CONFIG": str(TEST_POLICY),
    }


@pytest.fixture
def incidents(stanch: Running, policy: Any) -> Incidents:
    """The incident factory: `await incidents.open(runbook, target=..., ...)` (tests/helpers.py)."""
    return Incidents(stanch.client, stanch.task_queue, policy)


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """The whole dev stack, each part its own process as `make dev` runs it; shared by the e2e tests. Its
    policy is tests/policy.toml: the shipped one plus the demo keys, the console's key and demo passwords."""
    settings = settings_on_free_ports(tmp_path_factory.mktemp("stack")).model_copy(
        update={"config": TEST_POLICY}
    )
    with DevStack(settings, log=lambda line: None) as running:
        yield running.settings


@pytest.fixture(scope="module")
async def dev_env() -> AsyncIterator[WorkflowEnvironment]:
    """A Temporal dev server per module: the kind of server the intake and the CLI talk to, with its
    visibility store (list queries, search attributes), which the time-skipping server lacks."""
    env = await start_dev_server()
    yield env
    await env.shutdown()


@pytest.fixture
async def dev_stanch(dev_env: WorkflowEnvironment, settings: Settings) -> AsyncIterator[Running]:
    """A worker running the real runbooks and activities on a fresh task queue of the dev server."""
    task_queue = f"dev-{uuid.uuid4().hex[:8]}"
    worker_settings = settings.model_copy(update={"task_queue": task_queue})
    async with activity_implementations(worker_settings, dev_env.client) as activities:
        async with build_worker(dev_env.client, task_queue, activities):
            yield Running(dev_env, dev_env.client, task_queue, settings)
