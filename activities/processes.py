"""Running an adapter's programs (scripts, git, pg_dump): no shell, a process group of their own, and
nothing they started outliving the call — the command, git and postgres adapters share this one runner."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Finished:
    """How one run of a command ended."""

    returncode: int | None  # None: killed at the timeout
    stdout: str
    stderr: str

    @property
    def timed_out(self) -> bool:
        return self.returncode is None


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


async def _feed(stream: asyncio.StreamWriter | None, text: str | None) -> None:
    if stream is None or text is None:
        return
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # a program that does not read it
        stream.write(text.encode())
        await stream.drain()
    stream.close()


async def _drain(stream: asyncio.StreamReader | None, sink: bytearray) -> None:
    if stream is None:
        return
    while chunk := await stream.read(65536):
        sink.extend(chunk)


async def run_command(
    argv: list[str], env: Mapping[str, str], cwd: Path | None, timeout_s: float, stdin: str | None = None
) -> Finished:
    """Run `argv` (no shell) in a process group of its own, with `stdin` as its input if given; past
    `timeout_s`, or when the caller is cancelled, SIGKILL the whole group. The output read until then is
    kept either way. Raises OSError when the program cannot be started."""
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL if stdin is None else asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=dict(env),
        cwd=cwd,
        start_new_session=True,
    )
    stdout, stderr = bytearray(), bytearray()
    io = asyncio.gather(
        _feed(process.stdin, stdin),
        _drain(process.stdout, stdout),
        _drain(process.stderr, stderr),
        process.wait(),
    )
    try:
        await asyncio.wait_for(io, timeout_s)
        returncode: int | None = process.returncode
    except TimeoutError:
        returncode = None
    finally:
        # A timeout, a cancelled activity, or a script that exited leaving a child behind on its pipes: the
        # group goes; nothing a command started outlives its action.
        _kill_group(process.pid)
        if process.returncode is None:
            await process.wait()
    return Finished(returncode, stdout.decode(errors="replace"), stderr.decode(errors="replace"))
