"""The application database system's activities: each calls the adapter the policy names (`[systems.database]`).

The activity type names are those recorded histories hold (`deploys_…`); new ones follow `<system>_<verb>`.
"""

from __future__ import annotations

from temporalio import activity

from activities.database.interface import Database
from activities.heartbeat import heartbeating
from schemas.database import (
    BackupRef,
    DatabaseBackup,
    DatabaseState,
    IntegrityReport,
    MigrateDown,
    ServiceRequest,
)


class DatabaseActivities:
    """Built once in the worker around the the application database adapter."""

    def __init__(self, system: Database) -> None:
        self._system = system

    @activity.defn(name="deploys_database_state")
    @heartbeating
    async def database_state(self, request: ServiceRequest) -> DatabaseState:
        return await self._system.database_state(request)

    @activity.defn(name="deploys_backup_database")
    @heartbeating
    async def backup_database(self, request: ServiceRequest) -> DatabaseBackup:
        return await self._system.backup_database(request)

    @activity.defn(name="deploys_verify_backup")
    @heartbeating
    async def verify_backup(self, request: BackupRef) -> DatabaseBackup:
        return await self._system.verify_backup(request)

    @activity.defn(name="deploys_migrate_down")
    @heartbeating
    async def migrate_down(self, request: MigrateDown) -> DatabaseState:
        return await self._system.migrate_down(request)

    @activity.defn(name="deploys_check_integrity")
    @heartbeating
    async def check_integrity(self, request: ServiceRequest) -> IntegrityReport:
        return await self._system.check_integrity(request)

    def all(self) -> list[object]:
        """Every activity of this class, for the worker's list."""
        return [
            self.database_state,
            self.backup_database,
            self.verify_backup,
            self.migrate_down,
            self.check_integrity,
        ]
