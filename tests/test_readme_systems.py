"""The README's "Connect your systems" example is a policy the adapters accept as written: a reader who
copies it gets a worker that starts, not a line naming a key the README got wrong."""

from __future__ import annotations

import tomllib
from pathlib import Path

from activities.adapters import adapter_class, settings_from_policy

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_readme_systems_example_validates_with_each_adapter() -> None:
    section = README.read_text().split("## Connect your systems", 1)[1]
    example = tomllib.loads(section.split("```toml", 1)[1].split("```", 1)[0])
    systems = example["systems"]
    assert {name: table["adapter"] for name, table in systems.items()} == {
        "gateway": "command",
        "deploys": "git",
        "database": "postgres",
    }
    for system, table in systems.items():
        raw = {key: value for key, value in table.items() if key != "adapter"}
        cls = adapter_class(system, table["adapter"])
        assert isinstance(settings_from_policy(cls, raw, {"CHECKOUT_DB_DSN": "host=db"}), cls.Settings)
