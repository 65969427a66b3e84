from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


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
