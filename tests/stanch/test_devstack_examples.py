"""The example gateway's control socket fits a unix socket's path limit wherever the dev home is: a deep
checkout or test directory once stopped supervisord with "AF_UNIX path too long"."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from stanch.ops.devstack.example_gateway import supervisor_socket


def test_a_short_home_keeps_the_socket_beside_its_logs(tmp_path: Path) -> None:
    assert supervisor_socket(tmp_path) == tmp_path / "supervisor.sock"


def test_a_deep_home_gets_a_short_socket_of_its_own_that_really_binds(tmp_path: Path) -> None:
    deep = tmp_path.joinpath(*["a-rather-long-directory-name"] * 5)
    other = tmp_path.joinpath(*["another-long-directory-name"] * 5)
    path = supervisor_socket(deep)
    assert path != deep / "supervisor.sock" and path != supervisor_socket(other)
    assert path == supervisor_socket(deep)  # the worker and supervisord compute the same one
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(path))  # what supervisord does; the path beside the deep home would not bind
        try:
            assert path.exists()
        finally:
            os.unlink(path)
