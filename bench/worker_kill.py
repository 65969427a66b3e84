"""How long a worker SIGKILLed in the middle of the pause call costs: SIGKILL → retried pause at the platform.

Per trial: a sandbox agent of its own whose pause call the sandbox holds (`hang_seconds`, then a 503: the
held attempt did nothing); an Alertmanager alert through the intake; once the pause call is at the
platform (its fault taken), the stack's worker is killed with SIGKILL and a new one started at once. The
figure is from the SIGKILL (this script's clock) to the retried pause call's record at the sandbox (its
`at`, stamped as it answers; same machine, same clock). Also printed: SIGKILL → the new worker's process
launched (`DevStack.start_part` returns before the worker polls; its Python start-up is part of the
figure), and from the history the timeout that ended the dead attempt (heartbeat or start-to-close) and
the heartbeat timeout the pause was scheduled with.

For reference, the same mechanism without heartbeats is the effect's start-to-close timeout
(`EFFECT_TIMEOUT`, 30 s) plus the retry's backoff: that is what a kill cost before the effects heartbeat.
Each trial ends with an approval, so every incident closes `rolled_back` with one pause applied.
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime

import httpx
from temporalio.api.enums.v1 import EventType, TimeoutType
from temporalio.client import Client

from bench.common import (
    Stack,
    approver,
    create_agents,
    fail,
    incident_id,
    intake_headers,
    intake_url,
    latency_line,
    main,
    note,
    poll,
    print_header,
    run_id,
    sandbox_client,
    search_state,
)
from schemas.approvals import ApprovalAnswer
from schemas.incidents import IncidentResult
from stanch.ops.samples import sample
from stanch.temporal_client import connect
from workflows.steps.policies import EFFECT_HEARTBEAT_TIMEOUT, EFFECT_TIMEOUT

NAME = "worker_kill"


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"python -m bench.{NAME}", description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=5, help="kills, one after another (5)")
    parser.add_argument(
        "--hold", type=float, default=5.0, help="seconds the sandbox holds the pause call it fails (5)"
    )
    parser.add_argument("--timeout", type=float, default=90.0, help="bound of every wait, in seconds (90)")
    return parser


async def one_trial(args: argparse.Namespace, stack: Stack, client: Client, n: int) -> dict[str, float | str]:
    devstack = stack.devstack
    assert devstack is not None
    settings = stack.settings
    agent_id = f"kill-{run_id()}-{n}"
    await create_agents(settings, [agent_id])
    pause = f"/agents/{agent_id}/pause"
    async with sandbox_client(settings) as sandbox, httpx.AsyncClient(timeout=30, trust_env=False) as http:
        fault = {"path_prefix": pause, "hang_seconds": args.hold, "status": 503}
        (await sandbox.post("/faults", json=fault)).raise_for_status()
        response = await http.post(
            intake_url(settings),
            json=sample("agent-hallucination", agent=agent_id),
            headers=intake_headers(settings),
        )
        if response.status_code != 202:
            fail(f"the intake answered {response.status_code}: {response.text}")
        workflow_id = incident_id(agent_id)

        async def held() -> bool:
            faults = (await sandbox.get("/faults")).json()
            return not any(f["path_prefix"] == pause for f in faults)

        await poll(held, within=args.timeout, what=f"the pause call of {agent_id} to reach the platform")
        killed_at = datetime.now(UTC)
        began = time.monotonic()
        devstack.stop_part("worker", crash=True)
        devstack.start_part("worker")
        worker_up = time.monotonic() - began

        calls: list[dict[str, object]] = []

        async def retried() -> bool:
            calls[:] = (await sandbox.get("/calls", params={"path_prefix": pause})).json()
            return len(calls) >= 2

        await poll(retried, within=args.timeout, what=f"the retried pause of {agent_id}")
        retry_at = datetime.fromisoformat(str(calls[1]["at"]))
        if [(c["status_code"], c["replayed"]) for c in calls] != [(503, False), (200, False)]:
            fail(f"unexpected pause calls for {agent_id}: {calls}")

    async def awaiting() -> bool:
        return await search_state(client, workflow_id) == "awaiting_approval"

    await poll(awaiting, within=args.timeout, what=f"{workflow_id} to await approval")
    handle = client.get_workflow_handle(workflow_id, result_type=IncidentResult)
    await handle.signal("approve", ApprovalAnswer(approver=approver(settings), action="rollback"))
    result = await handle.result()
    if result.final_state != "rolled_back":
        fail(f"{workflow_id} ended {result.final_state}")
    timeout, heartbeat = "?", 0.0
    async for event in handle.fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            attrs = event.activity_task_scheduled_event_attributes
            if attrs.activity_type.name == "pause_agent":
                heartbeat = attrs.heartbeat_timeout.ToTimedelta().total_seconds()
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            failure = event.activity_task_started_event_attributes.last_failure
            if failure.HasField("timeout_failure_info"):
                timeout = TimeoutType.Name(failure.timeout_failure_info.timeout_type)
    return {
        "kill_to_retry": (retry_at - killed_at).total_seconds(),
        "kill_to_worker": worker_up,
        "timeout": timeout,
        "heartbeat_timeout": heartbeat,
    }


async def body(args: argparse.Namespace, stack: Stack) -> None:
    if stack.devstack is None:
        fail("this benchmark kills the stack's worker, so it needs its own stack (no --running)")
    print_header(
        "worker SIGKILLed during the pause call → retried pause at the platform",
        stack,
        f"{args.trials} trials, the pause held {args.hold:g} s",
    )
    client = await connect(stack.settings)
    trials = []
    for n in range(1, args.trials + 1):
        trial = await one_trial(args, stack, client, n)
        note(
            f"trial {n}: kill → retry {trial['kill_to_retry']:.2f} s (new worker up after "
            f"{trial['kill_to_worker']:.2f} s; dead attempt ended by {trial['timeout']})"
        )
        trials.append(trial)
    retry = [float(t["kill_to_retry"]) * 1000 for t in trials]
    worker = [float(t["kill_to_worker"]) * 1000 for t in trials]
    print(latency_line("SIGKILL → retried pause at the platform", retry))
    print(latency_line("SIGKILL → new worker launched", worker))
    print(f"dead attempt ended by: {sorted({str(t['timeout']) for t in trials})}")
    print(
        f"pause scheduled with heartbeat timeout {sorted({float(t['heartbeat_timeout']) for t in trials})} s; "
        f"without heartbeats the bound is the start-to-close timeout, "
        f"{EFFECT_TIMEOUT.total_seconds():g} s (+ backoff)"
    )
    if any(t["timeout"] != "TIMEOUT_TYPE_HEARTBEAT" for t in trials):
        fail("a dead attempt was not ended by its heartbeat timeout")
    if max(retry) > (EFFECT_HEARTBEAT_TIMEOUT.total_seconds() + 10) * 1000:
        note("the retry took longer than the heartbeat timeout plus 10 s: a loaded machine?")


if __name__ == "__main__":
    main(NAME, parser(), body, check=lambda args: "--trials must be at least 1" if args.trials < 1 else None)
