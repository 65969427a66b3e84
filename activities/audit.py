"""The only writer of the audit log."""

from __future__ import annotations

from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool
from temporalio import activity

from schemas.audit import AuditEvent, AuditReceipt
from stanch.db import GENESIS_HASH, row_hash
from stanch.metrics import WorkerMetrics

# Postgres away: fail the attempt in a few seconds and let the retry policy pace the next one, instead of
# waiting out the whole start-to-close timeout for a connection the pool cannot make.
CONNECT_TIMEOUT_SECONDS = 5.0


class AuditActivities:
    def __init__(self, pool: AsyncConnectionPool, metrics: WorkerMetrics | None = None) -> None:
        self._pool = pool
        self._metrics = metrics or WorkerMetrics.noop()

    @activity.defn(name="write_audit")
    async def write_audit(self, event: AuditEvent) -> AuditReceipt:
        try:
            return await self._write(event)
        except Exception:
            # Counted per failed attempt: the rule StanchAuditWritesFailing fires when they keep coming.
            self._metrics.audit_write_failed()
            raise

    async def _write(self, event: AuditEvent) -> AuditReceipt:
        async with self._pool.connection(timeout=CONNECT_TIMEOUT_SECONDS) as conn, conn.transaction():
            # One writer per incident at a time, so each row links to the true previous one.
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
                (f"{event.workflow_id}/{event.run_id}",),
            )
            existing = await (
                await conn.execute(
                    "SELECT row_hash FROM audit_log WHERE workflow_id = %s AND run_id = %s AND step_key = %s",
                    (event.workflow_id, event.run_id, event.step_key),
                )
            ).fetchone()
            if existing:
                return AuditReceipt(
                    workflow_id=event.workflow_id,
                    run_id=event.run_id,
                    step_key=event.step_key,
                    row_hash=existing[0],
                    inserted=False,
                )
            last = await (
                await conn.execute(
                    "SELECT row_hash FROM audit_log WHERE workflow_id = %s AND run_id = %s "
                    "ORDER BY id DESC LIMIT 1",
                    (event.workflow_id, event.run_id),
                )
            ).fetchone()
            prev_hash = last[0] if last else GENESIS_HASH
            fields = event.model_dump()
            digest = row_hash(prev_hash, fields)
            await conn.execute(
                "INSERT INTO audit_log (workflow_id, run_id, step_key, actor, action, outcome, reason, "
                "details, occurred_at, prev_hash, row_hash) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (
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
                ),
            )
        return AuditReceipt(
            workflow_id=event.workflow_id,
            run_id=event.run_id,
            step_key=event.step_key,
            row_hash=digest,
            inserted=True,
        )
