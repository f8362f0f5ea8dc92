"""The `stockpred` command keeps its commands; `predict --local` fails clearly without a model."""

from __future__ import annotations

import subprocess
import sys

import click

from stockpred.ops.cli import main
from tests.support import BIN, ROOT


def run(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, env=env, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )


def test_every_command_and_group_is_wired_onto_main() -> None:
    assert set(main.commands) == {
        "setup",
        "settings",
        "storage",
        "exporter",
        "redis-server",
        "run",
        "ctl",
        "train",
        "predict",
        "models",
        "ledger",
        "backtest",
    }
    storage, models = main.commands["storage"], main.commands["models"]
    assert isinstance(storage, click.Group) and isinstance(models, click.Group)
    ledger = main.commands["ledger"]
    assert isinstance(ledger, click.Group)
    assert set(ledger.commands) == {"upgrade", "status", "score"}
    assert set(storage.commands) == {
        "test",
        "backup",
        "restore",
        "cleanup",
        "monitor",
        "verify",
        "list",
        "keygen",
    }
    assert set(models.commands) == {"list", "show", "rollback", "import"}


def test_python_dash_m_runs_the_same_command(data_env: dict[str, str]) -> None:
    module = run(
        [sys.executable, "-m", "stockpred.ops.cli", "--help"], {**data_env, "PWD": str(ROOT)}
    )
    script = run([str(BIN / "stockpred"), "--help"], data_env)
    assert module.returncode == script.returncode == 0
    assert module.stdout.splitlines()[1:] == script.stdout.splitlines()[1:]


def test_predict_local_without_a_model_is_a_clear_error(data_env: dict[str, str]) -> None:
    assert run([str(BIN / "stockpred"), "setup", "-q"], data_env).returncode == 0
    result = run([str(BIN / "stockpred"), "predict", "NVDA", "--local"], data_env)
    assert result.returncode == 1
    assert "no model for NVDA" in result.stderr and "Traceback" not in result.stderr


def test_restore_safeguards_are_not_lifted_through_the_queue(data_env: dict[str, str]) -> None:
    for flag in ("--allow-unencrypted", "--restore-secrets"):
        result = run([str(BIN / "stockpred"), "storage", "restore", "--queue", flag], data_env)
        assert result.returncode == 2, result.stderr
        assert "leave out --queue" in result.stderr
