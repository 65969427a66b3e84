"""The application database system: the interface its runbooks act through; adapters implement it."""

from __future__ import annotations

from abc import abstractmethod
from typing import ClassVar

from activities.adapters import Adapter
from schemas.database import (
    BackupRef,
    DatabaseBackup,
    DatabaseState,
    IntegrityReport,
    MigrateDown,
    ServiceRequest,
)
from schemas.systems import SystemName


class Database(Adapter):
    system: ClassVar[SystemName] = "database"

    @abstractmethod
    async def database_state(self, request: ServiceRequest) -> DatabaseState:
        """The service database's applied migrations, rows and backups."""

    @abstractmethod
    async def backup_database(self, request: ServiceRequest) -> DatabaseBackup:
        """Take a backup of the service's database as it is now."""

    @abstractmethod
    async def verify_backup(self, request: BackupRef) -> DatabaseBackup:
        """Read a backup back and mark it verified only if it restores."""

    @abstractmethod
    async def migrate_down(self, request: MigrateDown) -> DatabaseState:
        """Reverse the latest migration; refused without a verified backup of the data as it is now."""

    @abstractmethod
    async def check_integrity(self, request: ServiceRequest) -> IntegrityReport:
        """Run the integrity checks after a change and say whether they pass."""
