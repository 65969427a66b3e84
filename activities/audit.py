"""The only writer of the audit log."""

from __future__ import annotations

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool
from temporalio import activity

from schemas.audit import AuditEvent, AuditReceipt, AuditRows, AuditRowsReceipt
from stanch.db import GENESIS_HASH, row_hash
from stanch.metrics import WorkerMetrics

# Postgres away: fail the attempt in a few seconds and let the retry policy pace the next one, instead of
# waiting out the whole start-to-close timeout for a connection the pool cannot make.
CONNECT_TIMEOUT_SECONDS = 5.0

_INSERT = (
    "INSERT INTO audit_log (workflow_id, run_id, step_key, actor, action, outcome, reason, "
    "details, occurred_at, prev_hash, row_hash) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
)


class AuditActivities:
    def __init__(self, pool: AsyncConnectionPool, metrics: WorkerMetrics | None = None) -> None:
        self._pool = pool
        self._metrics = metrics or WorkerMetrics.noop()

    @activity.defn(name="write_audit")
    async def write_audit(self, event: AuditEvent) -> AuditReceipt:
        [receipt] = await self._counting_failures(AuditRows(rows=[event]))
        return receipt

    @activity.defn(name="audit_write_rows")
    async def write_audit_rows(self, batch: AuditRows) -> AuditRowsReceipt:
        """Every row an incident's audit queue held, in one activity and one transaction: one history
        step for several rows. A retry (the first attempt committed, its answer lost) writes none twice."""
        return AuditRowsReceipt(receipts=await self._counting_failures(batch))

    async def _counting_failures(self, batch: AuditRows) -> list[AuditReceipt]:
        try:
            return await self._write(batch)
        except Exception:
            # Counted per failed attempt: the rule StanchAuditWritesFailing fires when they keep coming.
            self._metrics.audit_write_failed()
            raise

    async def _write(self, batch: AuditRows) -> list[AuditReceipt]:
        """Write the rows in order, each once, each linked to the run's previous row: the single write is
        a batch of one, so a batch chains exactly as the same rows written one by one would."""
        workflow_id, run_id = batch.rows[0].workflow_id, batch.rows[0].run_id
        async with self._pool.connection(timeout=CONNECT_TIMEOUT_SECONDS) as conn, conn.transaction():
            # One writer per incident at a time, so each row links to the true previous one.
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"{workflow_id}/{run_id}",)
            )
            written = await _written_steps(conn, workflow_id, run_id, [row.step_key for row in batch.rows])
            last = await (
                await conn.execute(
                    "SELECT row_hash FROM audit_log WHERE workflow_id = %s AND run_id = %s "
                    "ORDER BY id DESC LIMIT 1",
                    (workflow_id, run_id),
                )
            ).fetchone()
            prev_hash = last[0] if last else GENESIS_HASH
            receipts: list[AuditReceipt] = []
            for event in batch.rows:
                existing = written.get(event.step_key)
                if existing is not None:
                    receipts.append(_receipt(event, existing, inserted=False))
                    continue
                digest = row_hash(prev_hash, event.model_dump())
                await conn.execute(_INSERT, _values(event, prev_hash, digest))
                written[event.step_key] = prev_hash = digest
                receipts.append(_receipt(event, digest, inserted=True))
        return receipts


async def _written_steps(
    conn: AsyncConnection, workflow_id: str, run_id: str, step_keys: list[str]
) -> dict[str, str]:
    """The row hash of each of these steps the run has written already (by an earlier attempt)."""
    rows = await (
        await conn.execute(
            "SELECT step_key, row_hash FROM audit_log "
            "WHERE workflow_id = %s AND run_id = %s AND step_key = ANY(%s)",
            (workflow_id, run_id, step_keys),
        )
    ).fetchall()
    return {str(step): str(digest) for step, digest in rows}


def _values(event: AuditEvent, prev_hash: str, digest: str) -> tuple[object, ...]:
    return (
        event.workflow_id,
        event.run_id,
        event.step_key,
        event.actor,
        event.action,
        event.outcome,
        event.reason,
        Jsonb(event.details),
        event.occurred_at,
        prev_hash,
        digest,
    )


def _receipt(event: AuditEvent, digest: str, *, inserted: bool) -> AuditReceipt:
    return AuditReceipt(
        workflow_id=event.workflow_id,
        run_id=event.run_id,
        step_key=event.step_key,
        row_hash=digest,
        inserted=inserted,
    )
