"""Cleanup honours every retention and protects what it must; the monitor's report and gauges."""

from __future__ import annotations

import os
import time
from datetime import timedelta
from pathlib import Path

import pytest

from stockpred.ops.provision import run_setup
from stockpred.paths import DataTree
from stockpred.settings import Settings, load_settings
from stockpred.storage.backup import create_backup
from stockpred.storage.cleanup import Retention, last_cleanup, run_cleanup
from stockpred.storage.monitor import build_report, prometheus_text, save_report

DAY = 86400


def aged(path: Path, days: float, content: bytes = b"x" * 100) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    when = time.time() - days * DAY
    os.utime(path, (when, when))
    return path


@pytest.fixture
def tree(settings: Settings) -> DataTree:
    return DataTree.from_settings(settings)


def layout(tree: DataTree) -> dict[str, Path]:
    """One file just past and one just within each retention, plus protected files."""
    return {
        "old_prediction_cache": aged(tree.predictions_cache / "p.json", 2),
        "new_prediction_cache": aged(tree.predictions_cache / "q.json", 0.5),
        "old_daily_cache": aged(tree.daily_cache / "NVDA.json", 3),
        "old_log": aged(tree.logs_application / "api.log.3", 31),
        "new_log": aged(tree.logs_application / "api.log.1", 29),
        "old_predictions": aged(tree.predictions_daily / "2026-01-01.jsonl", 8),
        "new_predictions": aged(tree.predictions_daily / "2026-11-20.jsonl", 6),
        "old_temp": aged(tree.ml_models / "NVDA" / ".model.keras.abc.tmp", 1),
        "fresh_temp": aged(tree.ml_models / "NVDA" / ".model.keras.def.tmp", 0),
        "old_model": aged(tree.ml_models / "NVDA" / "v1" / "model.keras", 400),
        "old_metadata": aged(tree.ml_models / "NVDA" / "v1" / "metadata.json", 400, b"{}"),
        "old_pointer": aged(tree.ml_models / "NVDA" / "current", 400, b"v1\n"),
        "old_scaler": aged(tree.scalers / "NVDA" / "v1" / "scaler.joblib", 400),
        "old_history": aged(tree.stock_historical / "NVDA" / "daily.parquet", 400),
        "old_config": aged(tree.config / "extra.conf", 400),
        "dead_yfinance": aged(tree.stock_cache / "yfinance" / "pid-999999999" / "tkr-tz.db", 0),
        "live_yfinance": aged(tree.stock_cache / "yfinance" / f"pid-{os.getpid()}" / "x.db", 0),
        # A backup killed a moment ago: under the storage lock nothing else can be writing it.
        "killed_backup": aged(tree.backups / ".stock_prediction_backup_x.tar.gz.ab.partial", 0),
        "old_backup": aged(tree.backups / "stock_prediction_backup_20200101_000000.tar.gz", 400),
    }


EXPIRED = {
    "old_prediction_cache",
    "old_daily_cache",
    "old_log",
    "old_predictions",
    "old_temp",
    "dead_yfinance",
    "killed_backup",
}


def test_cleanup_removes_exactly_what_each_retention_expires(tree: DataTree) -> None:
    files = layout(tree)
    backup = create_backup(tree).path
    os.utime(backup, (time.time() - 400 * DAY,) * 2)
    report = run_cleanup(tree, Retention(cache_days=1, log_days=30, prediction_days=7))
    for name, path in files.items():
        assert path.exists() == (name not in EXPIRED), name
    assert backup.exists(), "backups are never touched"
    assert report.bytes_freed == sum(r["bytes"] for r in report.removed) > 0
    assert {r["rule"] for r in report.removed} == {"cache", "logs", "predictions", "temp"}
    assert last_cleanup(tree)["bytes_freed"] == report.bytes_freed  # type: ignore[index]


def test_a_dry_run_lists_the_same_and_removes_nothing(tree: DataTree) -> None:
    files = layout(tree)
    report = run_cleanup(tree, Retention(), dry_run=True)
    assert all(path.exists() for path in files.values())
    assert len(report.removed) == len(EXPIRED)
    assert last_cleanup(tree) is None


def test_the_cache_scope_leaves_logs_and_predictions(tree: DataTree) -> None:
    files = layout(tree)
    run_cleanup(tree, Retention(), scope="caches")
    assert not files["old_prediction_cache"].exists()
    assert files["old_log"].exists() and files["old_predictions"].exists()


def test_retentions_are_configurable(tree: DataTree) -> None:
    files = layout(tree)
    run_cleanup(tree, Retention(cache_days=10, log_days=60, prediction_days=30))
    assert files["old_log"].exists() and files["old_predictions"].exists()
    assert files["old_prediction_cache"].exists()


def test_the_monitor_reports_usage_backups_and_health(tree: DataTree) -> None:
    layout(tree)
    report = build_report(tree, max_backup_age=timedelta(hours=26))
    checks = {c.name: c for c in report.checks}
    assert not checks["backup_fresh"].ok and "no backup" in checks["backup_fresh"].detail
    assert not report.ok
    create_backup(tree)
    report = build_report(tree, max_backup_age=timedelta(hours=26))
    assert report.ok, [c for c in report.checks if not c.ok]
    assert report.backup_count == 1 and report.newest_backup_age_seconds is not None
    assert report.directories["ml_models"]["files"] >= 2
    assert "Directory breakdown" in report.table() and "All systems healthy" in report.table()
    os.chmod(tree.logs, 0o777)
    assert not build_report(tree, max_backup_age=timedelta(hours=26)).ok


def test_the_monitor_measures_each_top_level_folder_where_the_settings_put_it(
    data_env: dict[str, str], tmp_path: Path
) -> None:
    moved = tmp_path / "elsewhere" / "backups"
    settings = load_settings({**data_env, "BACKUP_PATH": str(moved)})
    run_setup(settings)
    tree = DataTree.from_settings(settings)
    assert list(build_report(tree, max_backup_age=timedelta(hours=26)).directories) == [
        "ml_models",
        "ml_cache",
        "scalers",
        "stock_data",
        "logs",
        "config",
        "backups",
        "redis",
        "prometheus",
        "grafana",
        "monitoring",
        "frontend",
        "ledger",
    ]
    (moved / "some.tar.gz").write_bytes(b"x" * 1000)
    report = build_report(tree, max_backup_age=timedelta(hours=26))
    assert report.directories["backups"] == {"bytes": 1000, "files": 1}


def test_the_monitor_writes_its_report_and_prometheus_gauges(tree: DataTree) -> None:
    create_backup(tree)
    report = build_report(tree, max_backup_age=timedelta(hours=26))
    save_report(tree, report)
    text = (tree.monitoring / "storage.prom").read_text()
    assert text == prometheus_text(report)
    for name in (
        'stockpred_storage_bytes{directory="ml_models"}',
        "stockpred_storage_free_bytes",
        "stockpred_backup_age_seconds",
        "stockpred_backup_count 1.0",
        "stockpred_cleanup_last_freed_bytes",
        "stockpred_storage_healthy 1.0",
    ):
        assert name in text, name
    assert (tree.monitoring / "storage-report.json").is_file()
