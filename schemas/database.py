"""The application database's requests and results: its state, backups, reverse migrations and
integrity checks, shared by the rollback runbook, the adapters of `activities/database/` and the sandbox.

`MigrateDownBody` is the HTTP contract's one request body of this system (docs/platform-openapi.json); a
backup, its verification and the integrity check take none."""

from __future__ import annotations

from pydantic import BaseModel, Field

from schemas.actions import SET_BY_ACT
from schemas.deploys import ServiceRequest

__all__ = [
    "BackupRef",
    "DatabaseBackup",
    "DatabaseState",
    "IntegrityReport",
    "MigrateDown",
    "MigrateDownBody",
    "ServiceRequest",
]


class DatabaseState(BaseModel):
    service: str
    migrations: list[str] = Field(description="applied migrations, oldest first")
    rows: int
    backups: list[str] = Field(default_factory=list)
    verified_backups: list[str] = Field(default_factory=list)
    replayed: bool = False


class DatabaseBackup(BaseModel):
    id: str
    service: str
    migration: str
    rows: int
    verified: bool = False
    replayed: bool = False


class BackupRef(BaseModel):
    service: str
    backup_id: str
    idempotency_key: str = Field("", description=SET_BY_ACT)


class MigrateDown(BaseModel):
    service: str
    backup_id: str = Field(description="a verified backup of the data as it is now")
    migration: str = Field(description="the migration to reverse; must be the latest applied")
    idempotency_key: str = Field("", description=SET_BY_ACT)


class MigrateDownBody(BaseModel):
    """`POST /databases/{service}/migrate-down`."""

    backup_id: str = Field(description="a verified backup of the data as it is now")
    migration: str = Field(description="the migration to reverse; must be the latest applied")


class IntegrityReport(BaseModel):
    service: str
    ok: bool
    detail: str = ""
    replayed: bool = False
