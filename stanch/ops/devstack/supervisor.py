"""Running one child process of the dev stack: its output, its readiness and its shutdown.

Every child gets its own session, so a Ctrl-C in the terminal reaches only `stanch dev`, which then stops
the children one by one in reverse order instead of all of them dying at once mid-request.
"""

from __future__ import annotations

import collections
import ctypes
import errno
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from stanch.settings import Settings

STOP_TIMEOUT_SECONDS = 10.0
POLL_INTERVAL_SECONDS = 0.1
TAIL_LINES = 40
PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>

LogFn = Callable[[str], None]


class DevStackError(Exception):
    """A failure an operator can act on; `stanch dev` prints it without a traceback."""


class PortInUse(DevStackError):
    """`settings` names the variables to change: the port's own first, then those that repeat the port."""

    def __init__(self, port: int, what: str, settings: Sequence[str]) -> None:
        also = f" (and the port in {' and '.join(settings[1:])})" if len(settings) > 1 else ""
        super().__init__(f"port {port} ({what}) is already in use; set {settings[0]} to another port{also}")
        self.port = port
        self.what = what
        self.settings = list(settings)


class StartupFailed(DevStackError):
    pass


class Interrupted(DevStackError):
    pass


# Set by `stanch dev`'s handler for SIGINT/SIGTERM/SIGHUP. Signals are process-wide, so is this flag; every
# wait below checks it, so a Ctrl-C during start-up takes effect within one poll.
shutdown_requested = threading.Event()


def env_name(field: str) -> str:
    """The environment variable that sets a Settings field, so messages name what the operator can change."""
    return f"{Settings.model_config.get('env_prefix', '')}{field}".upper()


def check_port_free(host: str, port: int, what: str, settings: Sequence[str]) -> None:
    # create_server sets SO_REUSEADDR, so sockets of a just-stopped run in TIME_WAIT do not count as busy;
    # on Linux only a listener (also one on 0.0.0.0) makes the bind fail, which is exactly "in use".
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        socket.create_server((host, port), family=family).close()
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            raise PortInUse(port, what, settings) from error
        raise DevStackError(
            f"cannot listen on {host}:{port} ({what}): {error}; check {settings[0]}"
        ) from error


def _die_with_parent(stop_signal: signal.Signals) -> Callable[[], None] | None:
    """Have the kernel send the child its stop signal when `stanch dev` dies without stopping it.

    Children live in their own sessions, so a SIGKILLed or crashed supervisor would otherwise leave them
    holding the ports, and the next start would fail. Linux ties this to the thread that forked, so it is
    only safe from the main thread: a short-lived helper thread would take the children with it.
    """
    if sys.platform != "linux" or threading.current_thread() is not threading.main_thread():
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl

    def set_parent_death_signal() -> None:
        prctl(PR_SET_PDEATHSIG, int(stop_signal), 0, 0, 0)

    return set_parent_death_signal


class Child:
    """One supervised process; its output goes to a log file and optionally to the terminal, line by line."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        *,
        echo: LogFn | None = None,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        user: str | None = None,
        stop_signal: signal.Signals = signal.SIGTERM,
        append: bool = False,
    ) -> None:
        self.name = name
        self.log_path = log_path
        self._stop_signal = stop_signal
        self._echo = echo
        self._tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        self._tail_lock = threading.Lock()
        # A part restarted within one run (`DevStack.start_part`) keeps its earlier lines: they show the outage.
        self._log_file = log_path.open("a" if append else "w", encoding="utf-8")
        try:
            self._process = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=dict(env) if env is not None else None,
                cwd=cwd,
                user=user,
                start_new_session=True,
                preexec_fn=_die_with_parent(stop_signal),
            )
        except BaseException:
            self._log_file.close()
            raise
        self._reader = threading.Thread(target=self._pump, name=f"devstack-{name}-output", daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def returncode(self) -> int | None:
        return self._process.poll()

    def alive(self) -> bool:
        return self._process.poll() is None

    def tail(self) -> str:
        with self._tail_lock:
            return "\n".join(self._tail)

    def _pump(self) -> None:
        assert self._process.stdout is not None
        with self._log_file:
            for raw in self._process.stdout:
                line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
                self._log_file.write(line + "\n")
                self._log_file.flush()
                with self._tail_lock:
                    self._tail.append(line)
                if self._echo is not None:
                    try:
                        self._echo(f"[{self.name}] {line}")
                    except Exception:
                        # A gone terminal (`stanch dev | head`) must not stop the draining: the child would
                        # block on a full pipe. The log file still gets every line.
                        self._echo = None

    def stop(self, timeout: float = STOP_TIMEOUT_SECONDS) -> None:
        """Graceful signal, bounded wait, then SIGKILL for the whole session; safe to call twice."""
        if self.alive():
            try:
                self._process.send_signal(self._stop_signal)
                self._process.wait(timeout)
            except subprocess.TimeoutExpired:
                self._kill_group()
                self._process.wait()
        # Whatever the child left behind in its session (a grandchild holding our pipe) must not outlive it.
        self._kill_group()
        self._reader.join(5)

    def kill(self) -> None:
        """SIGKILL for the whole session, as a crash or an OOM kill would end it; then reap it."""
        self._kill_group()
        self._process.wait()
        self._reader.join(5)

    def _kill_group(self) -> None:
        try:
            os.killpg(self._process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def wait_until_ready(self, ready: Callable[[], bool], timeout: float, what: str) -> None:
        """Poll `ready` until it holds; fail early if the process dies, and show why from its own output.

        An exception from `ready` means "not yet": servers refuse connections while they start.
        """
        deadline = time.monotonic() + timeout
        last_error = "not ready"
        while True:
            if shutdown_requested.is_set():
                raise Interrupted(f"interrupted while waiting for {what}")
            if not self.alive():
                raise StartupFailed(
                    f"{self.name} exited with code {self.returncode} before {what}; "
                    f"last lines of {self.log_path}:\n{self.tail()}"
                )
            try:
                if ready():
                    return
            except Exception as error:
                last_error = f"{type(error).__name__}: {error}"
            if time.monotonic() > deadline:
                raise StartupFailed(
                    f"{self.name}: no {what} within {timeout:.0f} s ({last_error}); "
                    f"last lines of {self.log_path}:\n{self.tail()}"
                )
            time.sleep(POLL_INTERVAL_SECONDS)


def _ports_below_the_ephemeral_range() -> range:
    """Ports no outgoing connection takes as its local port: those below the kernel's ephemeral range
    (net.ipv4.ip_local_port_range, 32768 to 60999 by default)."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    return range(max(1024, low - 12000), low)


def free_ports(count: int) -> list[int]:
    """`count` different ports free now, each below the ephemeral range. A port from bind(("", 0)) lies in
    that range, where any outgoing connection of a part starting meanwhile may take it as its local port
    before the part given it binds: seen as "address already in use" for the console, the last part up."""
    candidates = _ports_below_the_ephemeral_range()
    chooser = random.SystemRandom()
    # Held open together, so no port is handed out twice.
    sockets: list[socket.socket] = []
    try:
        while len(sockets) < count:
            try:
                sockets.append(socket.create_server(("127.0.0.1", chooser.choice(candidates))))
            except OSError:
                continue  # taken: draw again
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()
