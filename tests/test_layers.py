"""What runs an incident never imports an operator's tool (issue 12): activities, workflows, workers and
schemas use the core of `stanch`, never `stanch.ops` (the CLI, the dev stack, the audit readers)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNTIME_PACKAGES = ("activities", "workflows", "workers", "schemas")
# The core modules of `stanch` an incident runs on import none of the tools either.
CORE_MODULES = sorted(p for p in (ROOT / "stanch").glob("*.py") if p.name != "__main__.py")
TOOLS = "stanch.ops"


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def runtime_files() -> list[Path]:
    files = [p for package in RUNTIME_PACKAGES for p in (ROOT / package).rglob("*.py")]
    return sorted([*files, *CORE_MODULES])


def test_runtime_code_imports_no_operator_tool() -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(m for m in imported_modules(path) if m.startswith(TOOLS))
        for path in runtime_files()
    }
    offenders = {path: modules for path, modules in offenders.items() if modules}
    assert offenders == {}, f"runtime code imports operator tools: {offenders}"


def test_the_check_sees_an_import_of_a_tool(tmp_path: Path) -> None:
    # The check above must be able to fail: an import of a tool, in either form, is seen.
    module = tmp_path / "m.py"
    module.write_text(
        "from stanch.ops.cli import main\nimport stanch.ops.samples\nfrom stanch.ops import replay\n"
    )
    assert {"stanch.ops.cli", "stanch.ops.samples", "stanch.ops", "stanch.ops.replay"} <= imported_modules(
        module
    )
