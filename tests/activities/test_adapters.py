"""Choosing an adapter per system (issue 12): Stanch's own, a third party's through the `stanch.adapters`
entry-point group, settings validated per adapter with secrets from the environment and `${NAME}` expanded,
errors that name the policy key, and the worker refusing to start on one."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest

from activities.adapters import (
    AdapterConfigError,
    AdapterContext,
    adapter_class,
    available_adapters,
    open_adapter,
)
from activities.gateway.http import HttpGateway
from activities.systems import open_systems
from schemas.gateway import GatewayRead
from stanch.policy import load_policy
from stanch.tls import default_tls_context

REPO = Path(__file__).resolve().parents[2]


def context(platform_url: str = "http://127.0.0.1:9") -> AdapterContext:
    return AdapterContext(platform_url=platform_url, base_dir=REPO / "config")


@pytest.fixture
def third_party(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A package installed the way pip installs one: a module and a dist-info with entry points, on the path.
    importlib.metadata finds it exactly as it would a wheel's."""
    (tmp_path / "acme_gateway.py").write_text(
        textwrap.dedent(
            '''
            from activities.gateway.http import HttpGateway

            class AcmeGateway(HttpGateway):
                """Acme's gateway: the contract plus its own name."""
                adapter = "acme"

            class NotAnAdapter:
                pass
            '''
        )
    )
    dist = tmp_path / "acme_gateway-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-gateway\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[stanch.adapters]\ngateway.acme = acme_gateway:AcmeGateway\ngateway.broken = acme_gateway:NotAnAdapter\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_stanch_own_adapters_are_found_by_system_and_name() -> None:
    assert adapter_class("gateway", "http") is HttpGateway
    assert "http" in available_adapters("deploys")


def test_a_third_party_adapter_is_found_through_its_entry_point(third_party: Path) -> None:
    found = adapter_class("gateway", "acme")
    assert found.__name__ == "AcmeGateway" and found.system == "gateway"
    assert "acme" in available_adapters("gateway")
    # Entry points are per system: the same name under another system is not offered there.
    assert "acme" not in available_adapters("deploys")


def test_an_entry_point_that_is_not_an_adapter_of_the_system_is_refused(third_party: Path) -> None:
    with pytest.raises(AdapterConfigError, match="'broken' is not an adapter of the gateway interface"):
        adapter_class("gateway", "broken")


def test_an_unknown_adapter_names_the_known_ones() -> None:
    with pytest.raises(AdapterConfigError, match=r"unknown adapter 'nomad' for gateway \(known: .*http"):
        adapter_class("gateway", "nomad")


async def test_a_secret_comes_from_the_variable_its_env_key_names() -> None:
    adapter = open_adapter(
        "gateway",
        "http",
        {"base_url": "http://gw.example", "token_env": "ACME_TOKEN"},
        AdapterContext(platform_url="http://unused", environ={"ACME_TOKEN": "s3cret-token"}),
    )
    assert isinstance(adapter, HttpGateway)
    assert adapter.base_url == "http://gw.example"
    assert "s3cret-token" not in repr(adapter.settings)
    await adapter.aclose()


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            {"token": "literal"},
            "token: a secret is never written in the policy; name its variable in token_env",
        ),
        ({"token_env": "NOT_SET_ANYWHERE"}, "token_env: environment variable 'NOT_SET_ANYWHERE' is not set"),
        ({"base_url": "${NOT_SET_EITHER}/x"}, "base_url: environment variable 'NOT_SET_EITHER' is not set"),
        ({"timeout_s": 0}, "timeout_s: Input should be greater than 0"),
        ({"base_uri": "http://typo"}, "base_uri: Extra inputs are not permitted"),
    ],
)
def test_bad_settings_name_the_key(raw: dict[str, object], message: str) -> None:
    with pytest.raises(AdapterConfigError) as error:
        open_adapter("gateway", "http", raw, context())
    assert str(error.value) == message


async def test_variables_in_settings_are_expanded_from_the_environment() -> None:
    adapter = open_adapter(
        "gateway",
        "http",
        {"base_url": "http://127.0.0.1:${GW_PORT}"},
        AdapterContext(platform_url="http://unused", environ={"GW_PORT": "8123"}),
    )
    assert isinstance(adapter, HttpGateway)
    assert adapter.base_url.startswith("http://127.0.0.1:8123")
    await adapter.aclose()


async def test_the_http_adapter_reaches_the_sandbox_and_its_check_says_so(sandbox_url: str) -> None:
    async with httpx.AsyncClient(base_url=sandbox_url, verify=default_tls_context()) as shared:
        adapter = open_adapter(
            "gateway", "http", {}, AdapterContext(platform_url=sandbox_url, platform_http=shared)
        )
        assert isinstance(adapter, HttpGateway)
        status = await adapter.status(GatewayRead(gateway="openclaw-gateway"))
        assert status.name == "openclaw-gateway" and status.high_watermark_mb > 0
        check = await adapter.check()
        assert (check.system, check.adapter, check.ok) == ("gateway", "http", True)


async def test_a_check_of_an_unreachable_system_reports_instead_of_raising() -> None:
    adapter = open_adapter("deploys", "http", {"base_url": "http://127.0.0.1:9", "timeout_s": 2}, context())
    check = await adapter.check()
    assert not check.ok and "127.0.0.1:9" in check.detail
    await adapter.aclose()


async def test_systems_the_policy_does_not_name_use_the_contract(tmp_path: Path) -> None:
    policy_file = tmp_path / "policy.toml"
    policy_file.write_text('extends = "%s"\n' % (REPO / "config" / "stanch.toml"))
    async with open_systems(load_policy(policy_file), context()) as systems:
        assert {adapter.adapter for adapter in systems.all()} == {"http"}


async def test_open_systems_prefixes_the_system_in_the_key(tmp_path: Path) -> None:
    policy_file = tmp_path / "policy.toml"
    policy_file.write_text(
        'extends = "%s"\n[systems.deploys]\nadapter = "http"\nbase_url = 3\n'
        % (REPO / "config" / "stanch.toml")
    )
    with pytest.raises(
        AdapterConfigError, match=r"^systems\.deploys\.base_url: Input should be a valid string"
    ):
        async with open_systems(load_policy(policy_file), context()):
            pass


def test_the_worker_refuses_to_start_on_a_bad_systems_table(tmp_path: Path) -> None:
    policy_file = tmp_path / "policy.toml"
    policy_file.write_text(
        'extends = "%s"\n[systems.gateway]\nadapter = "nomad"\n' % (REPO / "config" / "stanch.toml")
    )
    worker = subprocess.run(
        [sys.executable, "-c", "from workers.worker import main; main()"],
        env={
            "STANCH_CONFIG": str(policy_file),
            "PATH": "/usr/bin:/bin",
            "STANCH_TEMPORAL_ADDRESS": "127.0.0.1:9",
        },
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert worker.returncode == 2, worker.stderr
    assert (
        f"stanch: policy file {policy_file}: systems.gateway.adapter: unknown adapter 'nomad'"
        in worker.stderr
    )


@pytest.mark.slow  # two `stanch systems` processes of its own (~6 s on 2 cores)
def test_stanch_systems_checks_every_system_and_fails_when_one_is_away(sandbox_url: str) -> None:
    def systems(platform_url: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(Path(sys.executable).parent / "stanch"), "systems"],
            env={"STANCH_PLATFORM_URL": platform_url, "PATH": "/usr/bin:/bin"},
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
        )

    up = systems(sandbox_url)
    assert up.returncode == 0, up.stderr
    checked = [line.split()[:3] for line in up.stdout.splitlines() if not line.startswith(" ")]
    assert ["ok", "gateway", "http"] in checked and ["ok", "database", "http"] in checked
    away = systems("http://127.0.0.1:9")
    assert away.returncode == 1 and "FAILED gateway" in away.stdout
