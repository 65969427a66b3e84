"""The example gateway (examples/gateway/) as a part of the dev stack: supervisord running gateway.py, the
process Stanch's gateway runbooks restart for real through `safe-restart` (config/dev.toml).

Under the example's home: `data/` (seeded once by `gateway.py seed`: dead scheduled runs, `.deleted` and
`.corrupt` files; kept across `make dev` runs like the rest of the dev data), supervisord's socket, pid file
and logs. The gateway listens on a free port (chosen at its first start), or the one given. Once it
answers, the example opens `warm_sessions` sessions, the traffic of a morning, so its memory is above 80 %
of `high_watermark_mb` and the first `stanch fire gateway-memory` restarts it; the restart gives that
memory back.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx

from stanch.ops.devstack.supervisor import Child, LogFn, StartupFailed, free_ports
from stanch.settings import REPO_ROOT, Settings
from stanch.tls import default_tls_context

GATEWAY_DIR = REPO_ROOT / "examples" / "gateway"
READY_TIMEOUT_SECONDS = 30.0
# What `stanch fire gateway-memory` and the sandbox's demo runtime call the gateway.
GATEWAY_NAME = "openclaw-gateway"
# 40 sessions of 2 MiB on a ~20 MiB interpreter: ~100 MiB, about 90 % of 112 MiB; a fresh process is ~18 %.
WARM_SESSIONS = 40
HIGH_WATERMARK_MB = 112.0


# A unix socket's path is at most 107 bytes (sun_path); a checkout or test directory deep enough would stop
# supervisord with "AF_UNIX path too long".
SOCKET_PATH_LIMIT = 100


def supervisor_socket(home: Path) -> Path:
    """supervisord's control socket: in the example's home, or — when that path would be too long for a
    unix socket — in the temp directory under a name unique to this home."""
    beside = home / "supervisor.sock"
    if len(os.fsencode(beside)) <= SOCKET_PATH_LIMIT:
        return beside
    digest = hashlib.sha256(os.fsencode(home.resolve())).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"stanch-gateway-{digest}.sock"


class ExampleGateway:
    """`DevStack(examples=[ExampleGateway()])`."""

    name = "gateway"

    def __init__(
        self,
        *,
        gateway_name: str = GATEWAY_NAME,
        port: int | None = None,
        high_watermark_mb: float = HIGH_WATERMARK_MB,
        warm_sessions: int = WARM_SESSIONS,
        restart_wait_s: float = 3.0,
    ) -> None:
        self.gateway_name = gateway_name
        self.high_watermark_mb = high_watermark_mb
        self.warm_sessions = warm_sessions
        # The script's pause between its announcement and the restart; tests set 0.
        self.restart_wait_s = restart_wait_s
        self.port: int | None = port

    def start(self, home: Path, settings: Settings, log: LogFn) -> Child:
        supervisord = Path(sys.executable).with_name("supervisord")
        if not supervisord.exists():
            raise StartupFailed(f"gateway: {supervisord} is missing; install the dev extra (make install)")
        data = home / "data"
        if not (data / "sessions.json").exists():
            data.mkdir(parents=True, exist_ok=True)
            subprocess.run([sys.executable, str(GATEWAY_DIR / "gateway.py"), "seed", str(data)], check=True)
        # Chosen once: a restarted part (`DevStack.start_part`) is where the worker's environment says.
        self.port = self.port or free_ports(1)[0]
        logs = settings.home / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        child = Child(
            self.name,
            [str(supervisord), "-n", "-c", str(GATEWAY_DIR / "supervisord.conf")],
            logs / f"{self.name}.log",
            echo=log,
            env={**os.environ, **self._supervisord_environment(home)},
        )
        try:
            child.wait_until_ready(self._answers, READY_TIMEOUT_SECONDS, f"the gateway on port {self.port}")
            if self.warm_sessions:
                self._open_sessions(self.warm_sessions)
        except BaseException:
            child.stop()
            raise
        return child

    def environment(self, home: Path, settings: Settings) -> dict[str, str]:
        if self.port is None:
            raise RuntimeError("the example gateway has no port before it starts")
        return {
            "STANCH_EXAMPLE_GATEWAY_HOME": str(home),
            "STANCH_EXAMPLE_GATEWAY_DATA_DIR": str(home / "data"),
            "STANCH_EXAMPLE_GATEWAY_SOCKET": str(supervisor_socket(home)),
            "STANCH_EXAMPLE_GATEWAY_PORT": str(self.port),
            "STANCH_EXAMPLE_GATEWAY_NAME": self.gateway_name,
            "STANCH_EXAMPLE_GATEWAY_HIGH_WATERMARK_MB": f"{self.high_watermark_mb:g}",
            "STANCH_EXAMPLE_GATEWAY_RESTART_WAIT_S": f"{self.restart_wait_s:g}",
        }

    def describe(self, home: Path, settings: Settings) -> str:
        return (
            f"{self.gateway_name} under supervisord, http://127.0.0.1:{self.port}/health "
            f"(watermark {self.high_watermark_mb:g} MB; data in {home / 'data'})"
        )

    def _supervisord_environment(self, home: Path) -> dict[str, str]:
        # What examples/gateway/supervisord.conf reads.
        return {
            "GATEWAY_HOME": str(home),
            "GATEWAY_SUPERVISOR_SOCKET": str(supervisor_socket(home)),
            "GATEWAY_DATA_DIR": str(home / "data"),
            "GATEWAY_PORT": str(self.port),
            "GATEWAY_PYTHON": sys.executable,
        }

    def _answers(self) -> bool:
        with httpx.Client(trust_env=False, timeout=2, verify=default_tls_context()) as http:
            return bool(http.get(f"http://127.0.0.1:{self.port}/health").json().get("status") == "ok")

    def _open_sessions(self, count: int) -> None:
        with httpx.Client(trust_env=False, timeout=30, verify=default_tls_context()) as http:
            response = http.post(f"http://127.0.0.1:{self.port}/sessions", json={"count": count})
        if response.status_code != 200:
            raise StartupFailed(f"gateway: opening {count} sessions answered {response.status_code}")
