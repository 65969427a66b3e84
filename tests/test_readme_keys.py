"""The README's "Set up your key and approve" is true as written: every `stanch` command it shows exists in
the CLI with every option it names, the mode it says the shipped policy has is the one config/stanch.toml
has, and the tour signs as alice with the demo key config/dev.toml gives her."""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import pytest
import typer.main

from stanch.ops.cli import app
from stanch.policy import load_policy
from stanch.settings import REPO_ROOT
from stanch.signing import load_private_key, parse_public_key

README = REPO_ROOT / "README.md"
SECTION = "## Set up your key and approve"


def section() -> str:
    text = README.read_text()
    assert SECTION in text
    return text.split(SECTION, 1)[1].split("\n## ", 1)[0]


def commands_in(text: str) -> list[str]:
    """Each `stanch …` command the text shows: lines of its shell blocks (comments dropped) and code spans."""
    found: list[str] = []
    prose = text
    for block in re.findall(r"```sh\n(.*?)```", text, flags=re.DOTALL):
        prose = prose.replace(block, "")
        for line in block.splitlines():
            command = line.split("#", 1)[0].strip()
            if command.startswith("stanch "):
                found.append(command)
    for span in re.findall(r"`(stanch\s[^`]+)`", prose):
        found.append(" ".join(span.split()))
    return found


def resolve(words: list[str]) -> Any:
    """The CLI command `stanch <words>` runs, or an AssertionError naming what the CLI lacks. (Typer brings
    its own copy of click, so a group is told by its `commands`, not by click's classes.)"""
    command: Any = typer.main.get_command(app)
    for word in words[1:]:
        subcommands = getattr(command, "commands", None)
        if word.startswith("-") or subcommands is None:
            break
        if word not in subcommands:
            if word.startswith("<"):
                break
            raise AssertionError(f"`{' '.join(words)}`: the CLI has no command {word!r} here")
        command = subcommands[word]
    assert getattr(command, "commands", None) is None, f"{' '.join(words)}: names a group, not a command"
    return command


SHOWN = commands_in(section())


def test_the_section_shows_the_key_commands() -> None:
    shown = {" ".join(shlex.split(command)[:3]) for command in SHOWN}
    assert {"stanch keys list", "stanch keys sync"} <= shown
    assert any(command.startswith("stanch approve ") and "--key" in command for command in SHOWN)
    assert any(command.startswith("stanch sign ") for command in SHOWN)


@pytest.mark.parametrize("shown", SHOWN)
def test_each_command_the_section_shows_exists_with_its_options(shown: str) -> None:
    words = shlex.split(shown)
    command = resolve(words)
    options = {name for param in command.params for name in (*param.opts, *param.secondary_opts)}
    for word in words:
        if word.startswith("--"):
            assert word.split("=", 1)[0] in options, f"{shown}: `{command.name}` has no option {word}"


def test_the_mode_the_readme_says_is_shipped_is_the_shipped_policys() -> None:
    said = re.search(r'config/stanch\.toml ships `signatures = "(\w+)"`', section())
    assert said is not None
    shipped = tomllib.loads((REPO_ROOT / "config" / "stanch.toml").read_text())["approvals"]["signatures"]
    assert said.group(1) == shipped


def test_the_tour_signs_as_alice_with_the_demo_key_the_dev_policy_gives_her() -> None:
    text = " ".join(README.read_text().split())
    tour = re.findall(r"stanch approve [^`#]*--key config/dev-keys/\w+", text)
    assert len(tour) >= 3, tour  # steps 4 and 8, and the section's example
    dev = load_policy(REPO_ROOT / "config" / "dev.toml")
    for line in tour:
        words = shlex.split(line)
        person = words[words.index("--as") + 1]
        key = load_private_key(REPO_ROOT / Path(words[words.index("--key") + 1]))
        public = key.public_key()
        owned = {parse_public_key(held).key.public_bytes_raw() for held in dev.people[person].keys}
        assert public.public_bytes_raw() in owned, line
        assert dev.people[person].demo
