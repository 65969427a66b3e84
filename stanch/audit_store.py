"""Reading the audit log back: rows of one incident, and verification of every hash chain.

In the core of `stanch`, not in `stanch.ops`: the console (a process, workers/console/) shows an incident's rows
and their verification, and the CLI's `stanch audit` reads the same."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from pydantic import BaseModel, Field

from stanch.db import GENESIS_HASH, row_hash


class AuditRow(BaseModel):
    id: int
    workflow_id: str
    run_id: str
    step_key: str
    actor: str
    action: str
    outcome: str
    reason: str
    details: dict[str, Any]
    occurred_at: datetime
    prev_hash: str
    row_hash: str


class BrokenLink(BaseModel):
    workflow_id: str
    run_id: str
    row_id: int
    step_key: str
    problem: str


class ChainReport(BaseModel):
    chains: int = 0
    rows: int = 0
    broken: list[BrokenLink] = Field(default_factory=list)

    def summary(self) -> str:
        if not self.broken:
            return f"audit log intact: {self.chains} incident chain(s), {self.rows} row(s)"
        first = self.broken[0]
        return (
            f"audit log BROKEN in {len(self.broken)} chain(s); first: {first.workflow_id} run {first.run_id} "
            f"row {first.row_id} ({first.step_key}): {first.problem}"
        )


def read_rows(database_url: str, workflow_id: str | None = None) -> list[AuditRow]:
    query = "SELECT * FROM audit_log"
    params: tuple[str, ...] = ()
    if workflow_id:
        query += " WHERE workflow_id = %s"
        params = (workflow_id,)
    with psycopg.connect(database_url, row_factory=dict_row) as conn:
        # An incident id opened again has one chain per run: each run's rows together, runs in the order
        # they began (run ids are random, so ordering by them would show a re-opened incident's runs mixed).
        order = " ORDER BY workflow_id, MIN(id) OVER (PARTITION BY workflow_id, run_id), id"
        rows = conn.execute(query + order, params).fetchall()
    return [AuditRow.model_validate(row) for row in rows]


def verify_chains(database_url: str, workflow_id: str | None = None) -> ChainReport:
    """Recompute each incident's chain; report the first bad link of each broken chain."""
    report = ChainReport()
    previous: dict[tuple[str, str], str] = {}
    broken_chains: set[tuple[str, str]] = set()
    for row in read_rows(database_url, workflow_id):
        report.rows += 1
        chain = (row.workflow_id, row.run_id)
        if chain not in previous:
            report.chains += 1
        if chain in broken_chains:
            continue
        expected_prev = previous.get(chain, GENESIS_HASH)
        problem = None
        if row.prev_hash != expected_prev:
            problem = "links to a row that is not the previous one (a row was removed or reordered)"
        elif row_hash(row.prev_hash, row.model_dump()) != row.row_hash:
            problem = "contents do not match their hash (the row was edited)"
        if problem:
            broken_chains.add(chain)
            report.broken.append(
                BrokenLink(
                    workflow_id=row.workflow_id,
                    run_id=row.run_id,
                    row_id=row.id,
                    step_key=row.step_key,
                    problem=problem,
                )
            )
        previous[chain] = row.row_hash
    return report
