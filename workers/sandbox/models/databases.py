"""Wire models of a service's application database: migrations, backups and integrity checks."""

from __future__ import annotations

from pydantic import BaseModel, Field


class DatabaseSpec(BaseModel):
    migrations: list[str] = Field(min_length=1, description="applied, oldest first")
    rows: int = Field(1000, ge=0)
    backup_verifies: bool = Field(True, description="False: every backup of it fails verification")
    integrity_ok: bool = Field(True, description="False: the integrity check after a migration fails")


class DatabaseBackupRecord(BaseModel):
    id: str
    service: str
    migration: str
    rows: int
    verified: bool = False
    at: str
    replayed: bool = False


class ServiceDatabase(BaseModel):
    service: str
    migrations: list[str]
    rows: int
    backups: list[str] = Field(default_factory=list)
    verified_backups: list[str] = Field(default_factory=list)
    reversed_migrations: list[str] = Field(default_factory=list)
    integrity_checks: int = 0
    replayed: bool = False
    backup_verifies: bool = Field(True, exclude=True)
    integrity_ok: bool = Field(True, exclude=True)
    backup_records: dict[str, DatabaseBackupRecord] = Field(default_factory=dict, exclude=True)


class MigrateDownBody(BaseModel):
    backup_id: str
    migration: str


class IntegrityResult(BaseModel):
    service: str
    ok: bool
    detail: str
    replayed: bool = False
