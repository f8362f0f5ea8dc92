"""Cleanup removes the `.refresh.lock` files earlier versions left, and nothing users rely on."""

from __future__ import annotations

from pathlib import Path

import pytest

from stockpred.ops.provision import run_setup
from stockpred.paths import DataTree
from stockpred.settings import Settings
from stockpred.storage.cleanup import Retention, run_cleanup


@pytest.fixture
def tree(settings: Settings) -> DataTree:
    """A set-up data tree on a temp root."""
    run_setup(settings)
    return DataTree.from_settings(settings)


def legacy(tree: DataTree) -> tuple[Path, Path, Path]:
    """A symbol folder holding only a lock file, and one with prices and operator CSV beside it."""
    lonely = tree.stock_historical / "ZZZZZZ"
    lonely.mkdir()
    (lonely / ".refresh.lock").write_bytes(b"")
    kept = tree.stock_historical / "ACME"
    kept.mkdir()
    (kept / ".refresh.lock").write_bytes(b"")
    (kept / "daily.parquet").write_bytes(b"prices")
    (kept / "prices.csv").write_text("date,open,high,low,close,volume\n")
    return lonely, kept, kept / ".refresh.lock"


def test_a_lock_file_alone_goes_with_its_folder_and_one_beside_data_goes_alone(
    tree: DataTree,
) -> None:
    lonely, kept, kept_lock = legacy(tree)
    report = run_cleanup(tree, Retention())
    removed = {(r["path"], r["rule"]) for r in report.removed if r["rule"] == "lock"}
    assert removed == {
        ("stock_data/historical/ZZZZZZ/.refresh.lock", "lock"),
        ("stock_data/historical/ZZZZZZ", "lock"),
        ("stock_data/historical/ACME/.refresh.lock", "lock"),
    }
    assert not lonely.exists() and not kept_lock.exists()
    assert sorted(p.name for p in kept.iterdir()) == ["daily.parquet", "prices.csv"]


def test_a_dry_run_lists_the_lock_files_and_removes_none(tree: DataTree) -> None:
    lonely, _, kept_lock = legacy(tree)
    report = run_cleanup(tree, Retention(), dry_run=True)
    assert len([r for r in report.removed if r["rule"] == "lock"]) == 3
    assert (lonely / ".refresh.lock").exists() and kept_lock.exists()
