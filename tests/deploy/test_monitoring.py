"""Stanch watches itself (issue #10, part 7): the shipped alert rules are valid Prometheus rules that fire
on the failures they name (promtool), the example Prometheus and Alertmanager configs load, and every
metric the rules read is really exported — scraped from a real worker's SDK endpoint and a real intake's
GET /metrics after it did some work."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import yaml
from psycopg_pool import AsyncConnectionPool
from pydantic import SecretStr
from temporalio.testing import WorkflowEnvironment

from activities.audit import AuditActivities
from activities.notifiers.webhook import WebhookConfig, WebhookNotifier
from activities.notify import DeliveryLedger, NotifyActivities
from schemas.audit import AuditEvent
from stanch.metrics import WorkerMetrics, instrument_intake_metrics
from stanch.ops.samples import sample
from stanch.policy import NotifyRouting, Policy, load_policy
from stanch.settings import REPO_ROOT, Settings
from stanch.temporal_client import connect
from stanch.tls import default_tls_context
from tests.helpers import Running, free_port, new_agent
from tests.helpers_notify import notification
from workers.intake.app import TemporalGateway, create_app
from workers.worker import activity_implementations, build_worker, worker_metrics

# Slow tier (`make test` runs it, `make test-fast` does not): a real worker scraped for its metrics and promtool on the rules (~8 s).
pytestmark = pytest.mark.slow

RULES = REPO_ROOT / "deploy" / "prometheus" / "stanch-rules.yml"
RULE_TESTS = REPO_ROOT / "deploy" / "prometheus" / "stanch-rules.test.yml"
PROMETHEUS_EXAMPLE = REPO_ROOT / "deploy" / "prometheus" / "prometheus.example.yml"
ALERTMANAGER_EXAMPLE = REPO_ROOT / "deploy" / "alertmanager" / "alertmanager.example.yml"
# Prometheus makes `up` itself for every scrape target; nothing of Stanch exports it.
SYNTHETIC = {"up"}
PROMQL_WORDS = {
    "absent", "sum", "by", "without", "or", "and", "unless", "increase", "rate", "vector", "max_over_time",
    "on", "ignoring", "group_left", "group_right", "bool", "offset",
}  # fmt: skip


def binary(name: str) -> str:
    """A Debian binary the test runs for real (.ci/system-packages installs it); under CI, missing fails."""
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{name} is not installed: run .ci/system-packages")
        pytest.skip(f"{name} is not installed (.ci/system-packages installs it)")
    return path


def run(*command: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=cwd, check=False)


def rule_metric_names() -> set[str]:
    """Every metric name the shipped rules' expressions read."""
    names: set[str] = set()
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in group["rules"]:
            expr = re.sub(r'"[^"]*"', "", rule["expr"])  # label values
            expr = re.sub(r"\{[^}]*\}", " ", expr)  # matchers
            expr = re.sub(r"\b(by|without)\s*\([^)]*\)", " ", expr)  # grouping labels
            expr = re.sub(r"\[[^\]]*\]", " ", expr)  # ranges
            names |= {
                word for word in re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr) if word not in PROMQL_WORDS
            }
    return names


def exported_names(body: str) -> set[str]:
    return {
        line.split("{")[0].split(" ")[0] for line in body.splitlines() if line and not line.startswith("#")
    }


# ---- the rule file and the example configs --------------------------------------------------------------


def test_shipped_rules_pass_promtool_check() -> None:
    result = run(binary("promtool"), "check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_each_rule_fires_on_its_failure_and_not_on_a_healthy_stanch() -> None:
    result = run(binary("promtool"), "test", "rules", RULE_TESTS.name, cwd=RULE_TESTS.parent)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_stanch_rule_is_routed_away_from_stanch_and_the_watchdog_to_it() -> None:
    rules = [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]
    for rule in rules:
        assert rule["alert"] == "Watchdog" or rule["labels"]["component"] == "stanch", rule["alert"]
    alertmanager = yaml.safe_load(ALERTMANAGER_EXAMPLE.read_text())
    first, watchdog = alertmanager["route"]["routes"]
    assert first["matchers"] == ['component="stanch"'] and not first.get("continue")
    direct = next(r for r in alertmanager["receivers"] if r["name"] == first["receiver"])
    assert "webhook_configs" not in direct  # email / PagerDuty: a path that does not go through Stanch
    assert watchdog["matchers"] == ['alertname="Watchdog"'] and watchdog["receiver"] == "stanch"


def test_example_prometheus_and_alertmanager_configs_load() -> None:
    result = run(
        binary("promtool"), "check", "config", PROMETHEUS_EXAMPLE.name, cwd=PROMETHEUS_EXAMPLE.parent
    )
    assert result.returncode == 0, result.stdout + result.stderr
    result = run(binary("amtool"), "check-config", str(ALERTMANAGER_EXAMPLE))
    assert result.returncode == 0, result.stdout + result.stderr


# ---- what a real worker and a real intake export ---------------------------------------------------------


async def scrape(url: str, *needed: str) -> str:
    body = ""
    async with httpx.AsyncClient(trust_env=False, verify=default_tls_context()) as http:
        for _ in range(200):  # 10 s: a loaded machine is slow to start the workflow pollers
            body = (await http.get(url)).text
            if all(name in body for name in needed):
                break
            await asyncio.sleep(0.05)
    return body


def value(body: str, name: str, **labels: str) -> float:
    for line in body.splitlines():
        if line.startswith(name + "{") and all(f'{key}="{val}"' in line for key, val in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name}{labels} not exported:\n{body[:2000]}")


async def test_a_real_worker_exports_what_the_rules_read_and_counts_failures(
    time_env: WorkflowEnvironment, settings: Settings, policy: Policy
) -> None:
    port = free_port()
    task_queue = f"metrics-{uuid.uuid4().hex[:8]}"
    metered = settings.model_copy(
        update={
            "metrics_port": port,
            "task_queue": task_queue,
            "temporal_address": time_env.client.service_client.config.target_host,
        }
    )
    client = await connect(metered)
    url = f"http://127.0.0.1:{port}/metrics"
    async with activity_implementations(metered, client) as activities:
        async with build_worker(client, task_queue, activities):
            # Each poller's series appears once it polls (the workflow poller after the workflow checks):
            # wait for both, not only for the metric's name.
            body = await scrape(
                url,
                "temporal_worker_task_slots_available",
                'temporal_num_pollers{namespace="default",poller_type="workflow_task"',
                'temporal_num_pollers{namespace="default",poller_type="activity_task"',
            )
            assert (
                value(body, "temporal_num_pollers", task_queue=task_queue, poller_type="workflow_task") >= 1
            )
            assert (
                value(body, "temporal_num_pollers", task_queue=task_queue, poller_type="activity_task") >= 1
            )
            # Stanch's own counters exist at 0 from the start, for every group of the policy.
            assert value(body, "stanch_audit_write_failures", task_queue=task_queue) == 0
            assert (
                value(body, "stanch_notification_group_failures", task_queue=task_queue, group="instant") == 0
            )

            # Now make them count, through the real activities on the same meter: an audit write to a
            # Postgres that is not there, and a notification whose only channel refuses it.
            metrics = worker_metrics(metered, client, load_policy(metered.config))
            dead = f"postgresql://nobody@127.0.0.1:{free_port()}/none?connect_timeout=1"
            async with AsyncConnectionPool(dead, min_size=0, max_size=1, open=False) as pool:
                audit = AuditActivities(pool, metrics)
                event = AuditEvent(
                    workflow_id="incident-metrics",
                    run_id="run",
                    step_key="step",
                    actor="stanch",
                    action="test",
                    outcome="ok",
                    occurred_at=datetime.now(UTC),
                )
                with pytest.raises(Exception):  # noqa: B017 - whatever psycopg raises, it must be counted
                    await asyncio.wait_for(audit.write_audit(event), 20)
                http = httpx.AsyncClient(trust_env=False, verify=default_tls_context())
                refusing = WebhookConfig(url=SecretStr(f"http://127.0.0.1:{free_port()}/hook"), timeout=1)
                refused = WebhookNotifier("refusing", refusing, http)
                routing = NotifyRouting(P0=["on-call"], P1=["on-call"], P2=["on-call"], P3=["on-call"],
                                        customer=["on-call"], escalation=["on-call"],
                                        groups={"on-call": ["refusing"]})  # fmt: skip
                notify = NotifyActivities(
                    {"refusing": refused}, routing, DeliveryLedger(pool), metrics=metrics
                )
                with pytest.raises(Exception, match="no channel of on-call"):
                    await notify.send_notification(notification())
                await http.aclose()
            body = await scrape(url, 'group="on-call"')
            for _ in range(50):
                if (
                    value(body, "stanch_notification_group_failures", task_queue=task_queue, group="on-call")
                    >= 1
                ):
                    break
                await asyncio.sleep(0.1)
                body = await scrape(url)
            assert value(body, "stanch_audit_write_failures", task_queue=task_queue) == 1
            assert (
                value(body, "stanch_notification_group_failures", task_queue=task_queue, group="on-call") == 1
            )
            assert (
                value(body, "stanch_notification_channel_failures", task_queue=task_queue, channel="refusing")
                == 1
            )
            worker_names = exported_names(body)
    assert {"temporal_num_pollers", "temporal_worker_task_slots_available"} <= worker_names


async def test_a_real_intake_exports_what_the_rules_read_by_status_and_action(
    stanch: Running, policy: Policy
) -> None:
    # On the worker's queue, so the incident it opens runs and settles (a workflow task nobody polls would
    # hold the shared time-skipping clock for every later test: tests/clock.py).
    intake_settings = stanch.settings.model_copy(
        update={"task_queue": stanch.task_queue, "intake_token": None, "intake_hmac_secret": None}
    )
    app = create_app(intake_settings, policy, TemporalGateway(intake_settings, client=stanch.client))
    if getattr(app.state, "metrics", None) is None:  # until create_app instruments itself
        instrument_intake_metrics(app)
    down = intake_settings.model_copy(update={"temporal_address": f"127.0.0.1:{free_port()}"})
    app_down = create_app(down, policy, TemporalGateway(down))
    if getattr(app_down.state, "metrics", None) is None:
        instrument_intake_metrics(app_down)
    agent = new_agent(stanch.settings.platform_url)
    body = sample("agent-hallucination", agent=agent, fingerprint=uuid.uuid4().hex[:16])
    async with (
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://intake") as http,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app_down), base_url="http://intake") as http_down,
    ):
        assert (await http.post("/alerts/alertmanager", json=body)).status_code == 202
        assert (await http.post("/alerts/alertmanager", content=b"{not json")).status_code == 400
        assert (await http.get("/nope")).status_code == 404
        assert (await http_down.post("/alerts/alertmanager", json=body)).status_code == 503
        scraped = (await http.get("/metrics")).text
        scraped_down = (await http_down.get("/metrics")).text

    responses = "stanch_intake_responses_total"
    assert value(scraped, responses, route="/alerts/{source}", status="202") == 1
    assert value(scraped, responses, route="/alerts/{source}", status="400") == 1
    assert value(scraped, responses, route="other", status="404") == 1  # a template, never the raw path
    assert value(scraped_down, responses, route="/alerts/{source}", status="503") == 1
    alerts = body["alerts"]
    assert sum(
        value(scraped, "stanch_intake_alerts_total", action=a) for a in ("started", "signalled")
    ) == len(alerts)
    assert value(scraped, "stanch_intake_alerts_total", action="triage") == 0  # exported before the first one
    assert {"stanch_intake_responses_total", "stanch_intake_alerts_total"} <= exported_names(scraped)


def test_every_metric_the_rules_read_is_one_a_scrape_test_checks() -> None:
    # The exact set, so a new rule reading a new name fails here until a scrape test checks it too.
    worker = {"temporal_num_pollers", "temporal_worker_task_slots_available", "stanch_audit_write_failures",
              "stanch_notification_group_failures"}  # fmt: skip
    intake = {"stanch_intake_responses_total", "stanch_intake_alerts_total"}
    assert rule_metric_names() - SYNTHETIC == worker | intake


def test_worker_metrics_are_noop_without_a_metrics_port() -> None:
    metrics = WorkerMetrics.noop()
    metrics.audit_write_failed()  # no runtime, no listener, no error
    metrics.notification_group_failed("on-call")
