"""Cleanup of expired data: caches, old logs, old stored predictions, orphaned temp files.

Retentions (days, from the settings; the original's defaults): prediction and stock-data caches
1, logs 30, stored predictions 7. Orphaned temp files (`.*.tmp`, `.*.partial`, `.staging-*`) go
after an hour, yfinance cache folders of processes that no longer exist at once, the
`.refresh.lock` files of earlier versions (with their symbol's folder when nothing else is
in it) at once. Never touched:
model versions and `current` pointers, scalers, the price history, backups, config, Redis data.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from stockpred.infra.clock import utcnow
from stockpred.infra.files import atomic_write, read_json_object
from stockpred.paths import DataTree
from stockpred.storage.backup import dead_partials

log = logging.getLogger(__name__)
TEMP_GRACE_SECONDS = 3600
NOT_DATA = ("temp", "lock")  # rules that may remove files inside protected folders


@dataclass(frozen=True)
class Retention:
    """How long each kind of data is kept, in days."""

    cache_days: int = 1
    log_days: int = 30
    prediction_days: int = 7


@dataclass
class CleanupReport:
    """What a cleanup removed (or, dry-run, would remove)."""

    dry_run: bool
    scope: str
    removed: list[dict[str, Any]] = field(default_factory=list)
    bytes_freed: int = 0
    finished_at: str = ""

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["files_removed"] = len(self.removed)
        return out


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def _older_files(root: Path, days: int, now: float, pattern: str = "*") -> Iterator[Path]:
    if not root.is_dir():
        return
    cutoff = now - days * 86400
    for path in root.rglob(pattern):
        if path.is_file() and not path.name.endswith(".lock") and path.stat().st_mtime < cutoff:
            yield path


def _orphan_temps(tree: DataTree, now: float) -> Iterator[Path]:
    cutoff = now - TEMP_GRACE_SECONDS
    for path in tree.root.rglob(".*"):
        if tree.backups in path.parents or tree.redis in path.parents:
            continue
        temp = path.name.endswith((".tmp", ".partial")) or path.name.startswith(".staging-")
        if temp and path.lstat().st_mtime < cutoff:
            yield path


def _dead_yfinance_dirs(tree: DataTree) -> Iterator[Path]:
    root = tree.stock_cache / "yfinance"
    if not root.is_dir():
        return
    for folder in root.glob("pid-*"):
        pid = folder.name.removeprefix("pid-")
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            yield folder


def _candidates(
    tree: DataTree, retention: Retention, scope: str, now: float
) -> Iterator[tuple[str, Path]]:
    for root in (tree.predictions_cache, tree.model_cache, tree.daily_cache, tree.intraday_cache):
        for path in _older_files(root, retention.cache_days, now):
            yield "cache", path
    for folder in _dead_yfinance_dirs(tree):
        yield "cache", folder
    if scope == "caches":
        return
    for path in _older_files(tree.logs, retention.log_days, now):
        yield "logs", path
    for path in _older_files(tree.predictions_daily, retention.prediction_days, now, "*.jsonl"):
        yield "predictions", path
    for path in _orphan_temps(tree, now):
        yield "temp", path
    for path in dead_partials(tree):
        yield "temp", path
    for path in tree.legacy_refresh_locks():
        yield "lock", path


def _folder_left_empty(folder: Path, removed: Path, dry_run: bool) -> bool:
    """Remove a symbol folder a legacy lock file was alone in; never one with anything else."""
    if dry_run:
        return all(p == removed for p in folder.iterdir())
    with contextlib.suppress(OSError):  # not empty (prices arrived meanwhile): kept
        folder.rmdir()
        return True
    return False


def run_cleanup(
    tree: DataTree,
    retention: Retention,
    *,
    dry_run: bool = False,
    scope: str = "all",
    now: float | None = None,
) -> CleanupReport:
    """Remove (or list, dry-run) what the retentions say is expired; `scope` all or caches.

    Call with the storage lock held (StorageService does): a killed backup's partial archive
    is removed at once, whatever its age.
    """
    if scope not in ("all", "caches"):
        raise ValueError("scope must be 'all' or 'caches'")
    report = CleanupReport(dry_run=dry_run, scope=scope)
    protected = [tree.backups, tree.stock_historical, tree.config]
    for rule, path in _candidates(tree, retention, scope, now or time.time()):
        if any(p == path or p in path.parents for p in protected) and rule not in NOT_DATA:
            continue
        try:
            size = _size(path)
            if not dry_run:
                if path.is_dir():
                    shutil.rmtree(path)
                else:
                    path.unlink()
        except FileNotFoundError:
            continue
        report.removed.append(
            {"path": str(path.relative_to(tree.root)), "bytes": size, "rule": rule}
        )
        report.bytes_freed += size
        if rule == "lock" and _folder_left_empty(path.parent, path, dry_run):
            report.removed.append(
                {"path": str(path.parent.relative_to(tree.root)), "bytes": 0, "rule": rule}
            )
    report.finished_at = utcnow().isoformat()
    if not dry_run:
        try:
            atomic_write(tree.cleanup_report, json.dumps(report.to_dict(), indent=1))
        except OSError as exc:  # the cleanup itself is done; only its report is missing
            log.warning("cleanup report not saved to %s: %s", tree.cleanup_report, exc)
    return report


def last_cleanup(tree: DataTree) -> dict[str, Any] | None:
    """The report of the last cleanup that removed something for real, if any."""
    return read_json_object(tree.cleanup_report)


__all__ = ["CleanupReport", "Retention", "last_cleanup", "run_cleanup"]
