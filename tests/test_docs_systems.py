"""docs/connect-your-systems.md covers every interface: each abstract method of each system is a row of its
system's table under "What each call must do", with every activity type name the worker registers for it
and contract routes that the contract really has; every adapter Stanch ships is in the adapters table; and
the links into and out of the page resolve.

Which activity names belong to which method is not read from the source but observed: the worker's own
`system_activities` is built on one recording adapter per system, and each activity is run once outside a
worker (where `@heartbeating` just calls through) to see which method of which system it calls.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections import defaultdict
from pathlib import Path
from typing import Any, get_type_hints

from pydantic import BaseModel
from temporalio import activity

from activities.adapters import BUILTIN_ADAPTERS, Adapter, AdapterContext, AdapterSettings
from activities.systems import INTERFACES, Systems
from workers.worker import system_activities

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "connect-your-systems.md"
CONTRACT = ROOT / "docs" / "platform-openapi.json"
# Documents that link into the page.
LINKING = [
    ROOT / "README.md",
    *sorted((ROOT / "docs").glob("*.md")),
    *sorted(ROOT.glob("examples/*/README.md")),
]

ROUTE = re.compile(r"`(GET|POST|PUT|DELETE|PATCH) (/[^`\s]*)`")
LINK = re.compile(r"\]\(([^)\s]+)\)")


def section(text: str, heading: str) -> str:
    """The text under `## heading` up to the next `## ` heading."""
    start = text.index(f"\n## {heading}\n")
    following = text.find("\n## ", start + 1)
    return text[start : following if following != -1 else len(text)]


def table_rows(text: str) -> list[list[str]]:
    """The cells of every table row in `text` that is neither a header rule nor empty."""
    rows = []
    for line in text.splitlines():
        if line.startswith("|") and not set(line) <= set("|-: "):
            rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows


def call_tables(text: str) -> dict[str, dict[str, list[str]]]:
    """system → method → the activity names of its row, from "What each call must do"; the method and its
    activities are the backticked names of a row's first cell (`method` (`activity`, `activity`))."""
    calls = section(text, "What each call must do")
    tables: dict[str, dict[str, list[str]]] = {}
    parts = re.split(r"^### (\w+) — .*$", calls, flags=re.M)
    for system, body in zip(parts[1::2], parts[2::2], strict=True):
        rows = table_rows(body)[1:]  # past the header row
        methods: dict[str, list[str]] = {}
        for row in rows:
            names = re.findall(r"`([a-z_]+)`", row[0])
            assert names, f"{system}: a row without a method: {row}"
            assert names[0] not in methods, f"{system}: two rows for {names[0]}"
            methods[names[0]] = names[1:]
        tables[system] = methods
    return tables


def interface_methods(interface: type[Adapter]) -> set[str]:
    """The interface's own abstract methods (`check` is every adapter's, documented once for all)."""
    return set(interface.__abstractmethods__) - set(Adapter.__abstractmethods__)


def recording(interface: type[Adapter], calls: list[tuple[str, str]]) -> Adapter:
    """An implementation of `interface` whose every method only notes (system, method) in `calls`."""

    def note(name: str) -> Any:
        async def method(self: Adapter, request: Any) -> None:
            calls.append((self.system, name))

        return method

    namespace = {name: note(name) for name in interface.__abstractmethods__}
    namespace["adapter"] = "recording"
    cls = type(f"Recording{interface.__name__}", (interface,), namespace)
    return cls(AdapterSettings(), AdapterContext(platform_url="http://127.0.0.1:9"))


def registered_activities() -> dict[str, dict[str, set[str]]]:
    """system → method → the activity type names the worker registers that call that method."""
    calls: list[tuple[str, str]] = []
    systems = Systems(**{system: recording(interface, calls) for system, interface in INTERFACES.items()})
    found: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for fn in system_activities(systems):
        name = activity._Definition.must_from_callable(fn).name
        request_type = next(hint for key, hint in get_type_hints(fn).items() if key != "return")
        assert issubclass(request_type, BaseModel), f"{name}: its request is not a model"
        calls.clear()
        asyncio.run(fn(request_type.model_construct()))
        assert len(calls) == 1, f"activity {name} called {calls}, not one adapter method"
        system, method = calls[0]
        found[system][method].add(name)
    return found


def test_every_method_of_every_interface_is_a_row_of_its_system_table() -> None:
    tables = call_tables(DOC.read_text(encoding="utf-8"))
    assert set(tables) == set(INTERFACES), "one table per system, named as in activities.systems.INTERFACES"
    for system, interface in INTERFACES.items():
        documented = set(tables[system])
        methods = interface_methods(interface)
        assert methods - documented == set(), f"{system}: methods without a row"
        assert documented - methods == set(), f"{system}: rows for methods the interface does not have"


def test_every_registered_activity_name_is_in_its_method_row() -> None:
    tables = call_tables(DOC.read_text(encoding="utf-8"))
    registered = registered_activities()
    assert registered["agents"]["revoke_tokens"] == {"agents_revoke_tokens", "security_revoke_tokens"}
    for system, interface in INTERFACES.items():
        assert set(registered[system]) <= interface_methods(interface)
        for method in interface_methods(interface):
            names = registered[system][method]
            assert names, f"{system}.{method}: no activity calls it"
            documented = set(tables.get(system, {}).get(method, []))
            assert documented == names, f"{system}.{method}: the row names {documented}, the worker {names}"


def test_every_route_the_tables_name_is_in_the_contract() -> None:
    paths = json.loads(CONTRACT.read_text(encoding="utf-8"))["paths"]
    routes = ROUTE.findall(section(DOC.read_text(encoding="utf-8"), "What each call must do"))
    assert len(routes) > len(INTERFACES)
    missing = [f"{method} {path}" for method, path in routes if method.lower() not in paths.get(path, {})]
    assert missing == [], f"routes not in docs/platform-openapi.json: {missing}"


def test_every_builtin_adapter_is_in_the_adapters_table() -> None:
    rows = table_rows(section(DOC.read_text(encoding="utf-8"), "Choosing an adapter"))
    listed = {(row[0].strip("`"), row[1].strip("`"), row[2].strip("`")) for row in rows if len(row) == 4}
    for (system, name), reference in BUILTIN_ADAPTERS.items():
        module = reference.partition(":")[0].replace(".", "/") + ".py"
        assert (system, name, module) in listed, f"adapter {system}.{name} ({module}) is not in the table"


def anchors(text: str) -> set[str]:
    """GitHub's anchors of a page's headings: lower case, punctuation dropped, spaces as hyphens."""
    seen: dict[str, int] = {}
    found: set[str] = set()
    for heading in re.findall(r"^#{1,6} (.+)$", re.sub(r"```.*?```", "", text, flags=re.S), flags=re.M):
        anchor = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        # A repeated heading gets -1, -2 ... (the three adapters' "Settings").
        found.add(f"{anchor}-{seen[anchor]}" if anchor in seen else anchor)
        seen[anchor] = seen.get(anchor, 0) + 1
    return found


def test_links_into_and_out_of_the_page_resolve() -> None:
    text = DOC.read_text(encoding="utf-8")
    own = anchors(text)
    broken = []
    for target in LINK.findall(text):
        path, _, anchor = target.partition("#")
        if target.startswith(("http://", "https://")):
            continue
        if (path and not (DOC.parent / path).exists()) or (not path and anchor not in own):
            broken.append(f"{DOC.name}: {target}")
    for page in LINKING:
        for target in LINK.findall(page.read_text(encoding="utf-8")):
            path, _, anchor = target.partition("#")
            if path.endswith("connect-your-systems.md") and anchor and anchor not in own:
                broken.append(f"{page.relative_to(ROOT)}: {target}")
    assert broken == [], f"links to headings or files that do not exist: {broken}"
    assert {"the-command-adapter", "the-git-adapter", "the-postgres-adapter"} <= own
