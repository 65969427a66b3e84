"""An embedded Postgres 16 from the pgserver wheel's binaries, listening on 127.0.0.1.

pgserver's own `get_server` is not used: it listens only on a Unix socket and stops the server at exit of
whichever process asked for it, while the stack's workers need TCP and a server owned by `stanch dev`.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import stat
import subprocess
import warnings
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from stanch import db
from stanch.ops.devstack.supervisor import Child, StartupFailed
from stanch.settings import Settings

with warnings.catch_warnings():
    # Importing the package computes a runtime dir for its own server handles and warns when
    # XDG_RUNTIME_DIR is unset; the dev stack uses only the binaries and the permission helpers.
    warnings.simplefilter("ignore")
    from pgserver._commands import POSTGRES_BIN_PATH
    from pgserver.utils import ensure_folder_permissions, ensure_prefix_permissions, ensure_user_exists

READY_TIMEOUT_SECONDS = 30.0
INITDB_TIMEOUT_SECONDS = 120.0
SUPERUSER = "postgres"
# Postgres refuses to run as root; as root the server runs as this system user, as pgserver itself does.
SYSTEM_USER = "pgserver"
# sun_path holds 108 bytes with the terminating NUL.
MAX_SOCKET_PATH = 107


def data_dir(settings: Settings) -> Path:
    return settings.home / "postgres"


def _system_user() -> str | None:
    return SYSTEM_USER if os.geteuid() == 0 else None


def _give_to(path: Path, user: str) -> None:
    entry = pwd.getpwnam(user)
    os.chown(path, entry.pw_uid, entry.pw_gid)


def prepare(settings: Settings) -> None:
    """Make the binaries usable by the server's user and create the cluster on first use."""
    user = _system_user()
    if user is not None:
        ensure_user_exists(user)
        ensure_prefix_permissions(POSTGRES_BIN_PATH)
        read = stat.S_IRGRP | stat.S_IROTH
        ensure_folder_permissions(POSTGRES_BIN_PATH, read | stat.S_IXGRP | stat.S_IXOTH)
        ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", read)
    target = data_dir(settings)
    if (target / "PG_VERSION").exists():
        if user is not None:
            # Again on every start, not only at initdb: a folder above the data may have been made private
            # since (pytest resets its /tmp/pytest-of-<user> to 0700 whenever a new run starts).
            ensure_prefix_permissions(target)
        return
    if target.is_dir() and any(target.iterdir()):
        raise StartupFailed(f"{target} holds files but no Postgres cluster (no PG_VERSION); move it away")
    # initdb into a scratch dir and rename it: a run killed halfway leaves no half-made cluster behind,
    # which initdb would refuse ("exists but is not empty") on every later start.
    scratch = settings.home / "postgres.initdb"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    if user is not None:
        ensure_prefix_permissions(scratch)
        _give_to(scratch, user)
    argv = [
        str(POSTGRES_BIN_PATH / "initdb"),
        "-D",
        str(scratch),
        "--auth=trust",
        "--encoding=utf8",
        # The C locale exists everywhere; the terminal's locale may not be installed for the server's user.
        "--no-locale",
        "-U",
        SUPERUSER,
    ]
    try:
        result = subprocess.run(
            argv,
            cwd=scratch,
            user=user,
            capture_output=True,
            text=True,
            # Out of the terminal's process group, like the server: Ctrl-C is for `stanch dev` to handle.
            start_new_session=True,
            timeout=INITDB_TIMEOUT_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired as error:
        raise StartupFailed(f"initdb did not finish within {INITDB_TIMEOUT_SECONDS:.0f} s") from error
    if result.returncode != 0:
        raise StartupFailed(f"initdb failed with code {result.returncode}:\n{result.stdout}{result.stderr}")
    # rename(2) may replace an empty directory, which is all `target` can be at this point.
    scratch.rename(target)


def command(settings: Settings) -> list[str]:
    directory = data_dir(settings)
    socket_path = directory / f".s.PGSQL.{settings.postgres_port}"
    # Postgres fails outright when it cannot create a requested socket; a deep home gets TCP only.
    socket_dir = str(directory) if len(os.fsencode(socket_path)) <= MAX_SOCKET_PATH else ""
    return [
        str(POSTGRES_BIN_PATH / "postgres"),
        "-D",
        str(directory),
        "-h",
        "127.0.0.1",
        "-p",
        str(settings.postgres_port),
        "-k",
        socket_dir,
    ]


def launch(settings: Settings, logs: Path, *, append: bool = False) -> Child:
    prepare(settings)
    # A postmaster.pid left by a killed server needs no cleanup: Postgres ignores it when that pid is gone.
    return Child(
        "postgres",
        command(settings),
        logs / "postgres.log",
        cwd=data_dir(settings),
        user=_system_user(),
        # SIGINT is Postgres' "fast" shutdown; SIGTERM ("smart") would wait for every client to disconnect.
        stop_signal=signal.SIGINT,
        append=append,
    )


def wait_ready(child: Child, settings: Settings) -> None:
    """Ready means migrated: the database exists and `stanch.db.migrate` has run on it."""
    maintenance = make_conninfo(settings.database_admin_url, dbname="postgres")

    def accepts_connections() -> bool:
        psycopg.connect(maintenance, connect_timeout=2).close()
        return True

    child.wait_until_ready(accepts_connections, READY_TIMEOUT_SECONDS, "Postgres accepting connections")
    dbname = str(conninfo_to_dict(settings.database_admin_url)["dbname"])
    with psycopg.connect(maintenance, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone()
        if exists is None:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
    db.migrate(settings.database_admin_url)
