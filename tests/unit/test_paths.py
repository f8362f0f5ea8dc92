"""The data tree: one place names every folder and file under the data root."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from stockpred.paths import DataTree, default_log_file, default_tree
from stockpred.settings import load_settings
from tests.support import ROOT


def test_the_settings_defaults_are_the_default_tree(tmp_path: Path) -> None:
    settings = load_settings({"STOCKPRED_DATA_DIR": str(tmp_path)})
    assert DataTree.from_settings(settings) == default_tree(tmp_path)
    assert settings.log_file == default_log_file(tmp_path / "logs")


def test_a_moved_folder_moves_only_itself(tmp_path: Path) -> None:
    moved = tmp_path / "elsewhere"
    tree = DataTree.from_settings(
        load_settings({"STOCKPRED_DATA_DIR": str(tmp_path), "BACKUP_PATH": str(moved)})
    )
    assert tree.backups == moved
    assert tree.config == tmp_path / "config"


def test_the_files_the_process_set_keeps_are_where_the_readme_says(tmp_path: Path) -> None:
    tree = default_tree(tmp_path)
    relative = {
        "redis_socket": "redis/redis.sock",
        "redis_conf": "config/redis.conf",
        "persistent_env": "config/persistent.env",
        "ml_config": "ml_config.json",
        "flower_db": "monitoring/flower.db",
        "web_metrics": "monitoring/metrics/web",
        "worker_metrics": "monitoring/metrics/workers",
        "logs_application": "logs/application",
    }
    for name, path in relative.items():
        assert getattr(tree, name) == tmp_path / path, name
    assert tree.legacy_models == tmp_path.parent / "models"


def test_top_level_lists_every_folder_directly_under_the_root(tmp_path: Path) -> None:
    tree = default_tree(tmp_path)
    direct = {path for path in tree.directories().values() if path.parent == tmp_path}
    assert set(tree.top_level.values()) == direct
    assert all(tree.top_level[path.name] == path for path in direct)


def test_paths_needs_settings_only_for_type_checking() -> None:
    code = "import sys, stockpred.paths; print('stockpred.settings' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize(
    ("relative", "category"),
    [
        ("ml_models/NVDA/current", "models"),
        ("scalers/NVDA/v1/scaler.joblib", "models"),
        ("config/persistent.env", "config"),
        ("ml_config.json", "config"),
        ("redis/dump.rdb", "redis"),
        ("monitoring/flower.db", "monitoring"),
        ("ledger/forecasts.db", "ledger"),
        ("ledger/forecasts.db-wal", None),
        ("ledger/forecasts.db-shm", None),
        ("ledger/other.db", None),
        ("stock_data/historical/NVDA/daily.parquet", "stock_data"),
        ("redis/appendonly.aof", None),
        ("supervisor/supervisord.conf", None),
        ("backups/stock_prediction_backup_20990101_000000.json", None),
        ("stock_data/cache/yfinance/pid-1/cache.db", None),
        ("ml_models/NVDA/.current.x1.tmp", None),
        ("ml_models/.staging-1/model.keras", None),
        ("../escape.txt", None),
        ("ml_models/../config/persistent.env", None),
        ("/etc/passwd", None),
        ("ml_models//NVDA", None),
        ("", None),
    ],
)
def test_the_path_to_category_map_names_what_a_backup_may_hold(
    tmp_path: Path, relative: str, category: str | None
) -> None:
    assert default_tree(tmp_path / "persistent_data").backup_category(relative) == category
