"""The `stanch` console script: `brief`, `approve` and `reject` run before typer is imported (issue 15).

typer (with its click) costs ~50 ms of import, about half of what the `temporal` CLI takes for a whole
query, so a command line this module can read for certain, in the forms `stanch brief --help` documents,
goes straight to stanch/ops/answers.py, the functions the typer commands call. Anything else — another
command, `--help`, an option it does not know, `--`, a missing `--as`, a repeated option — goes to the typer
app untouched, which parses, helps and refuses as it always did. So the help text, the usage errors and
their exit codes stay typer's own, and a line read here means what typer would make of it.

tests/stanch/test_entry.py checks that both readings agree; tests/stanch/test_temporal_http.py that the
script prints and exits as the typer app does, and that over the HTTP API this path loads neither typer,
pydantic nor the Temporal client (the guard that keeps the speed; bench/cli.py measures it).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

# Per command: its options that take a value (→ parameter), its flags (→ parameter, value), and how many
# arguments it takes (incident, then the action for approve / reject).
VALUES = {
    "brief": {},
    "approve": {"--as": "approver", "--comment": "comment", "--text": "text", "--key": "key"},
    "reject": {"--as": "approver", "--comment": "comment", "--key": "key"},
}
FLAGS = {
    "brief": {"--timeline": ("timeline", True), "--no-timeline": ("timeline", False)},
    "approve": {"--yes": ("yes", True), "-y": ("yes", True)},
    "reject": {"--yes": ("yes", True), "-y": ("yes", True)},
}
ARGUMENTS = {"brief": (1, 1), "approve": (1, 2), "reject": (1, 2)}


def read(argv: Sequence[str]) -> tuple[str, list[str], dict[str, object]] | None:
    """(command, arguments, options) when argv is a plain `brief` / `approve` / `reject` line; None when
    typer should read it."""
    if not argv or argv[0] not in ARGUMENTS:
        return None
    command, values, flags = argv[0], VALUES[argv[0]], FLAGS[argv[0]]
    arguments: list[str] = []
    options: dict[str, object] = {}
    rest = list(argv[1:])
    while rest:
        token = rest.pop(0)
        if not token.startswith("-"):
            arguments.append(token)
            continue
        name, equals, value = token.partition("=")
        if name in values:
            if not equals:
                if not rest or rest[0].startswith("-"):
                    return None  # no value, or one typer might read differently
                value = rest.pop(0)
            parameter: str = values[name]
            if parameter in options:
                return None
            options[parameter] = value
        elif name in flags and not equals:
            parameter, flag = flags[name]
            if parameter in options:
                return None
            options[parameter] = flag
        else:
            return None  # --help, -, --, an unknown option: typer's to say
    fewest, most = ARGUMENTS[command]
    if not fewest <= len(arguments) <= most:
        return None
    if command != "brief" and "approver" not in options:
        return None  # typer says `--as` is missing, with its exit code
    return command, arguments, options


def answer(argv: Sequence[str]) -> int | None:
    """Run a command line `read` takes; its exit code, or None for the typer app to run it."""
    line = read(argv)
    if line is None:
        return None
    from stanch.ops import answers

    command, arguments, options = line
    try:
        if command == "brief":
            answers.brief(arguments[0], timeline=bool(options.get("timeline", False)))
        else:
            key = options.get("key")
            text = options.get("text")
            answers.decide(
                arguments[0],
                arguments[1] if len(arguments) > 1 else None,
                str(options["approver"]),
                str(options.get("comment", "")),
                approved=command == "approve",
                text=None if text is None else str(text),
                key=None if key is None else Path(str(key)),
                yes=bool(options.get("yes", False)),
            )
    except (KeyboardInterrupt, EOFError):
        # As click's main answers them under the typer app: a new line, then "Aborted!", exit 1.
        print("\nAborted!", file=sys.stderr)
        return 1
    except SystemExit as exit_:
        code = exit_.code
        if isinstance(code, str):
            print(code, file=sys.stderr)
        return code if isinstance(code, int) else 0 if code is None else 1
    return 0


def main() -> None:
    """Console entry point. Like stanch.ops.cli.main (which the typer app's commands leave through), it
    leaves without finalising the interpreter: a fallback to the SDK may have started its native runtime,
    which can abort at shutdown (PyGILState_Release) after the command has done its work."""
    code = answer(sys.argv[1:])
    if code is None:
        from stanch.ops.cli import main as typer_main

        typer_main()
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
