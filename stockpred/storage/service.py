"""Storage operations as one service for the CLI and the maintenance tasks.

Backup, restore and cleanup hold the storage lock (one at a time across the hosts sharing this
Redis: `stockpred.storage.lock`). Scheduled runs do not wait for it: when another run holds it
they are skipped, so two never interleave.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from stockpred.infra.clock import utcnow
from stockpred.paths import DataTree
from stockpred.settings import Settings
from stockpred.storage.backup import create_backup, dead_partials
from stockpred.storage.catalog import list_backups, mark_verified, rotate
from stockpred.storage.cleanup import Retention, run_cleanup
from stockpred.storage.errors import StorageBusy
from stockpred.storage.lock import storage_lock
from stockpred.storage.monitor import build_report, save_report
from stockpred.storage.restore import restore_backup
from stockpred.storage.verify import verify_backup

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
__all__ = ["StorageBusy", "StorageService"]


class StorageService:
    """Backups, restores, cleanup, verification and monitoring of one data tree."""

    def __init__(self, settings: Settings, redis_client: Any = None) -> None:
        self.settings = settings
        self.tree = DataTree.from_settings(settings)
        self.redis = redis_client

    def backup(
        self,
        *,
        categories: list[str] | None = None,
        base: str | None = None,
        incremental: bool = False,
        encrypt: bool | None = None,
        scheduled: bool = False,
        progress: Progress | None = None,
    ) -> dict[str, Any]:
        """A backup (incremental against `base`, or the newest full one), then rotation."""
        key = self.settings.backup_encryption_key
        with self._guard(scheduled):
            for partial in dead_partials(self.tree):
                log.warning("removing %s, left by a backup that did not finish", partial.name)
                partial.unlink(missing_ok=True)
            if incremental and base is None:
                fulls = [b for b in list_backups(self.tree.backups) if b.kind == "full"]
                base = fulls[-1].name if fulls else None
            result = create_backup(
                self.tree,
                categories=categories,
                base=base,
                key=key,
                encrypt=bool(key) if encrypt is None else encrypt,
                log_days=self.settings.backup_log_days,
                redis_client=self.redis,
                progress=progress,
                ledger_url=self.settings.database_url,
            )
            removed = rotate(self.tree.backups, self.settings.backup_keep)
        return {**result.to_dict(), "rotated_out": removed}

    def restore(
        self,
        *,
        name: str | None = None,
        categories: list[str] | None = None,
        dry_run: bool = False,
        allow_unencrypted: bool = False,
        restore_secrets: bool = False,
        progress: Progress | None = None,
    ) -> dict[str, Any]:
        """Verify, then restore (or list what would change)."""
        with self._guard(False):
            result = restore_backup(
                self.tree,
                name=name,
                categories=categories,
                dry_run=dry_run,
                key=self.settings.backup_encryption_key,
                allow_unencrypted=allow_unencrypted,
                restore_secrets=restore_secrets,
                progress=progress,
                ledger_url=self.settings.database_url,
            )
        return result.to_dict()

    def verify(self, name: str | None = None) -> dict[str, Any]:
        """Check every checksum of a backup and what it depends on; record success."""
        result = verify_backup(self.tree, name, self.settings.backup_encryption_key)
        if result.ok:
            mark_verified(self.tree.backups, result.name, utcnow().isoformat())
        return result.to_dict()

    def cleanup(
        self, *, dry_run: bool = False, scope: str = "all", scheduled: bool = False
    ) -> dict[str, Any]:
        """Remove what the retentions call expired."""
        retention = Retention(
            self.settings.cleanup_cache_days,
            self.settings.cleanup_log_days,
            self.settings.cleanup_prediction_days,
        )
        with self._guard(scheduled):
            return run_cleanup(self.tree, retention, dry_run=dry_run, scope=scope).to_dict()

    def monitor(self, save: bool = True) -> dict[str, Any]:
        """Measure and check the tree; keep the report and gauges under monitoring/."""
        report = build_report(
            self.tree,
            max_backup_age=self.settings.backup_max_age,
            redis_client=self.redis,
            redis_memory_warn_percent=self.settings.redis_memory_warn_percent,
        )
        if save:
            save_report(self.tree, report)
        return {**report.to_dict(), "table": report.table()}

    def _guard(self, scheduled: bool) -> Any:
        """The storage lock; a scheduled run that finds it taken raises StorageBusy."""
        return storage_lock(self.settings, self.redis, wait=not scheduled)
