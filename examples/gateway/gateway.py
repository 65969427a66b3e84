"""A small real gateway for Stanch's gateway runbooks to act on: a process that holds memory.

It stands in for a chat gateway run by a service manager (supervisord here, systemd in the seed's world):
every session it opens keeps a cache in memory that only a restart gives back, so its resident memory grows
with the sessions it has served and falls when it restarts. It keeps, in its data directory:

- `sessions.json`: the sessions it knows, chat sessions and the sessions of its scheduled (cron) runs;
- `runs/<name>.json`: its scheduled runs, each `alive` or `dead` (a dead run is one whose job stopped and
  left its record and its cron session behind: what the safe restart cleans);
- `*.deleted` / `*.corrupt`: session transcripts it marked for removal or could not read back.

HTTP on 127.0.0.1:`GATEWAY_PORT`:

- `GET /health` → 200 `{"status": "ok", "pid", "rss_mb", "sessions", "cached_sessions", "scheduled_runs"}`,
  the memory read from this process's own `/proc/self/status`;
- `POST /sessions` `{"count": n}` → opens n chat sessions, each caching `GATEWAY_SESSION_MB` MiB.

Settings from the environment: `GATEWAY_PORT` (required), `GATEWAY_DATA_DIR` (required),
`GATEWAY_SESSION_MB` (2), `GATEWAY_BASE_MB` (0: memory held from start). `<data>/gateway.json`, if present,
is its configuration file (`{"session_mb": ...}`); a file it cannot parse stops it at start with exit 2, the
way a broken config keeps a real service from coming back.

`python gateway.py seed <data-dir>` writes the demo state: two dead scheduled runs and one alive, their cron
sessions, one chat session, and one `.deleted` and one `.corrupt` transcript.

Standard library only: it runs under any Python 3.11+.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

MIB = 1024 * 1024


def rss_kb(pid: int | str = "self") -> int:
    """Resident memory of a process in KiB, from the kernel's own accounting (`VmRSS` in /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text(encoding="utf-8").splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/{pid}/status has no VmRSS line")


def write_json(path: Path, value: Any) -> None:
    """Write a whole file or nothing: a reader (or a crash) never sees half a file."""
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(json.dumps(value, indent=2) + "\n", encoding="utf-8")
    os.replace(partial, path)


def read_sessions(data: Path) -> list[dict[str, Any]]:
    path = data / "sessions.json"
    if not path.exists():
        return []
    sessions: list[dict[str, Any]] = json.loads(path.read_text(encoding="utf-8"))["sessions"]
    return sessions


def read_runs(data: Path) -> dict[str, str]:
    """Each scheduled run's name and status (`alive` or `dead`)."""
    runs: dict[str, str] = {}
    for path in sorted((data / "runs").glob("*.json")):
        runs[path.stem] = json.loads(path.read_text(encoding="utf-8"))["status"]
    return runs


def seed(data: Path) -> None:
    """The demo state the sandbox's `openclaw-gateway` has, on disk."""
    (data / "runs").mkdir(parents=True, exist_ok=True)
    runs = {"nightly-digest": "alive", "cron-7f2": "dead", "cron-9a1": "dead"}
    for name, status in runs.items():
        write_json(data / "runs" / f"{name}.json", {"name": name, "status": status})
    sessions = [{"id": f"cron:{name}", "kind": "cron", "run": name} for name in runs]
    sessions.append({"id": "s-43", "kind": "chat"})
    write_json(data / "sessions.json", {"sessions": sessions})
    (data / "s-41.jsonl.deleted").write_text('{"turn": 1}\n', encoding="utf-8")
    (data / "s-42.jsonl.corrupt").write_text('{"turn": 1', encoding="utf-8")
    (data / "s-43.jsonl").write_text('{"turn": 1}\n', encoding="utf-8")


class Gateway:
    def __init__(self, data: Path, session_mb: float, base_mb: float) -> None:
        self.data = data
        self.session_mb = session_mb
        self.lock = threading.Lock()
        self.started_at = time.time()
        # Filled with a non-zero byte so every page is touched and counts in the resident set.
        self.held = [b"\x01" * int(base_mb * MIB)] if base_mb else []
        self.cache: dict[str, bytes] = {}

    def open_sessions(self, count: int) -> list[str]:
        with self.lock:
            sessions = read_sessions(self.data)
            opened = []
            for _ in range(count):
                session_id = f"s-{os.getpid()}-{len(sessions) + 1}"
                sessions.append({"id": session_id, "kind": "chat", "opened_at": time.time()})
                self.cache[session_id] = b"\x01" * int(self.session_mb * MIB)
                opened.append(session_id)
            write_json(self.data / "sessions.json", {"sessions": sessions})
            return opened

    def health(self) -> dict[str, Any]:
        runs = read_runs(self.data)
        return {
            "status": "ok",
            "pid": os.getpid(),
            "rss_mb": round(rss_kb() / 1024, 1),
            "sessions": len(read_sessions(self.data)),
            "cached_sessions": len(self.cache),
            "scheduled_runs": {
                "alive": sum(1 for status in runs.values() if status == "alive"),
                "dead": sum(1 for status in runs.values() if status == "dead"),
            },
            "uptime_s": round(time.time() - self.started_at, 1),
        }


def handler_for(gateway: Gateway) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def answer(self, status: int, body: dict[str, Any]) -> None:
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def do_GET(self) -> None:
            if self.path == "/health":
                self.answer(200, gateway.health())
            else:
                self.answer(404, {"error": f"no route {self.path}"})

        def do_POST(self) -> None:
            if self.path != "/sessions":
                self.answer(404, {"error": f"no route {self.path}"})
                return
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            count = body.get("count", 1)
            if not isinstance(count, int) or not 0 < count <= 1000:
                self.answer(422, {"error": "count must be an integer from 1 to 1000"})
                return
            self.answer(200, {"opened": gateway.open_sessions(count), **gateway.health()})

        def log_message(self, format: str, *args: Any) -> None:
            # One line per request on stderr, which supervisord keeps in the gateway's log.
            sys.stderr.write(f"gateway[{os.getpid()}]: {format % args}\n")

    return Handler


def config_from(data: Path) -> dict[str, Any]:
    path = data / "gateway.json"
    if not path.exists():
        return {}
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as error:
        raise SystemExit(f"gateway: cannot read its configuration {path}: {error}") from None
    if not isinstance(config, dict):
        raise SystemExit(f"gateway: its configuration {path} must be a JSON object")
    return config


def serve() -> None:
    port = int(os.environ["GATEWAY_PORT"])
    data = Path(os.environ["GATEWAY_DATA_DIR"])
    (data / "runs").mkdir(parents=True, exist_ok=True)
    config = config_from(data)
    gateway = Gateway(
        data,
        session_mb=float(config.get("session_mb", os.environ.get("GATEWAY_SESSION_MB", "2"))),
        base_mb=float(os.environ.get("GATEWAY_BASE_MB", "0")),
    )
    server = ThreadingHTTPServer(("127.0.0.1", port), handler_for(gateway))
    # supervisord stops it with SIGTERM: leave serve_forever cleanly and exit 0.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    sys.stderr.write(f"gateway[{os.getpid()}]: serving on 127.0.0.1:{port}, data in {data}\n")
    sys.stderr.flush()
    try:
        server.serve_forever()
    finally:
        server.server_close()


def main(argv: list[str]) -> None:
    if argv[1:2] == ["seed"] and len(argv) == 3:
        seed(Path(argv[2]))
    elif len(argv) == 1:
        serve()
    else:
        raise SystemExit("usage: gateway.py [seed <data-dir>]")


if __name__ == "__main__":
    main(sys.argv)
