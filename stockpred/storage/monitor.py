"""The storage monitor: usage per folder, free disk, backups, cache sizes, and health checks.

Produces a JSON report (kept as `monitoring/storage-report.json`), a readable table, and the
same figures as Prometheus gauges in `monitoring/storage.prom` (text exposition format).
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from stockpred.infra.clock import utcnow
from stockpred.infra.files import atomic_write, read_json_object
from stockpred.ml.prediction_store import KEY_PREFIX
from stockpred.ml.registry import ModelRegistry, RegistryError
from stockpred.paths import DataTree, check_tree, directory_usage
from stockpred.storage.catalog import list_backups, newest_age
from stockpred.storage.check import human_bytes
from stockpred.storage.cleanup import last_cleanup
from stockpred.storage.secrets import exposed_secret_files
from stockpred.telemetry.redis_facts import count_keys, read_memory

log = logging.getLogger(__name__)


def top_level(tree: DataTree) -> dict[str, Path]:
    """The folders the report measures: the tree's top level, by name, root excluded."""
    return {
        name: path
        for name, path in tree.directories().items()
        if name != "root" and "/" not in name
    }


@dataclass(frozen=True)
class Check:
    """One health check."""

    name: str
    ok: bool
    detail: str


@dataclass
class StorageReport:
    """Everything the monitor measured."""

    generated_at: str
    root: str
    total_bytes: int
    total_files: int
    free_bytes: int
    disk_bytes: int
    directories: dict[str, dict[str, int]]
    backup_count: int
    newest_backup: str | None
    newest_backup_age_seconds: int | None
    cache_entries: dict[str, int | None]
    last_cleanup_bytes_freed: int | None
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["ok"] = self.ok
        return out

    def table(self) -> str:
        """The readable form, like the original's monitor script."""
        lines = [
            "Stock Prediction Service - Data Usage Report",
            f"Overall usage: {human_bytes(self.total_bytes)} in {self.total_files} files "
            f"(free: {human_bytes(self.free_bytes)} of {human_bytes(self.disk_bytes)})",
            "Directory breakdown:",
        ]
        for name, usage in self.directories.items():
            lines.append(f"   {name:12} {human_bytes(usage['bytes']):>8} ({usage['files']} files)")
        age = self.newest_backup_age_seconds
        lines.append(
            f"Backups: {self.backup_count}; newest: {self.newest_backup or 'none'}"
            + ("" if age is None else f" ({age // 3600}h {age % 3600 // 60}m old)")
        )
        lines.append(
            "Cache entries: "
            + ", ".join(f"{k}={'n/a' if v is None else v}" for k, v in self.cache_entries.items())
        )
        lines.append("Health checks:")
        for check in self.checks:
            lines.append(f"   {'ok  ' if check.ok else 'FAIL'} {check.name:22} {check.detail}")
        lines.append("All systems healthy" if self.ok else "Storage needs attention")
        return "\n".join(lines)


def _redis_check(client: Any) -> Check:
    if client is None:
        return Check("redis_persistence", True, "not checked (no Redis connection)")
    try:
        info = client.info("persistence")
    except Exception as exc:
        log.warning("storage monitor: Redis did not answer INFO persistence: %s", exc)
        return Check("redis_persistence", False, f"Redis did not answer: {exc}")
    aof_ok = info.get("aof_enabled") and info.get("aof_last_write_status") == "ok"
    rdb_ok = info.get("rdb_last_bgsave_status") == "ok"
    detail = (
        f"aof_enabled={info.get('aof_enabled')} aof_last_write="
        f"{info.get('aof_last_write_status')} rdb_last_bgsave={info.get('rdb_last_bgsave_status')}"
    )
    return Check("redis_persistence", bool(aof_ok and rdb_ok), detail)


def _model_check(tree: DataTree) -> Check:
    registry = ModelRegistry(tree.ml_models, tree.scalers)
    broken = []
    symbols = registry.symbols()
    for symbol in symbols:
        try:
            info = registry.current(symbol)
            if info is None or not info.model_path.is_file() or not info.scaler_path.is_file():
                broken.append(symbol)
        except RegistryError:
            broken.append(symbol)
    if broken:
        return Check("models_metadata", False, f"unreadable current model of {', '.join(broken)}")
    return Check("models_metadata", True, f"{len(symbols)} current model(s) readable")


def _secrets_check(tree: DataTree) -> Check:
    """Secret files and backups must be owner-only: they hold the API token and passwords."""
    exposed = exposed_secret_files(tree)
    if exposed:
        log.warning("storage monitor: readable by group/others: %s", "; ".join(exposed))
        return Check(
            "secret_files",
            False,
            f"readable by group/others, chmod 600: {'; '.join(exposed[:3])}"
            + (f" and {len(exposed) - 3} more" if len(exposed) > 3 else ""),
        )
    return Check("secret_files", True, "secret files and backups are owner-only (600)")


def _redis_memory_check(client: Any, warn_percent: int) -> Check:
    """Used memory against maxmemory, and a policy that never evicts (see redis.conf)."""
    if client is None:
        return Check("redis_memory", True, "not checked (no Redis connection)")
    try:
        memory = read_memory(client)
    except Exception as exc:
        log.warning("storage monitor: Redis did not answer INFO memory: %s", exc)
        return Check("redis_memory", False, f"Redis did not answer: {exc}")
    if memory.evicts:
        return Check(
            "redis_memory",
            False,
            f"maxmemory-policy {memory.policy} may evict locks, job records or queued tasks: "
            "set noeviction in redis.conf",
        )
    warning = memory.warning(warn_percent)
    if warning is not None:
        log.warning("storage monitor: %s", warning)
        return Check("redis_memory", False, warning)
    share = "no maxmemory" if memory.percent is None else f"{memory.percent:g}% of maxmemory"
    return Check("redis_memory", True, f"{share}, policy {memory.policy}")


def build_report(
    tree: DataTree,
    *,
    max_backup_age: timedelta,
    redis_client: Any = None,
    redis_memory_warn_percent: int = 80,
    now: datetime | None = None,
) -> StorageReport:
    """Measure the tree and run every health check."""
    moment = now or utcnow()
    directories = {}
    for name, path in top_level(tree).items():
        used, files = directory_usage(path) if path.exists() else (0, 0)
        directories[name] = {"bytes": used, "files": files}
    total, files = directory_usage(tree.root)
    disk = shutil.disk_usage(tree.root)
    backups = list_backups(tree.backups)
    newest = backups[-1] if backups else None
    newest_backup_age = newest_age(backups, moment)
    age = None if newest_backup_age is None else int(newest_backup_age.total_seconds())
    prediction_keys = None
    if redis_client is not None:
        try:
            prediction_keys = count_keys(redis_client, KEY_PREFIX)
        except Exception as exc:
            log.warning("cached predictions not counted: Redis did not answer (%s)", exc)
            prediction_keys = None
    cleanup = last_cleanup(tree)
    checks = [Check(f"dir:{d.name}", d.ok, d.problem or "ok") for d in check_tree(tree)]
    if age is None:
        checks.append(Check("backup_fresh", False, "no backup yet"))
    else:
        limit = int(max_backup_age.total_seconds())
        checks.append(
            Check(
                "backup_fresh",
                age <= limit,
                f"newest backup is {age // 3600}h old (limit {limit // 3600}h)",
            )
        )
    checks += [
        _secrets_check(tree),
        _model_check(tree),
        _redis_check(redis_client),
        _redis_memory_check(redis_client, redis_memory_warn_percent),
    ]
    return StorageReport(
        generated_at=moment.isoformat(),
        root=str(tree.root),
        total_bytes=total,
        total_files=files,
        free_bytes=disk.free,
        disk_bytes=disk.total,
        directories=directories,
        backup_count=len(backups),
        newest_backup=None if newest is None else newest.name,
        newest_backup_age_seconds=age,
        cache_entries={
            "daily_cache": len(list(tree.daily_cache.glob("*.meta.json"))),
            "predictions_cache_files": sum(
                1 for p in tree.predictions_cache.rglob("*") if p.is_file()
            ),
            "prediction_keys": prediction_keys,
        },
        last_cleanup_bytes_freed=_bytes_freed(cleanup),
        checks=checks,
    )


def _bytes_freed(cleanup: Any) -> int | None:
    """The last cleanup report's figure, or None when there is none or it has another shape."""
    try:
        return int(cleanup["bytes_freed"])
    except (KeyError, TypeError, ValueError):
        return None


def storage_families(
    report: dict[str, Any],
    skip: frozenset[str] | set[str] = frozenset(),
) -> Iterator[Metric]:
    """The report's figures as Prometheus gauge families."""
    families: list[Metric] = []
    used = GaugeMetricFamily(
        "stockpred_storage_bytes", "Bytes used per persistent_data folder", labels=["directory"]
    )
    files = GaugeMetricFamily(
        "stockpred_storage_files", "Files per persistent_data folder", labels=["directory"]
    )
    for name, usage in report["directories"].items():
        used.add_metric([name], usage["bytes"])
        files.add_metric([name], usage["files"])
    families += [used, files]
    age = report["newest_backup_age_seconds"]
    for name, text, value in (
        (
            "stockpred_storage_free_bytes",
            "Free bytes on the data file system",
            report["free_bytes"],
        ),
        ("stockpred_storage_disk_bytes", "Size of the data file system", report["disk_bytes"]),
        ("stockpred_backup_count", "Backups kept", report["backup_count"]),
        (
            "stockpred_backup_age_seconds",
            "Age of the newest backup (-1: none)",
            -1 if age is None else age,
        ),
        (
            "stockpred_cleanup_last_freed_bytes",
            "Bytes freed by the last cleanup",
            report["last_cleanup_bytes_freed"] or 0,
        ),
        (
            "stockpred_storage_healthy",
            "1 when every storage health check passes",
            1 if report["ok"] else 0,
        ),
    ):
        family = GaugeMetricFamily(name, text)
        family.add_metric([], value)
        families.append(family)
    return iter([f for f in families if f.name not in skip])


class _Families(Collector):
    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self.families)


def prometheus_text(report: StorageReport) -> str:
    """The report's figures as Prometheus gauges (text exposition format)."""
    registry = CollectorRegistry()
    registry.register(_Families(list(storage_families(report.to_dict()))))
    return generate_latest(registry).decode()


def save_report(tree: DataTree, report: StorageReport) -> None:
    """Keep the report and its gauges under monitoring/ (atomically)."""
    atomic_write(tree.storage_report, json.dumps(report.to_dict(), indent=1))
    atomic_write(tree.storage_metrics, prometheus_text(report))


def latest_report(tree: DataTree) -> dict[str, Any] | None:
    """The last saved report, if any."""
    return read_json_object(tree.storage_report)
