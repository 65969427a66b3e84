"""The sandbox's own state of each service's application database, and the scenario model that sets it up.

What the contract's routes take and answer are `schemas/database.py`'s models; the state kept here extends
them with what a scenario decides (whether backups verify, whether the integrity check passes)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from schemas.database import DatabaseBackup, DatabaseState


class DatabaseSpec(BaseModel):
    migrations: list[str] = Field(min_length=1, description="applied, oldest first")
    rows: int = Field(1000, ge=0)
    backup_verifies: bool = Field(True, description="False: every backup of it fails verification")
    integrity_ok: bool = Field(True, description="False: the integrity check after a migration fails")


class DatabaseBackupRecord(DatabaseBackup):
    at: str


class ServiceDatabase(DatabaseState):
    backup_verifies: bool = Field(True, exclude=True)
    integrity_ok: bool = Field(True, exclude=True)
    backup_records: dict[str, DatabaseBackupRecord] = Field(default_factory=dict, exclude=True)
