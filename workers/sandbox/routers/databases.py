"""A service's application database: the contract's backups and their verification, the reverse migration and
the integrity checks. Bodies and answers are `schemas/database.py`'s models, the ones the http adapter
(`activities/database/http.py`) sends and reads."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException

from schemas.database import DatabaseBackup, DatabaseState, IntegrityReport, MigrateDownBody
from workers.sandbox.common import found_or_404, now_iso
from workers.sandbox.dependencies import SandboxDep, require_idempotency_key
from workers.sandbox.models.databases import DatabaseBackupRecord, ServiceDatabase
from workers.sandbox.state import Sandbox

# Reads: not effects a runbook performs, so no key is needed.
router = APIRouter()
# Everything on this router changes the stand-in's state, so it must be safe to retry.
effects = APIRouter(dependencies=[Depends(require_idempotency_key)])


def _database(sandbox: Sandbox, service: str) -> ServiceDatabase:
    return found_or_404(sandbox.databases, service, f"no database known for {service}")


@router.get("/databases/{service}")
async def get_database(sandbox: SandboxDep, service: str) -> DatabaseState:
    """The service database's applied migrations (oldest first), rows and backups."""
    return _database(sandbox, service)


@effects.post("/databases/{service}/backups")
async def backup_database(sandbox: SandboxDep, service: str) -> DatabaseBackup:
    """Take a backup of the service's database as it is now."""
    database = _database(sandbox, service)
    backup = DatabaseBackupRecord(
        id=f"backup-{service}-{len(database.backups) + 1}",
        service=service,
        migration=database.migrations[-1],
        rows=database.rows,
        at=now_iso(),
    )
    database.backups.append(backup.id)
    database.backup_records[backup.id] = backup
    return backup


@effects.post("/databases/{service}/backups/{backup_id}/verify")
async def verify_database_backup(sandbox: SandboxDep, service: str, backup_id: str) -> DatabaseBackup:
    """Read the backup back; `verified` is true only if it restores."""
    database = _database(sandbox, service)
    backup = found_or_404(database.backup_records, backup_id, f"unknown backup {backup_id}")
    backup.verified = database.backup_verifies
    if backup.verified and backup_id not in database.verified_backups:
        database.verified_backups.append(backup_id)
    return backup


@effects.post("/databases/{service}/migrate-down")
async def migrate_database_down(sandbox: SandboxDep, service: str, body: MigrateDownBody) -> DatabaseState:
    """Reverse the latest migration; 409 without a verified backup of the data as it is now."""
    database = _database(sandbox, service)
    backup = database.backup_records.get(body.backup_id)
    # The platform refuses on its own too: no reverse migration without a verified backup of the data as
    # it stands now, whatever the caller believes.
    if backup is None or not backup.verified:
        raise HTTPException(
            409, f"backup {body.backup_id} is missing or unverified; refusing to migrate down"
        )
    if backup.migration != database.migrations[-1] or backup.rows != database.rows:
        raise HTTPException(409, f"backup {body.backup_id} does not match the current data")
    if body.migration != database.migrations[-1]:
        raise HTTPException(409, f"{body.migration} is not the latest applied migration")
    database.migrations.pop()
    return database


@effects.post("/databases/{service}/integrity-check")
async def check_database_integrity(sandbox: SandboxDep, service: str) -> IntegrityReport:
    """Run the integrity checks after a change; `ok` says whether they pass."""
    database = _database(sandbox, service)
    detail = "constraints and row counts consistent" if database.integrity_ok else "orphaned rows found"
    return IntegrityReport(service=service, ok=database.integrity_ok, detail=detail)


router.include_router(effects)
