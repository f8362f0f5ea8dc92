"""`stockpred/paths.py` is the one place that names the files of the data tree."""

from __future__ import annotations

import ast
from pathlib import Path

from stockpred.paths import DataTree
from stockpred.settings import load_settings
from tests.support import ROOT

TREE_FILES = {
    "ml_config.json",
    "persistent.env",
    "redis.conf",
    "redis.sock",
    "dump.rdb",
    "flower.db",
    "storage-report.json",
    "storage.prom",
    "cleanup-report.json",
    "stock-prediction.log",
    "api.log",
    "prediction.log",
    "error.log",
    ".storage.lock",
    "supervisord.conf",
    "supervisord.sock",
    "supervisord.pid",
    "supervisord.log",
    "forecasts.db",
}
# Templates shipped in the package carry the name of the file they become.
TEMPLATE_CALLS = {"_template"}


def spelled_names(path: Path) -> list[str]:
    """`file:line name` for each string literal in `path` that names a file of the tree."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    allowed: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) in TEMPLATE_CALLS:
            allowed.update(id(arg) for arg in node.args)
    return [
        f"{path.relative_to(ROOT)}:{node.lineno} {node.value}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and node.value in TREE_FILES
        and id(node) not in allowed
    ]


def test_no_module_but_paths_names_a_file_of_the_data_tree() -> None:
    sources = [ROOT / "celeryconfig.py"]
    for top in ("stockpred", "web", "tasks", "workers"):
        sources += sorted((ROOT / top).rglob("*.py"))
    found = [hit for path in sources if path.name != "paths.py" for hit in spelled_names(path)]
    assert found == []


def test_every_named_file_is_a_path_of_the_tree(tmp_path: Path) -> None:
    tree = DataTree.from_settings(load_settings({"STOCKPRED_DATA_DIR": str(tmp_path)}))
    named = {
        p.name
        for p in (
            tree.ml_config,
            tree.persistent_env,
            tree.redis_conf,
            tree.redis_socket,
            tree.redis_dump,
            tree.flower_db,
            tree.storage_report,
            tree.storage_metrics,
            tree.cleanup_report,
            tree.api_log,
            tree.prediction_log,
            tree.error_log,
            tree.storage_lock,
            tree.supervisord_conf,
            tree.supervisord_socket,
            tree.supervisord_pid,
            tree.supervisord_log,
            tree.ledger_db,
        )
    }
    assert named | {"stock-prediction.log"} == TREE_FILES
    for path in (tree.api_log, tree.error_log, tree.prediction_log):
        assert path.parent == tree.logs_application
