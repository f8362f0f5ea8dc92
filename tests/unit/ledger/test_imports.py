"""Importing the ledger connects to nothing and creates nothing; it stays out of web and Celery."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support import ROOT

MODULES = (
    "entries",
    "errors",
    "schema",
    "database",
    "migrate",
    "store",
    "scoring",
    "service",
)


def test_importing_every_ledger_module_touches_no_database(tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    imports = "; ".join(f"import stockpred.ledger.{name}" for name in MODULES)
    code = (
        f"import sys; {imports}; "
        "assert not {'web', 'tasks', 'workers', 'flask', 'celery'} & set(sys.modules)"
    )
    env = {
        **os.environ,
        "STOCKPRED_DATA_DIR": str(missing),
        # A server that does not exist: any connection at import would fail the import.
        "DATABASE_URL": "postgresql://nobody:pw@127.0.0.1:9/none",
    }
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert not missing.exists()
