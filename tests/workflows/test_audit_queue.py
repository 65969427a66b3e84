"""Pages never wait on Postgres: audit rows queue in the incident and land, in order, once it is back.

On the time-skipping server with the real worker and its real activities, whose database URL goes through
a TCP hop of the test's own to the session's real Postgres. The test cuts the hop (every connection is
dropped at once, as a crashed or firewalled database drops it) and mends it: `audit_write_rows` really fails
and is really retried; nothing fakes a success. While it is cut the agent is paused and the customer and
on-call messages reach the sandbox; once it is mended every row lands exactly once, in step order, the
hash chain verifies, and the incident closed only after its last row landed; the rows queued behind the
retried write went out together, in one batch. The guardrail's kill switch,
which a security incident flips before it revokes and pages, answers while Postgres is cut off too.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import CancelledError
from temporalio.testing import WorkflowEnvironment

from schemas.approvals import ApprovalAnswer
from schemas.briefs import Brief
from schemas.guardrail import (
    GUARDRAIL_WORKFLOW,
    KILL_SWITCH_UPDATE,
    GuardrailInput,
    GuardrailLimits,
    GuardrailState,
    KillSwitchChange,
    guardrail_workflow_id,
)
from schemas.incidents import IncidentResult
from stanch.audit_store import verify_chains
from stanch.history_timeline import (
    AUDIT_ACTIVITIES,
    AUDIT_ROWS_ACTIVITY,
    audit_rows_requested,
    first_value,
)
from stanch.ops.replay import replay
from stanch.policy import Policy
from stanch.settings import Settings
from tests.clock import free_clock, settle_and_terminate
from tests.conftest import StartedWorkflows
from tests.helpers import Incidents, applied, audit_rows, chat_messages, new_agent, patch_markers
from workers.worker import activity_implementations, build_worker
from workflows.steps.patches import CHANGES_TO_2026_12_PATCH

# Slow tier (`make test` runs it, `make test-fast` does not): real connection timeouts and retry backoffs against a cut-off Postgres (~38 s).
pytestmark = pytest.mark.slow

OPENING = ["pause", "tell-customer", "tell-oncall", "gate1-requested"]
APPROVED = [*OPENING, "gate1-decision", "rollback", "closed"]


class PostgresLink:
    """A TCP hop between the worker and the real Postgres that the test cuts and mends."""

    def __init__(self, target_port: int) -> None:
        self._target_port = target_port
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()
        self.up = False
        self.refused = 0  # connections dropped while cut: proof the worker really tried

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    def cut(self) -> None:
        self.up = False
        for writer in list(self._open):
            writer.close()

    def mend(self) -> None:
        self.up = True

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.up:
            self.refused += 1
            writer.close()
            return
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self._target_port)
        self._open.update((writer, upstream_writer))
        try:
            await asyncio.gather(self._pipe(reader, upstream_writer), self._pipe(upstream_reader, writer))
        finally:
            for end in (writer, upstream_writer):
                self._open.discard(end)
                end.close()

    @staticmethod
    async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while chunk := await source.read(65536):
                sink.write(chunk)
                await sink.drain()
        sink.close()


class CutOff:
    """A worker whose only way to Postgres is `link`, on a task queue of its own."""

    def __init__(self, client: Client, task_queue: str, settings: Settings, link: PostgresLink) -> None:
        self.client = client
        self.task_queue = task_queue
        self.settings = settings
        self.link = link


@pytest.fixture
async def cut_off(time_env: WorkflowEnvironment, settings: Settings) -> AsyncIterator[CutOff]:
    link = PostgresLink(settings.postgres_port)
    port = await link.start()
    task_queue = f"audit-queue-{uuid.uuid4().hex[:8]}"
    started = StartedWorkflows()
    config = time_env.client.config()
    config["interceptors"] = [*config["interceptors"], started]
    client = Client(**config)
    worker_settings = settings.model_copy(
        update={
            "task_queue": task_queue,
            "database_url": settings.database_url.replace(f":{settings.postgres_port}/", f":{port}/"),
        }
    )
    assert f":{port}/" in worker_settings.database_url
    try:
        async with activity_implementations(worker_settings, client) as activities:
            async with build_worker(client, task_queue, activities):
                yield CutOff(client, task_queue, settings, link)
                # Whatever a failed test left retrying gets its rows in, so it settles and frees the clock.
                link.mend()
                await settle_and_terminate(client, started.ids)
    finally:
        await link.close()
    await free_clock(time_env)


async def open_incident(
    cut_off: CutOff, policy: Policy, agent_id: str
) -> WorkflowHandle[Any, IncidentResult]:
    """The suite's emergency stop, on the cut-off worker's own task queue."""
    return await Incidents(cut_off.client, cut_off.task_queue, policy).agent_emergency_stop(agent_id)


async def eventually(check: Any, what: str, within: float = 60.0) -> Any:
    """Poll (bounded, real time: queries and sandbox reads do not move the time-skipping clock)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        value = await check()
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


def chat_channels(sandbox_url: str, workflow_id: str) -> list[str]:
    """The channels of the messages this incident sent that reached the sandbox's chat."""
    return [message["channel"] for message in chat_messages(sandbox_url, workflow_id)]


async def events(handle: WorkflowHandle[Any, Any]) -> list[HistoryEvent]:
    return list((await handle.fetch_history()).events)


async def failed_audit_attempts(handle: WorkflowHandle[Any, Any]) -> int:
    """How many attempts of the incident's pending audit writes have failed so far."""
    description = await handle.describe()
    return sum(
        pending.attempt - 1
        for pending in description.raw_description.pending_activities
        if pending.activity_type.name in AUDIT_ACTIVITIES
    )


async def test_pause_and_both_pages_go_out_while_postgres_is_cut_off_and_every_row_lands_after(
    cut_off: CutOff, policy: Policy
) -> None:
    sandbox = cut_off.settings.platform_url
    agent_id = new_agent(sandbox)
    handle = await open_incident(cut_off, policy, agent_id)

    async def paged() -> bool:
        return chat_channels(sandbox, handle.id) == ["customer", "on-call"]

    async def awaiting() -> bool:
        return (await handle.query("brief", result_type=Brief)).state == "awaiting_approval"

    # Postgres is unreachable from the start: the pause and both pages still go out, and no row has landed.
    await eventually(paged, "the customer and on-call messages at the sandbox")
    await eventually(awaiting, "the approval request")
    assert applied(sandbox, f"/agents/{agent_id}/pause") == 1
    assert audit_rows(cut_off.settings, handle.id) == []
    await eventually(lambda: failed_audit_attempts(handle), "a failed and retried audit write")
    assert cut_off.link.refused > 0

    # The approved rollback goes out too; the incident cannot close while its rows are still queued.
    await handle.signal("approve", ApprovalAnswer(approver="alice", action="rollback", comment="v3 is bad"))

    async def rolled_back() -> bool:
        return applied(sandbox, f"/agents/{agent_id}/rollback") == 1

    async def finishing() -> bool:
        return (await handle.query("brief", result_type=Brief)).state == "rolled_back"

    await eventually(rolled_back, "the rollback at the sandbox")
    await eventually(finishing, "the incident to reach its final state")
    assert (await handle.describe()).status == WorkflowExecutionStatus.RUNNING
    assert audit_rows(cut_off.settings, handle.id) == []

    cut_off.link.mend()
    result = await handle.result()

    assert result.final_state == "rolled_back"
    rows = audit_rows(cut_off.settings, handle.id)
    assert [row["step_key"] for row in rows] == APPROVED  # each once, in step order
    decision = rows[APPROVED.index("gate1-decision")]
    assert (decision["actor"], decision["outcome"]) == ("alice", "approved")
    chains = verify_chains(cut_off.settings.database_url, handle.id)
    assert (chains.chains, chains.rows, chains.broken) == (1, len(APPROVED), [])
    assert applied(sandbox, f"/agents/{agent_id}/pause") == 1
    assert applied(sandbox, f"/agents/{agent_id}/rollback") == 1

    # The history: the new path's one marker (workflows/steps/patches.py); the first row's write retried
    # until Postgres was back, every row queued behind it in the one batch after it; each write completed,
    # all before the run completed.
    history = await events(handle)
    assert patch_markers(history) == [CHANGES_TO_2026_12_PATCH]
    writes = [
        e
        for e in history
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        and e.activity_task_scheduled_event_attributes.activity_type.name in AUDIT_ACTIVITIES
    ]
    carried = [
        [
            str(row["step_key"])
            for row in audit_rows_requested(
                e.activity_task_scheduled_event_attributes.activity_type.name,
                first_value(e.activity_task_scheduled_event_attributes.input),
            )
        ]
        for e in writes
    ]
    assert {e.activity_task_scheduled_event_attributes.activity_type.name for e in writes} == {
        AUDIT_ROWS_ACTIVITY
    }
    assert carried == [APPROVED[:1], APPROVED[1:]], carried
    audit_scheduled = {e.event_id for e in writes}
    completed = [
        e.event_id
        for e in history
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED
        and e.activity_task_completed_event_attributes.scheduled_event_id in audit_scheduled
    ]
    [closed] = [
        e.event_id for e in history if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED
    ]
    assert len(audit_scheduled) == len(completed) == 2
    assert max(completed) < closed


async def test_an_incident_cancelled_while_postgres_is_cut_off_still_lands_every_queued_row(
    cut_off: CutOff, policy: Policy
) -> None:
    sandbox = cut_off.settings.platform_url
    agent_id = new_agent(sandbox)
    handle = await open_incident(cut_off, policy, agent_id)

    async def awaiting() -> bool:
        return (await handle.query("brief", result_type=Brief)).state == "awaiting_approval"

    await eventually(awaiting, "the approval request")
    assert audit_rows(cut_off.settings, handle.id) == []

    # Cancelled with four rows still queued: the run waits for them instead of closing without them.
    await handle.cancel()
    await asyncio.sleep(1.0)
    assert (await handle.describe()).status == WorkflowExecutionStatus.RUNNING

    cut_off.link.mend()
    with pytest.raises(WorkflowFailureError) as failure:
        await handle.result()
    assert isinstance(failure.value.cause, CancelledError)
    assert [row["step_key"] for row in audit_rows(cut_off.settings, handle.id)] == OPENING
    assert verify_chains(cut_off.settings.database_url, handle.id).broken == []


async def test_a_kill_switch_flip_is_answered_while_postgres_is_cut_off_and_its_rows_land_in_order(
    cut_off: CutOff,
) -> None:
    subsystem = f"audit-queue-{uuid.uuid4().hex[:8]}"
    workflow_id = guardrail_workflow_id(subsystem)
    await cut_off.client.start_workflow(
        GUARDRAIL_WORKFLOW,
        GuardrailInput(subsystem=subsystem, limits=GuardrailLimits()),
        id=workflow_id,
        task_queue=cut_off.task_queue,
    )
    handle = cut_off.client.get_workflow_handle(workflow_id)

    # Each flip is answered at once (a security incident goes on to revoke and page), though no row can land.
    for by, enabled in (("alice", False), ("bob", True)):
        state = await asyncio.wait_for(
            handle.execute_update(
                KILL_SWITCH_UPDATE,
                KillSwitchChange(by=by, enabled=enabled, reason="drill"),
                result_type=GuardrailState,
            ),
            timeout=10,
        )
        assert state.kill_switch is enabled
    assert audit_rows(cut_off.settings, workflow_id) == []
    await eventually(lambda: failed_audit_attempts(handle), "a failed and retried kill-switch audit write")

    cut_off.link.mend()

    async def landed() -> list[dict[str, Any]]:
        rows = audit_rows(cut_off.settings, workflow_id)
        return rows if len(rows) == 2 else []

    rows = await eventually(landed, "both kill-switch rows")
    assert [(row["step_key"], row["actor"]) for row in rows] == [
        ("kill-switch-1", "alice"),
        ("kill-switch-2", "bob"),
    ]
    assert verify_chains(cut_off.settings.database_url, workflow_id).broken == []
    # The answered-first path replays (a still running guardrail's history replays as far as it goes).
    [replayed] = await replay([("live guardrail", await handle.fetch_history())])
    assert replayed.ok, replayed.line()
