"""What the example gateway's scripts (`safe-restart`, `gatewayctl`) share: where the gateway is, its
service manager over its unix socket, its memory from /proc and its health endpoint, the cleaning, and the
record of the idempotency keys a script has carried out. Standard library only; the scripts find it next to
themselves (Python puts a script's own directory first on its import path).

Where the gateway is comes from the environment: `GATEWAY_HOME` (supervisord's socket is
`$GATEWAY_HOME/supervisor.sock`, or set `GATEWAY_SUPERVISOR_SOCKET`), `GATEWAY_DATA_DIR`, `GATEWAY_PORT`
(its health endpoint on 127.0.0.1), `GATEWAY_PROGRAM` (supervisord's program, `gateway`) and `GATEWAY_NAME`
(the name Stanch knows it by; the program's name unless set).
"""

from __future__ import annotations

import argparse
import fcntl
import http.client
import json
import os
import socket
import sys
import time
import urllib.error
import urllib.request
import xmlrpc.client
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# The exit codes of Stanch's `command` adapter: done, failed (worth a retry), refused (not retried).
DONE, FAILED, REFUSED = 0, 1, 3
JUNK_SUFFIXES = (".deleted", ".corrupt")


class Refused(Exception):
    """Nothing was done, and running again unchanged would be refused again."""


class Failed(Exception):
    """The action did not complete; running again (same key) may succeed."""


class Parser(argparse.ArgumentParser):
    """A command line the script cannot read is a refusal: the same argv would be refused again."""

    def error(self, message: str) -> Any:
        self.print_usage(sys.stderr)
        self.exit(REFUSED, f"{self.prog}: {message}\n")


@dataclass(frozen=True)
class Place:
    """Where the gateway, its data and its service manager are."""

    name: str
    program: str
    data: Path
    socket_path: Path
    port: int

    @classmethod
    def from_environment(cls) -> Place:
        env = os.environ
        missing = [name for name in ("GATEWAY_DATA_DIR", "GATEWAY_PORT") if not env.get(name)]
        if not (env.get("GATEWAY_SUPERVISOR_SOCKET") or env.get("GATEWAY_HOME")):
            missing.append("GATEWAY_HOME")
        if missing:
            raise Refused(f"set {', '.join(missing)}: where the gateway and its supervisord are")
        program = env.get("GATEWAY_PROGRAM", "gateway")
        socket_path = env.get("GATEWAY_SUPERVISOR_SOCKET") or f"{env['GATEWAY_HOME']}/supervisor.sock"
        return cls(
            name=env.get("GATEWAY_NAME") or program,
            program=program,
            data=Path(env["GATEWAY_DATA_DIR"]),
            socket_path=Path(socket_path),
            port=int(env["GATEWAY_PORT"]),
        )

    def is_named(self, name: str | None) -> None:
        """A script asked about another gateway refuses: it never acts on one it was not set up for."""
        if name is not None and name != self.name:
            raise Refused(f"this host runs gateway {self.name!r}, not {name!r}")


# ---- files the scripts keep -------------------------------------------------------------------------------


def read_json(path: Path, empty: Any) -> Any:
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else empty


def write_json(path: Path, value: Any) -> None:
    """Whole file or nothing: a script killed mid-write leaves the previous version."""
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(json.dumps(value, indent=2) + "\n", encoding="utf-8")
    os.replace(partial, path)


def append_line(path: Path, line: str) -> None:
    with path.open("a", encoding="utf-8") as file:
        file.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S%z')} {line}\n")


@contextmanager
def exclusive(lock_path: Path) -> Iterator[None]:
    """One run at a time: a second run (a retry of the same key) waits and then sees the first's record."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


# ---- the gateway, through its service manager and its own endpoint ----------------------------------------


class UnixSocketConnection(http.client.HTTPConnection):
    def __init__(self, path: Path, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.socket_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(str(self.socket_path))
        self.sock = sock


class UnixSocketTransport(xmlrpc.client.Transport):
    def __init__(self, path: Path) -> None:
        super().__init__()
        self.socket_path = path

    def make_connection(self, host: Any) -> http.client.HTTPConnection:
        return UnixSocketConnection(self.socket_path, timeout=60)


def supervisor(place: Place) -> Any:
    """supervisord's `supervisor` XML-RPC namespace, over its unix socket."""
    proxy = xmlrpc.client.ServerProxy(
        "http://localhost/RPC2", transport=UnixSocketTransport(place.socket_path)
    )
    try:
        proxy.supervisor.getState()
    except (OSError, xmlrpc.client.Error) as error:
        raise Failed(f"supervisord is not reachable on {place.socket_path}: {error}") from None
    return proxy.supervisor


def running_pid(control: Any, program: str) -> int | None:
    """The program's pid while it has a process (starting, running or stopping); supervisord says 0 if not."""
    return int(control.getProcessInfo(program)["pid"]) or None


def rss_mb(pid: int) -> float:
    """The process's resident memory, from the kernel (`VmRSS` in /proc/<pid>/status)."""
    for line in Path(f"/proc/{pid}/status").read_text(encoding="utf-8").splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    raise Failed(f"/proc/{pid}/status has no VmRSS line")


def health(port: int) -> dict[str, Any] | None:
    """The gateway's own answer on its health endpoint, or None when it gives none."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
            body: dict[str, Any] = json.load(response)
            return body
    except (OSError, ValueError, urllib.error.URLError):
        return None


def healthy_as(place: Place, pid: int) -> bool:
    body = health(place.port)
    return body is not None and body.get("status") == "ok" and body.get("pid") == pid


def restart_times(data: Path) -> list[float]:
    """When each safe restart happened (`restarts.json`, oldest first)."""
    times: list[float] = read_json(data / "restarts.json", [])
    return times


# ---- the cleaning --------------------------------------------------------------------------------------


def clean_dead_runs(data: Path) -> list[str]:
    """Remove the dead scheduled runs and their cron sessions from sessions.json."""
    dead = sorted(
        path.stem
        for path in (data / "runs").glob("*.json")
        if json.loads(path.read_text(encoding="utf-8")).get("status") == "dead"
    )
    sessions_file = data / "sessions.json"
    if dead and sessions_file.exists():
        sessions = read_json(sessions_file, {"sessions": []})["sessions"]
        kept = [session for session in sessions if session.get("run") not in dead]
        write_json(sessions_file, {"sessions": kept})
    for name in dead:
        (data / "runs" / f"{name}.json").unlink()
    return dead


def clean_junk_files(data: Path) -> list[str]:
    junk = sorted(
        str(path.relative_to(data)) for path in data.rglob("*") if path.name.endswith(JUNK_SUFFIXES)
    )
    for name in junk:
        (data / name).unlink()
    return junk
