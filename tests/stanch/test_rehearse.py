"""`stanch rehearse` (stanch/ops/rehearse.py): a runbook run on skipped time, against the sandbox, with the
pages it sent and the audit rows it wrote.

On the session's time-skipping server and Postgres (a stage of its own costs a Postgres start), with a
sandbox platform of this module's own: the samples act on its seeded agent, channel and gateway, which
other tests' sandbox may have changed."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment
from typer.testing import CliRunner

from stanch.ops.cli import app
from stanch.ops.rehearse import (
    Rehearsable,
    RehearsalError,
    Stage,
    parse_answers,
    rehearsable,
    rehearsal_catalogue,
    rehearsal_policy,
    rehearse_on,
    render,
    sandbox_platform,
    summary_line,
)
from stanch.ops.samples import sample
from stanch.settings import REPO_ROOT, Settings
from tests.clock import free_clock
from tests.helpers import agent, new_agent

# Slow tier (`make test` runs it, `make test-fast` does not): each rehearsal starts its own stage and `--all` runs every sample (~12 s).
pytestmark = pytest.mark.slow

SHIPPED_POLICY = REPO_ROOT / "config" / "stanch.toml"


@pytest.fixture(scope="module")
def sandbox() -> Iterator[str]:
    with sandbox_platform() as url:
        yield url


@pytest.fixture
async def stage(time_env: WorkflowEnvironment, settings: Settings, sandbox: str) -> AsyncIterator[Stage]:
    yield Stage(time_env, settings.model_copy(update={"platform_url": sandbox}))
    # The rehearsal terminated what it left running, once quiet: the shared clock must still skip.
    assert await free_clock(time_env) == 0


def hallucination_of(agent_id: str) -> Rehearsable:
    """The agent-hallucination sample about an agent of the test's own."""
    return Rehearsable("agent-hallucination", "alertmanager", sample("agent-hallucination", agent=agent_id))


async def test_an_approval_at_ten_minutes_rolls_back_with_the_signed_off_decision_audited_and_paged(
    stage: Stage, sandbox: str, tmp_path: Path
) -> None:
    agent_id = new_agent(sandbox)  # live v3, v2 before it
    [rehearsal] = await rehearse_on(
        stage, [hallucination_of(agent_id)], parse_answers(["approve:alice@10m"]), SHIPPED_POLICY, tmp_path
    )
    [incident] = rehearsal.incidents
    assert incident.ok and incident.runbook == "agent_emergency_stop"
    assert (incident.status, incident.state) == ("completed", "rolled_back")
    assert incident.finished_after == timedelta(minutes=10)
    assert agent(sandbox, agent_id)["version"] == "v2"  # the rollback really happened, on the sandbox
    decisions = [
        (row.at, row.actor, row.outcome) for row in incident.audit if row.step_key == "gate1-decision"
    ]
    assert decisions == [(timedelta(minutes=10), "alice", "approved")]
    assert [row.step_key for row in incident.audit][-2:] == ["rollback", "closed"]
    # Every page, whom it reached and on which of the shipped policy's channels, at the time it went out.
    assert [(p.at, p.audience, p.person, p.kind, p.channel) for p in incident.pages] == [
        (timedelta(0), "customer", "", "", "customer-chat"),
        (timedelta(0), "on-call", "alice", "cockpit", "cockpit-webhook"),
        (timedelta(0), "on-call", "bob", "cockpit", "cockpit-webhook"),
        (timedelta(0), "on-call", "alice", "instant", "oncall-webhook"),
        (timedelta(0), "on-call", "bob", "instant", "oncall-webhook"),
    ]
    text = render(rehearsal)
    assert "Outcome: OK: completed after +00:10:00, state rolled_back" in text
    assert "+00:10:00 approve:alice@10m given: rollback: rollback approved" in text
    assert "+00:10:00 decision    alice" in text


async def test_a_destructive_approval_is_signed_with_a_throwaway_key_of_the_rehearsal_policy(
    stage: Stage, sandbox: str, tmp_path: Path
) -> None:
    # The shipped policy needs a termination signed and gives erin no key: the rehearsal's copy does.
    agent_id = new_agent(sandbox)
    item = Rehearsable("agent-termination", "alertmanager", sample("agent-termination", agent=agent_id))
    before = SHIPPED_POLICY.read_text()
    [rehearsal] = await rehearse_on(
        stage, [item], parse_answers(["approve:erin@10m"]), SHIPPED_POLICY, tmp_path
    )
    [incident] = rehearsal.incidents
    assert incident.ok and incident.state == "terminated"
    assert agent(sandbox, agent_id)["state"] == "terminated"
    assert "signed with a throwaway key" in incident.answers[0].detail
    assert SHIPPED_POLICY.read_text() == before  # the operator's policy is only read


async def test_unanswered_the_ladder_pages_each_level_for_24_hours_then_closes_unattended(
    stage: Stage, sandbox: str, tmp_path: Path
) -> None:
    agent_id = new_agent(sandbox)
    [rehearsal] = await rehearse_on(
        stage, [hallucination_of(agent_id)], parse_answers(["none"]), SHIPPED_POLICY, tmp_path
    )
    [incident] = rehearsal.incidents
    assert incident.ok and (incident.status, incident.state) == ("completed", "closed_unattended")
    assert incident.finished_after is not None and incident.finished_after.total_seconds() // 3600 == 24
    assert agent(sandbox, agent_id)["state"] == "paused"  # the safe default held all along
    messages = {}
    for page in incident.pages:
        messages.setdefault(page.message, (page.at, page.audience, set()))[2].add(page.person)
    timeline = sorted(messages.values(), key=lambda message: message[0])
    # At once on-call; at 30 min the lead level (both leads); from 1h30 it pages that last level again
    # every 30 minutes until the question is 24 hours old.
    assert [(at, audience) for at, audience, _ in timeline[:3]] == [
        (timedelta(0), "customer"),
        (timedelta(0), "on-call"),
        (timedelta(minutes=30), "team-lead"),
    ]
    assert timeline[1][2] == {"alice", "bob"} and timeline[2][2] == {"carol", "dave"}
    repeats = [at for at, audience, _ in timeline[3:] if audience == "team-lead"]
    assert repeats[:2] == [timedelta(hours=1, minutes=30), timedelta(hours=2)]
    assert len(repeats) >= 44 and repeats[-1] >= timedelta(hours=23)
    assert [row.step_key for row in incident.audit][-2:] == ["gate1-give-up", "closed"]
    assert "state closed_unattended" in summary_line(rehearsal)


def test_a_bad_scenario_or_answer_is_refused_naming_it_before_anything_starts(tmp_path: Path) -> None:
    with pytest.raises(RehearsalError, match="unknown scenario 'agent-halucination'"):
        rehearsable("agent-halucination")
    with pytest.raises(RehearsalError, match=r"--answer 'approve:alice'.*approve:<person>@<time>"):
        parse_answers(["approve:alice"])
    with pytest.raises(RehearsalError, match="--answer 'maybe:alice@10m'"):
        parse_answers(["maybe:alice@10m"])
    with pytest.raises(RehearsalError, match="'mallory' is not a person of policy"):
        rehearsal_policy(SHIPPED_POLICY, parse_answers(["reject:mallory@5m"]), tmp_path)
    # The command says it in one line, exit 2, without starting a server.
    runner = CliRunner()
    done = runner.invoke(app, ["rehearse", "no-such-scenario", "--policy", str(SHIPPED_POLICY)])
    assert done.exit_code == 2 and "unknown scenario 'no-such-scenario'" in done.output
    done = runner.invoke(
        app,
        [
            "rehearse",
            "agent-hallucination",
            "--answer",
            "approve:alice@soon",
            "--policy",
            str(SHIPPED_POLICY),
        ],
    )
    assert done.exit_code == 2 and "--answer 'approve:alice@soon'" in done.output


def test_an_alert_file_is_read_in_the_format_it_is_in(tmp_path: Path) -> None:
    fixtures = REPO_ROOT / "tests" / "fixtures"
    grafana, alertmanager = tmp_path / "grafana.json", tmp_path / "alertmanager.json"
    for path, recorded in (
        (grafana, "grafana/grafana-firing.json"),
        (alertmanager, "alertmanager/alertmanager-firing.json"),
    ):
        bodies = json.loads((fixtures / recorded).read_text())
        path.write_text(json.dumps(bodies[0] if isinstance(bodies, list) else bodies))
    generic = tmp_path / "generic.json"
    generic.write_text('{"name": "AgentHallucination", "labels": {"agent": "support-bot"}}')
    assert [rehearsable(str(path)).source for path in (grafana, alertmanager, generic)] == [
        "grafana",
        "alertmanager",
        "generic",
    ]
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    with pytest.raises(RehearsalError, match=r"broken\.json: not JSON"):
        rehearsable(str(broken))


async def test_every_sample_rehearses_ok_on_one_shared_stage(stage: Stage, tmp_path: Path) -> None:
    # What CI runs as `stanch rehearse --all`, on a ladder that gives up after one hour instead of 24 (the
    # whole ladder has its own test above): every sample routes, runs and ends, or waits as designed.
    short = tmp_path / "short-ladder.toml"
    short.write_text(f'extends = "{SHIPPED_POLICY}"\n[escalation_policy]\ngive_up_after_hours = 1\n')
    rehearsals = await rehearse_on(stage, list(rehearsal_catalogue().values()), [], short, tmp_path)
    assert [rehearsal.name for rehearsal in rehearsals] == list(rehearsal_catalogue())
    failed = [summary_line(rehearsal) for rehearsal in rehearsals if not rehearsal.ok]
    assert failed == []
    assert all(rehearsal.incidents and rehearsal.incidents[0].audit for rehearsal in rehearsals)
