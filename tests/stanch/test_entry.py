"""The console script reads `brief` / `approve` / `reject` lines itself, before typer is imported
(stanch/ops/entry.py, issue 15): a line it reads must mean what typer makes of it, and every other line
goes to typer. Here both parsers read the same lines; tests/stanch/test_temporal_http.py runs the script
against a real server and checks what it loads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import typer
from typer.core import TyperGroup

from stanch.ops.cli import app
from stanch.ops.entry import read

# Lines the entry point reads, in the forms a person types.
READ = [
    ["brief", "incident-a"],
    ["brief", "a", "--timeline"],
    ["brief", "--timeline", "a"],
    ["brief", "a", "--no-timeline"],
    ["approve", "a", "rollback", "--as", "alice", "--yes"],
    ["approve", "a", "--as", "alice"],
    ["approve", "--as=alice", "a", "rollback", "-y", "--comment", "seen the graph"],
    ["approve", "a", "send", "--as", "bob", "--text", "we are on it", "--key", "~/.ssh/other", "--comment="],
    ["reject", "a", "rollback", "--as", "alice", "-y"],
    ["reject", "a", "--comment", "not now", "--as", "carol", "--key", "k"],
]
# Lines it leaves to typer: help, usage errors, forms it does not read.
LEFT = [
    [],
    ["--help"],
    ["list"],
    ["brief"],
    ["brief", "a", "b"],
    ["brief", "--help"],
    ["brief", "a", "--timeline=yes"],
    ["approve", "a", "rollback"],  # no --as
    ["approve", "a", "--as"],  # no value
    ["approve", "a", "--as", "-y"],  # a value typer might read otherwise
    ["approve", "a", "--as", "alice", "--as", "bob"],
    ["approve", "a", "b", "c", "--as", "alice"],
    ["approve", "a", "--as", "alice", "--", "rollback"],
    ["approve", "a", "--as", "alice", "-yq"],
    ["reject", "a", "--as", "alice", "--text", "t"],  # reject takes no --text
    ["approve", "-", "--as", "alice"],
]


def typer_reads(argv: list[str]) -> dict[str, Any]:
    """The parameters typer's command gets for argv (click's own parser, no command run)."""
    group = typer.main.get_command(app)
    assert isinstance(group, TyperGroup)
    command = group.get_command(typer.Context(group), argv[0])
    assert command is not None
    with command.make_context(argv[0], list(argv[1:])) as context:
        return dict(context.params)


def entry_reads(argv: list[str]) -> dict[str, Any]:
    line = read(argv)
    assert line is not None, argv
    command, arguments, options = line
    if command == "brief":
        return {"incident": arguments[0], "timeline": options.get("timeline", False)}
    params: dict[str, Any] = {
        "incident": arguments[0],
        "action": arguments[1] if len(arguments) > 1 else None,
        "approver": options["approver"],
        "comment": options.get("comment", ""),
        "key": Path(str(options["key"])) if "key" in options else None,
        "yes": options.get("yes", False),
    }
    if command == "approve":
        params["text"] = options.get("text")
    return params


@pytest.mark.parametrize("argv", READ, ids=" ".join)
def test_a_line_the_entry_point_reads_means_what_typer_reads(argv: list[str]) -> None:
    assert entry_reads(argv) == typer_reads(argv)


@pytest.mark.parametrize("argv", LEFT, ids=lambda argv: " ".join(argv) or "nothing")
def test_help_usage_errors_and_unread_forms_are_left_to_typer(argv: list[str]) -> None:
    assert read(argv) is None
