"""The embedded dev stack behind `stanch dev` and the end-to-end tests.

Postgres, the Temporal dev server, the example systems the runbooks act on for real (examples.py: the
gateway under supervisord ...) and the stack's own processes (sandbox, worker, intake), each a child
process started in dependency order and stopped in reverse; nothing but the Python packages is needed.
One part can be stopped and started again on its data while the rest runs on (`outage`), so tests can
show what the others do while it is away.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import secrets
import shlex
import signal
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import FrameType, TracebackType
from urllib.parse import urlsplit, urlunsplit

import httpx
from psycopg.conninfo import conninfo_to_dict
from pydantic import SecretStr

from stanch.ops.devstack import postgres, temporal
from stanch.ops.devstack.examples import ExampleSystem
from stanch.ops.devstack.supervisor import (
    Child,
    DevStackError,
    Interrupted,
    LogFn,
    PortInUse,
    StartupFailed,
    check_port_free,
    env_name,
    free_ports,
    shutdown_requested,
)
from stanch.settings import Settings
from stanch.tls import default_tls_context
from stanch.trust import TRUST_DEMO_KEYS

__all__ = [
    "DevStack",
    "DevStackError",
    "Interrupted",
    "PortInUse",
    "StartupFailed",
    "child_environment",
    "free_ports",
]

# Started before the stack's own processes, which need both.
SERVERS = ("postgres", "temporal")
# Dependency order: the worker's activities call the sandbox, the intake needs a worker to make progress.
PROCESS_ORDER = ("sandbox", "worker", "intake", "console", "codec-server")
# The console's committed demo signing key (config/dev.toml trusts it as [approvals.services.console], demo):
# the dev stack's console signs with it unless STANCH_CONSOLE_SIGNING_KEY names another.
DEV_CONSOLE_KEY = Path(__file__).resolve().parents[3] / "config" / "dev-keys" / "console"
# The password config/dev.toml gives the demo people's console accounts (its hashes), printed by the banner.
DEMO_PASSWORD = "stanch-demo"
# The codec server only has something to decode when payloads are encrypted.
NEEDS_PAYLOAD_KEY = ("codec-server",)
PROCESS_READY_TIMEOUT_SECONDS = 60.0
LOCAL_HOSTS = ("127.0.0.1", "localhost")
WILDCARD_HOSTS = ("", "0.0.0.0", "::")
SHUTDOWN_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
DATABASE_URLS = ("database_url", "database_admin_url")
SANDBOX_URLS = ("platform_url", "notify_webhook_url")


def settings_on_free_ports(home: Path) -> Settings:
    """Settings for a private stack (tests, benchmarks): every port free, all data under `home`."""
    grpc, ui, pg, intake, sandbox, codec, console, http = free_ports(8)
    return Settings(
        home=home,
        temporal_address=f"127.0.0.1:{grpc}",
        temporal_http_url=f"http://127.0.0.1:{http}",
        temporal_ui_port=ui,
        postgres_port=pg,
        database_url=f"postgresql://stanch_app@127.0.0.1:{pg}/stanch",
        database_admin_url=f"postgresql://postgres@127.0.0.1:{pg}/stanch",
        intake_port=intake,
        sandbox_port=sandbox,
        platform_url=f"http://127.0.0.1:{sandbox}",
        notify_webhook_url=f"http://127.0.0.1:{sandbox}/chat/messages",
        codec_server_port=codec,
        console_port=console,
    )


def child_environment(settings: Settings) -> dict[str, str]:
    """The current environment plus every setting as its `STANCH_*` variable, so children agree with us."""
    env = dict(os.environ)
    for field, dumped in settings.model_dump(mode="json").items():
        value = getattr(settings, field)
        name = env_name(field)
        if value is None:
            env.pop(name, None)
        elif isinstance(value, SecretStr):
            env[name] = value.get_secret_value()
        else:
            env[name] = dumped if isinstance(dumped, str) else json.dumps(dumped)
    # Line-buffered output, or a child's log lines reach the terminal in bursts, long after the fact.
    env["PYTHONUNBUFFERED"] = "1"
    # The dev stack's children may trust the dev policy's demo keys (config/dev-keys/); a process started any
    # other way refuses a policy holding them (stanch/trust.py).
    env[TRUST_DEMO_KEYS] = "1"
    return env


def _http_host(host: str) -> str:
    if host in WILDCARD_HOSTS:
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


def _redacted(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def _request_shutdown(signum: int, frame: FrameType | None) -> None:
    shutdown_requested.set()


class DevStack:
    def __init__(
        self,
        settings: Settings,
        processes: Sequence[str] = PROCESS_ORDER,
        log: LogFn | None = None,
        examples: Sequence[ExampleSystem] = (),
    ) -> None:
        unknown = sorted(set(processes) - set(PROCESS_ORDER))
        if unknown:
            raise ValueError(f"unknown dev stack process {unknown}; choose from {list(PROCESS_ORDER)}")
        names = [example.name for example in examples]
        clashing = sorted(
            {name for name in names if names.count(name) > 1 or name in (*SERVERS, *PROCESS_ORDER)}
        )
        if clashing:
            raise ValueError(f"dev stack example names must be unique and not a part's name: {clashing}")
        # After Postgres and Temporal, before the sandbox and the worker whose adapters act on them.
        self.examples = {example.name: example for example in examples}
        # Postgres runs with its data dir as working directory, so a relative home would point elsewhere.
        # The dev server always serves Temporal's HTTP API (`stanch brief` / `approve` use it, issue 15).
        http_url = settings.temporal_http_url or temporal.DEFAULT_HTTP_URL
        self.settings = settings.model_copy(
            update={"home": settings.home.resolve(), "temporal_http_url": http_url}
        )
        self.processes = tuple(
            name
            for name in PROCESS_ORDER
            if name in processes and (name not in NEEDS_PAYLOAD_KEY or settings.payload_key is not None)
        )
        self._log: LogFn = log if log is not None else lambda line: print(line, flush=True)
        self._children: list[Child] = []
        self.started_in: float | None = None
        self.stopped_in: float | None = None

    @property
    def children(self) -> tuple[Child, ...]:
        """The running children in start order, for tests and tools that need their pids or logs."""
        return tuple(self._children)

    def __enter__(self) -> DevStack:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Start everything and return once each part answers; on any failure, stop what was started."""
        if self._children:
            raise RuntimeError("the dev stack is already running")
        self._check_settings()
        # All ports up front: finding a busy intake port after Postgres and Temporal came up helps nobody.
        for _, what, host, port, settings_to_change in self._ports():
            check_port_free(host, port, what, settings_to_change)
        logs = self.settings.home / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        began = time.monotonic()
        try:
            for name in self.parts:
                self._start(*self._launcher(name, logs))
        except BaseException:
            self.stop()
            raise
        self.started_in = time.monotonic() - began
        self._write_environment_file()
        self._log(f"[dev] stack ready in {self.started_in:.1f} s")

    @property
    def parts(self) -> tuple[str, ...]:
        """Every part this stack runs, in start order: the servers, the examples, then its own processes."""
        return (*SERVERS, *self.examples, *self.processes)

    def example_home(self, name: str) -> Path:
        """Where example `name` keeps its data: its own directory under the stack's home."""
        return self.settings.home / "examples" / name

    def stop_part(self, name: str, *, crash: bool = False) -> None:
        """Stop one running part (Temporal or Postgres for an outage drill); its data stays for `start_part`.

        The rest of the stack keeps running: whatever depends on the part has to ride out its absence.
        `crash` kills it with SIGKILL instead of stopping it cleanly, so it gets no chance to tidy its files.
        """
        child = self._running(name)
        if crash:
            child.kill()
        else:
            child.stop()
        self._children.remove(child)
        self._log(f"[dev] {name} {'killed' if crash else 'stopped'}")

    def start_part(self, name: str) -> None:
        """Start a part that `stop_part` stopped, on the same data (SQLite file, data dir) and ports."""
        if name not in self.parts:
            raise ValueError(f"unknown dev stack part {name!r}; choose from {list(self.parts)}")
        if any(child.name == name for child in self._children):
            raise RuntimeError(f"{name} is already running")
        for part, what, host, port, settings_to_change in self._ports():
            if part == name:
                check_port_free(host, port, what, settings_to_change)
        self._start(*self._launcher(name, self.settings.home / "logs", append=True))

    @contextlib.contextmanager
    def outage(self, name: str, *, crash: bool = False) -> Iterator[None]:
        """`name` is down inside the block and back (same data, same ports) after it, even on an error."""
        self.stop_part(name, crash=crash)
        try:
            yield
        finally:
            self.start_part(name)

    def stop(self) -> None:
        """Stop the children in reverse order of start; a no-op when nothing runs."""
        if not self._children:
            return
        began = time.monotonic()
        while self._children:
            self._children.pop().stop()
        self.stopped_in = time.monotonic() - began
        self._log(f"[dev] stack stopped in {self.stopped_in:.1f} s")

    def run_forever(self) -> None:
        """`stanch dev`: start, show where everything is, and stop cleanly on Ctrl-C, SIGTERM or SIGHUP."""
        shutdown_requested.clear()
        # The handler only sets a flag that every wait checks: raising from it would land in whatever library
        # the main thread is in, which may wrap or swallow the exception mid start-up.
        previous = {signum: signal.signal(signum, _request_shutdown) for signum in SHUTDOWN_SIGNALS}
        try:
            self.start()
            self._log(self.banner())
            while not shutdown_requested.wait(0.5):
                self._exit_if_a_child_died()
        except DevStackError as error:
            # After a shutdown request, a failure is only the interrupted start-up: nothing to report.
            if not shutdown_requested.is_set():
                print(f"stanch dev: {error}", file=sys.stderr, flush=True)
                raise SystemExit(1) from None
        finally:
            try:
                self.stop()
            finally:
                for signum, handler in previous.items():
                    signal.signal(signum, handler)
                shutdown_requested.clear()

    def banner(self) -> str:
        settings = self.settings
        rows = [
            ("Temporal UI", f"http://127.0.0.1:{settings.temporal_ui_port}"),
            ("Temporal gRPC", f"{settings.temporal_address} (namespace {settings.namespace})"),
            ("Temporal HTTP API", f"{settings.temporal_http_url} (stanch brief / approve)"),
        ]
        if "intake" in self.processes:
            rows.append(("intake", f"http://{_http_host(settings.host)}:{settings.intake_port}"))
        if "console" in self.processes:
            rows.append(
                (
                    "console",
                    f"http://{_http_host(settings.host)}:{settings.console_port}  (sign in as alice, bob or carol "
                    f"with the password {DEMO_PASSWORD} on the dev policy)",
                )
            )
        if "sandbox" in self.processes:
            rows.append(("sandbox", f"http://{_http_host(settings.host)}:{settings.sandbox_port}"))
        if "codec-server" in self.processes:
            rows.append(("codec server", f"http://{_http_host(settings.host)}:{settings.codec_server_port}"))
        rows.append(("Postgres", _redacted(settings.database_admin_url)))
        for name, example in self.examples.items():
            home = self.example_home(name)
            describe = getattr(example, "describe", None)
            if describe is not None:
                described = str(describe(home, settings))
            else:
                described = ", ".join(f"{k}={v}" for k, v in example.environment(home, settings).items())
            rows.append((f"example {name}", described))
        if self.examples:
            rows.append(("policy", str(settings.config)))
        rows.append(("logs", str(settings.home / "logs")))
        rows.append(
            ("CLI environment", f"set -a; . {self.environment_file}; set +a   (then: stanch systems)")
        )
        started = f" in {self.started_in:.1f} s" if self.started_in is not None else ""
        lines = [f"Stanch dev stack is up{started}:"]
        width = max(14, *(len(label) + 2 for label, _ in rows))
        lines += [f"  {label:<{width}}{value}" for label, value in rows]
        lines.append("Press Ctrl-C to stop.")
        return "\n".join(lines)

    def _start(self, launch: Callable[[], Child | None], wait_ready: Callable[[Child], None]) -> None:
        if shutdown_requested.is_set():
            raise Interrupted("interrupted while starting")
        began = time.monotonic()
        child = launch()
        if child is None:  # an example that keeps nothing running (a repository): ready once created
            return
        # Registered before the wait, so a failed or interrupted wait still stops this child; in start order,
        # so a part restarted by `start_part` is still stopped before what it depends on.
        order = self.parts.index(child.name)
        position = sum(1 for running in self._children if self.parts.index(running.name) < order)
        self._children.insert(position, child)
        wait_ready(child)
        self._log(f"[dev] {child.name} ready in {time.monotonic() - began:.1f} s")

    def _launcher(
        self, name: str, logs: Path, *, append: bool = False
    ) -> tuple[Callable[[], Child | None], Callable[[Child], None]]:
        """How to launch one part, and how to tell it is ready."""
        settings = self.settings
        if name in self.examples:
            example = self.examples[name]
            # An example's start returns once it is ready, or stops what it started and raises.
            return lambda: self._start_example(example), lambda child: None
        if name == "postgres":
            return (
                lambda: postgres.launch(settings, logs, append=append),
                lambda child: postgres.wait_ready(child, settings),
            )
        if name == "temporal":
            return (
                lambda: temporal.launch(settings, logs, append=append),
                lambda child: temporal.wait_ready(child, settings),
            )
        return functools.partial(self._launch_process, name, logs, append), self._wait_process

    def _start_example(self, example: ExampleSystem) -> Child | None:
        home = self.example_home(example.name)
        home.mkdir(parents=True, exist_ok=True)
        return example.start(home, self.settings, self._log)

    def _running(self, name: str) -> Child:
        for child in self._children:
            if child.name == name:
                return child
        raise ValueError(f"{name!r} is not a running part of this dev stack")

    def _launch_process(self, name: str, logs: Path, append: bool) -> Child:
        env = child_environment(self.settings)
        if name in ("worker", "console"):
            # The worker's adapters reach the examples through these (config/dev.toml's `${...}`); the
            # console's health page checks the same systems through the same adapters.
            env.update(self.example_environment())
        if name == "console":
            env.update(self.console_environment())
        return Child(
            name,
            [sys.executable, "-m", "stanch", name],
            logs / f"{name}.log",
            echo=self._log,
            env=env,
            append=append,
        )

    def console_environment(self) -> dict[str, str]:
        """The console's session secret (made once per home, kept so sessions survive a restart) and its
        signing key (the committed demo one unless the settings name another)."""
        settings = self.settings
        env: dict[str, str] = {}
        if settings.console_secret is None:
            path = settings.home / "console-secret"
            if not path.exists():
                path.write_text(secrets.token_urlsafe(32))
                path.chmod(0o600)
            env[env_name("console_secret")] = path.read_text().strip()
        if settings.console_signing_key is None:
            env[env_name("console_signing_key")] = str(DEV_CONSOLE_KEY)
        return env

    @property
    def environment_file(self) -> Path:
        return self.settings.home / "dev.env"

    def _write_environment_file(self) -> None:
        """What a CLI in another terminal needs to see the stack as its worker does (`stanch systems` reads
        the examples' variables through config/dev.toml; `stanch keys sync` sends the dev policy's demo keys
        only to the stack that trusts them): `set -a; . .stanch/dev.env; set +a`."""
        settings = self.settings
        env = {
            "STANCH_CONFIG": str(settings.config),
            "STANCH_PLATFORM_URL": settings.platform_url,
            "STANCH_TEMPORAL_ADDRESS": settings.temporal_address,
            "STANCH_TEMPORAL_HTTP_URL": settings.temporal_http_url or temporal.DEFAULT_HTTP_URL,
            TRUST_DEMO_KEYS: "1",
            **self.example_environment(),
        }
        lines = [f"{name}={shlex.quote(value)}" for name, value in env.items()]
        self.environment_file.write_text("\n".join(lines) + "\n")
        self.environment_file.chmod(0o600)

    def example_environment(self) -> dict[str, str]:
        """What the worker is given to reach the running examples (a test's own worker needs the same)."""
        env: dict[str, str] = {}
        for name, example in self.examples.items():
            env.update(example.environment(self.example_home(name), self.settings))
        return env

    def _wait_process(self, child: Child) -> None:
        settings = self.settings
        if child.name == "worker":
            child.wait_until_ready(
                lambda: temporal.has_poller(settings),
                PROCESS_READY_TIMEOUT_SECONDS,
                f"poller on task queue {settings.task_queue!r}",
            )
            return
        port = {
            "intake": settings.intake_port,
            "sandbox": settings.sandbox_port,
            "codec-server": settings.codec_server_port,
            "console": settings.console_port,
        }[child.name]
        url = f"http://{_http_host(settings.host)}:{port}/healthz"

        def healthy() -> bool:
            with httpx.Client(trust_env=False, timeout=5, verify=default_tls_context()) as http:
                return http.get(url).status_code == 200

        child.wait_until_ready(healthy, PROCESS_READY_TIMEOUT_SECONDS, f"200 from {url}")

    def _exit_if_a_child_died(self) -> None:
        for child in self._children:
            if not child.alive():
                raise DevStackError(
                    f"{child.name} exited unexpectedly with code {child.returncode}; "
                    f"last lines of {child.log_path}:\n{child.tail()}"
                )

    def _ports(self) -> list[tuple[str, str, str, int, list[str]]]:
        """Which part listens where, and the settings that name that port (the first one is the port's own)."""
        settings = self.settings
        _, temporal_port = temporal.split_address(settings.temporal_address)
        ports = [
            ("temporal", "Temporal gRPC", "127.0.0.1", temporal_port, ["temporal_address"]),
            ("temporal", "Temporal UI", "127.0.0.1", settings.temporal_ui_port, ["temporal_ui_port"]),
            (
                "temporal",
                "Temporal HTTP API",
                "127.0.0.1",
                temporal.http_port(settings),
                ["temporal_http_url"],
            ),
            ("postgres", "Postgres", "127.0.0.1", settings.postgres_port, ["postgres_port", *DATABASE_URLS]),
        ]
        if "intake" in self.processes:
            ports.append(("intake", "intake", settings.host, settings.intake_port, ["intake_port"]))
        if "console" in self.processes:
            ports.append(("console", "console", settings.host, settings.console_port, ["console_port"]))
        if "codec-server" in self.processes:
            ports.append(
                (
                    "codec-server",
                    "codec server",
                    settings.host,
                    settings.codec_server_port,
                    ["codec_server_port"],
                )
            )
        if "sandbox" in self.processes:
            # The platform and notification URLs follow the sandbox only where they point at it.
            following = [
                url for url in SANDBOX_URLS if urlsplit(getattr(settings, url)).port == settings.sandbox_port
            ]
            ports.append(
                ("sandbox", "sandbox", settings.host, settings.sandbox_port, ["sandbox_port", *following])
            )
        return [
            (part, what, host, port, [env_name(field) for field in fields])
            for part, what, host, port, fields in ports
        ]

    def _check_settings(self) -> None:
        """The stack runs its own servers on 127.0.0.1; clients pointed elsewhere would fail confusingly."""
        settings = self.settings
        host, _ = temporal.split_address(settings.temporal_address)
        if host not in LOCAL_HOSTS:
            raise DevStackError(
                f"{env_name('temporal_address')} is {settings.temporal_address}, but the dev stack runs "
                "Temporal on 127.0.0.1"
            )
        for field in DATABASE_URLS:
            params = conninfo_to_dict(getattr(settings, field))
            host, port = str(params.get("host", "")), int(str(params.get("port") or 5432))
            if host not in LOCAL_HOSTS or port != settings.postgres_port or not params.get("dbname"):
                raise DevStackError(
                    f"{env_name(field)} must name a database on 127.0.0.1:{settings.postgres_port}, where the "
                    f"dev stack runs Postgres ({env_name('postgres_port')}); it points at {host}:{port}"
                )
