"""The application database over the documented HTTP contract (docs/platform-openapi.json), as the sandbox implements it.

Reads carry the idempotency key too: the platform ignores it for a GET, and the call log stays uniform.
Only the reverse migration has a body (`schemas.database.MigrateDownBody`, the model the sandbox reads).
"""

from __future__ import annotations

from activities.database.interface import Database
from activities.http import KeyedCalls
from schemas.database import (
    BackupRef,
    DatabaseBackup,
    DatabaseState,
    IntegrityReport,
    MigrateDown,
    MigrateDownBody,
    ServiceRequest,
)


class HttpDatabase(KeyedCalls, Database):
    """The application database at the platform's base URL."""

    async def database_state(self, request: ServiceRequest) -> DatabaseState:
        what = f"database of {request.service}"
        return await self._read(f"/databases/{request.service}", request.idempotency_key, DatabaseState, what)

    async def backup_database(self, request: ServiceRequest) -> DatabaseBackup:
        path = f"/databases/{request.service}/backups"
        what = f"backup of {request.service}"
        return await self._post(path, request.idempotency_key, DatabaseBackup, what)

    async def verify_backup(self, request: BackupRef) -> DatabaseBackup:
        path = f"/databases/{request.service}/backups/{request.backup_id}/verify"
        what = f"verification of backup {request.backup_id}"
        return await self._post(path, request.idempotency_key, DatabaseBackup, what)

    async def migrate_down(self, request: MigrateDown) -> DatabaseState:
        path = f"/databases/{request.service}/migrate-down"
        body = MigrateDownBody(backup_id=request.backup_id, migration=request.migration)
        what = f"reverse migration {request.migration} of {request.service}"
        return await self._post(path, request.idempotency_key, DatabaseState, what, body)

    async def check_integrity(self, request: ServiceRequest) -> IntegrityReport:
        path = f"/databases/{request.service}/integrity-check"
        what = f"integrity check of {request.service}"
        return await self._post(path, request.idempotency_key, IntegrityReport, what)
