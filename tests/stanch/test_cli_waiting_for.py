""" "What waits for me" is one visibility query: the approval gate keeps StanchAwaiting (KeywordList) = the
people who may decide now, and `stanch list --waiting-for <person>` asks for it. On an SDK-started dev server
(the time-skipping server has no visibility store), with the real runbooks, sandbox and Postgres."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from schemas.approvals import Resolution
from schemas.incidents import IncidentResult
from stanch.policy import Policy
from stanch.settings import get_settings
from tests.helpers import Incidents, Running, cli, new_agent, until_state


async def listed(env: dict[str, str], person: str, expected: set[str]) -> str:
    """`stanch list --waiting-for person` until it lists exactly `expected` among these ids (visibility is
    eventually consistent), bounded."""
    deadline = time.monotonic() + 20
    while True:
        result = await cli(["list", "--waiting-for", person], env)
        assert result.exit_code == 0, result.output
        shown = {line.split()[0] for line in result.output.splitlines() if line.strip()}
        if shown == expected or time.monotonic() > deadline:
            assert shown == expected, result.output
            return result.output
        await asyncio.sleep(0.2)


async def test_stanch_list_waiting_for_finds_the_incidents_a_person_may_decide_now(
    dev_stanch: Running, policy: Policy
) -> None:
    client = dev_stanch.client
    env = {
        "STANCH_TEMPORAL_ADDRESS": client.service_client.config.target_host,
        "STANCH_NAMESPACE": client.namespace,
    }
    get_settings.cache_clear()
    incidents = Incidents(client, dev_stanch.task_queue, policy)
    sandbox = dev_stanch.settings.platform_url
    # The shipped roles (oncall alice and bob, lead carol), and a team of other people.
    ours = await incidents.agent_emergency_stop(
        new_agent(sandbox), workflow_id=f"incident-aw-{uuid.uuid4().hex}"
    )
    theirs_policy = policy.incident_policy().model_copy(
        update={"roles": {"oncall": [f"dave-{uuid.uuid4().hex[:6]}"], "lead": ["erin"]}}
    )
    dave = theirs_policy.roles["oncall"][0]
    theirs: Any = await incidents.open(
        "agent_emergency_stop",
        workflow_id=f"incident-aw-{uuid.uuid4().hex}",
        alertname="AgentHallucination",
        target={"agent_id": new_agent(sandbox), "customer": "acme"},
        incident_policy=theirs_policy,
    )
    for handle in (ours, theirs):
        await until_state(handle, "awaiting_approval", settle=False)

    # One visibility query per person (the CLI sends the same): each sees only what they may decide.
    output = await listed(env, dave, {theirs.id})
    assert f"awaiting: {dave}, erin" in output
    output = await listed(env, "alice", {ours.id})
    assert "awaiting: alice, bob, carol" in output
    found = [execution.id async for execution in client.list_workflows(f"StanchAwaiting = '{dave}'")]
    assert found == [theirs.id]

    # Resolved: the question is withdrawn and nothing waits for its people any more.
    await ours.signal("resolve", Resolution(by="alice", note="handled in the chat"))
    result: IncidentResult = await ours.result()
    assert result.final_state == "resolved"
    await listed(env, "carol", set())
    await theirs.signal("resolve", Resolution(by=dave, note="done"))
    assert (await theirs.result()).resolved_by == dave
    await listed(env, dave, set())
