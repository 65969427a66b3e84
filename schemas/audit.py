from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field, model_validator


class AuditEvent(BaseModel):
    """One effect or decision. (workflow_id, run_id, step_key) is unique: a retried write adds no row."""

    workflow_id: str
    run_id: str
    step_key: str
    actor: str
    action: str
    outcome: str
    reason: str = ""
    occurred_at: datetime
    details: dict[str, str] = Field(default_factory=dict)


class AuditReceipt(BaseModel):
    workflow_id: str
    run_id: str
    step_key: str
    row_hash: str
    inserted: bool = Field(description="False when this step was already written by an earlier attempt")


class AuditRows(BaseModel):
    """Rows of one workflow run, in the order its steps queued them: written in one transaction, each
    row as idempotent as a single `AuditEvent` write and chained to the one before it."""

    rows: list[AuditEvent] = Field(min_length=1)

    @model_validator(mode="after")
    def _one_run(self) -> AuditRows:
        # One run's chain per batch: the advisory lock and the previous row are that run's.
        runs = {(row.workflow_id, row.run_id) for row in self.rows}
        if len(runs) != 1:
            raise ValueError(f"audit rows of one batch must belong to one workflow run, not {len(runs)}")
        return self


class AuditRowsReceipt(BaseModel):
    receipts: list[AuditReceipt] = Field(description="One per row, in the order of the rows written")
