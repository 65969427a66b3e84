"""Audit rows written in batches (`audit_write_rows`, issue 15): one activity and one transaction for every
row an incident's queue held, each row as idempotent and as chained as if it were written alone.

On the session's real Postgres, through the real activity class."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool
from pydantic import ValidationError

from activities.audit import AuditActivities
from schemas.audit import AuditEvent, AuditReceipt, AuditRows
from stanch.audit_store import verify_chains
from stanch.db import GENESIS_HASH, row_hash
from stanch.settings import Settings
from tests.helpers import audit_event

STEPS = ["pause", "tell-customer", "tell-oncall", "gate1-requested"]


def rows(settings: Settings, workflow_id: str) -> list[tuple[str, str, str]]:
    """(step, prev_hash, row_hash) of the workflow's rows, in the order they were inserted."""
    with psycopg.connect(settings.database_url) as conn:
        found = conn.execute(
            "SELECT step_key, prev_hash, row_hash FROM audit_log WHERE workflow_id = %s ORDER BY id",
            (workflow_id,),
        ).fetchall()
    return [(str(step), str(prev), str(digest)) for step, prev, digest in found]


async def write_batches(settings: Settings, *batches: list[AuditEvent]) -> list[list[AuditReceipt]]:
    async with AsyncConnectionPool(settings.database_url, min_size=1, max_size=2) as pool:
        audit = AuditActivities(pool)
        return [(await audit.write_audit_rows(AuditRows(rows=batch))).receipts for batch in batches]


async def test_a_batch_writes_every_row_in_order_chained_as_single_writes_would(
    postgres_settings: Settings,
) -> None:
    workflow_id = f"incident-rows-{uuid.uuid4().hex[:8]}"
    events = [audit_event(workflow_id, step) for step in STEPS]

    [receipts] = await write_batches(postgres_settings, events)

    assert [(r.step_key, r.inserted) for r in receipts] == [(step, True) for step in STEPS]
    # The chain a single write per row builds: each row's hash over the one before, from the genesis hash.
    expected, prev = [], GENESIS_HASH
    for one in events:
        prev = row_hash(prev, one.model_dump())
        expected.append(prev)
    assert [r.row_hash for r in receipts] == expected
    assert [step for step, _, _ in rows(postgres_settings, workflow_id)] == STEPS
    report = verify_chains(postgres_settings.database_url, workflow_id)
    assert (report.chains, report.rows, report.broken) == (1, len(STEPS), [])


async def test_a_retried_half_written_batch_writes_only_the_rows_still_missing(
    postgres_settings: Settings,
) -> None:
    workflow_id = f"incident-rows-{uuid.uuid4().hex[:8]}"
    events = [audit_event(workflow_id, step) for step in STEPS]

    # The first two rows are in (an earlier attempt's commit whose answer never came back), then the whole
    # batch is retried, then retried once more.
    first, retried, again = await write_batches(postgres_settings, events[:2], events, events)

    assert [r.inserted for r in retried] == [False, False, True, True]
    assert [r.row_hash for r in retried[:2]] == [r.row_hash for r in first]
    assert [r.inserted for r in again] == [False] * len(STEPS)
    assert [r.row_hash for r in again] == [r.row_hash for r in retried]
    written = rows(postgres_settings, workflow_id)
    assert [step for step, _, _ in written] == STEPS  # each once, in order
    assert [prev for _, prev, _ in written[1:]] == [digest for _, _, digest in written[:-1]]
    assert verify_chains(postgres_settings.database_url, workflow_id).broken == []


async def test_single_writes_and_batches_of_one_run_make_one_chain(postgres_settings: Settings) -> None:
    workflow_id = f"incident-rows-{uuid.uuid4().hex[:8]}"
    pause, *middle, last = [audit_event(workflow_id, step) for step in [*STEPS, "closed"]]
    async with AsyncConnectionPool(postgres_settings.database_url, min_size=1, max_size=2) as pool:
        audit = AuditActivities(pool)
        assert (await audit.write_audit(pause)).inserted
        assert all(r.inserted for r in (await audit.write_audit_rows(AuditRows(rows=middle))).receipts)
        assert (await audit.write_audit(last)).inserted

    assert [step for step, _, _ in rows(postgres_settings, workflow_id)] == [*STEPS, "closed"]
    report = verify_chains(postgres_settings.database_url, workflow_id)
    assert (report.chains, report.rows, report.broken) == (1, len(STEPS) + 1, [])


async def test_a_batch_with_a_row_postgres_refuses_writes_none_of_its_rows(
    postgres_settings: Settings,
) -> None:
    workflow_id = f"incident-rows-{uuid.uuid4().hex[:8]}"
    # Postgres refuses a NUL character in text: the third row cannot be written, so the whole transaction
    # is rolled back, the rows before it included.
    events = [
        audit_event(workflow_id, "pause"),
        audit_event(workflow_id, "tell-customer"),
        audit_event(workflow_id, "x", reason="\x00"),
    ]

    with pytest.raises(psycopg.Error):
        await write_batches(postgres_settings, events)

    assert rows(postgres_settings, workflow_id) == []
    [receipts] = await write_batches(postgres_settings, events[:2])
    assert [r.inserted for r in receipts] == [True, True]


def test_a_batch_holds_the_rows_of_one_run_only() -> None:
    workflow_id = f"incident-rows-{uuid.uuid4().hex[:8]}"
    with pytest.raises(ValidationError, match="one workflow run"):
        AuditRows(rows=[audit_event(workflow_id, "pause"), audit_event(workflow_id, "pause", run_id="run-2")])
    with pytest.raises(ValidationError):
        AuditRows(rows=[])
