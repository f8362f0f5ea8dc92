"""The seeds' own entry points: both names of the setup script and the v3.1 make targets."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.support import ROOT


@pytest.mark.parametrize("script", ["setup_persistent_data.sh", "setup_persistent_storage.sh"])
def test_each_setup_script_name_builds_the_tree(script: str, data_env: dict[str, str]) -> None:
    out = subprocess.run(
        [str(ROOT / script)], env=data_env, capture_output=True, text=True, timeout=300, check=False
    )
    assert out.returncode == 0, out.stderr[-2000:]
    root = Path(data_env["STOCKPRED_DATA_DIR"])
    assert (root / "config" / "persistent.env").is_file()
    assert (root / "stock_data" / "historical").is_dir()


@pytest.mark.parametrize(
    ("target", "runs"), [("dev-setup", "stockpred setup"), ("docker-run", "up")]
)
def test_the_v3_1_contributing_targets_exist(target: str, runs: str) -> None:
    out = subprocess.run(
        ["make", "--no-print-directory", "-n", target, "STAMP=/dev/null"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert runs in out
