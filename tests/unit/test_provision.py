"""`stockpred setup`: the tree, safe modes, templates written once, secrets, migration."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

from stockpred.ops.provision import run_setup
from stockpred.paths import DataTree
from stockpred.settings import load_settings, read_env_file
from tests.support import BIN

SEED_TREE = [
    "ml_models",
    "ml_cache/predictions_cache",
    "ml_cache/model_cache",
    "scalers",
    "stock_data/historical",
    "stock_data/cache/daily_cache",
    "stock_data/cache/intraday_cache",
    "stock_data/predictions/daily",
    "stock_data/predictions/analysis",
    "logs/application",
    "logs/prometheus",
    "logs/grafana",
    "config",
    "backups",
    "redis",
    "prometheus",
    "grafana",
    "monitoring",
    "frontend/logs",
    "frontend/cache",
]


def snapshot(root: Path) -> dict[str, tuple[int, int, bytes]]:
    """Every path below root with its mode, mtime and (for files) content."""
    out = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        content = path.read_bytes() if path.is_file() else b""
        out[str(path.relative_to(root))] = (stat.S_IMODE(st.st_mode), st.st_mtime_ns, content)
    return out


def test_setup_creates_the_union_of_both_seed_trees_with_755_and_backups_700(
    data_env: dict[str, str],
) -> None:
    settings = load_settings(data_env)
    run_setup(settings)
    for relative in SEED_TREE:
        path = settings.data_dir / relative
        assert path.is_dir(), relative
        expected = 0o700 if relative == "backups" else 0o755
        assert stat.S_IMODE(path.stat().st_mode) == expected, relative
    tree = DataTree.from_settings(settings)
    assert stat.S_IMODE(tree.redis_conf.stat().st_mode) == 0o644
    assert stat.S_IMODE(tree.persistent_env.stat().st_mode) == 0o600
    assert tree.ml_config == settings.data_dir / "ml_config.json"
    assert tree.ml_config.is_file()


def test_redis_conf_template_is_durable_and_never_evicts(
    data_env: dict[str, str],
) -> None:
    settings = load_settings(data_env)
    run_setup(settings)
    lines = DataTree.from_settings(settings).redis_conf.read_text().splitlines()
    assert "appendonly yes" in lines
    assert "appendfsync everysec" in lines
    assert f"dir {settings.data_dir / 'redis'}" in lines
    assert "maxmemory-policy noeviction" in lines
    assert any(line.startswith("maxmemory ") for line in lines)
    assert not any("allkeys" in line for line in lines if not line.startswith("#"))


def test_setup_twice_changes_nothing_and_keeps_an_edited_redis_conf(
    data_env: dict[str, str],
) -> None:
    settings = load_settings(data_env)
    run_setup(settings)
    redis_conf = DataTree.from_settings(settings).redis_conf
    redis_conf.write_text(redis_conf.read_text().replace("maxmemory 512mb", "maxmemory 2gb"))
    before = snapshot(settings.data_dir)
    report = run_setup(load_settings(data_env))
    assert not report.changed
    assert snapshot(settings.data_dir) == before
    assert "maxmemory 2gb" in redis_conf.read_text()


def test_setup_generates_secrets_once_and_respects_given_ones(data_env: dict[str, str]) -> None:
    settings = load_settings(data_env)
    first = run_setup(settings)
    assert set(first.generated_secrets) == {
        "STOCKPRED_API_TOKEN",
        "FLOWER_BASIC_AUTH",
        "REDIS_PASSWORD",
    }
    values = read_env_file(DataTree.from_settings(settings).persistent_env)
    assert len(values["STOCKPRED_API_TOKEN"]) >= 32
    assert len(values["REDIS_PASSWORD"]) >= 32
    reloaded = load_settings(data_env)
    assert reloaded.api_token == values["STOCKPRED_API_TOKEN"]
    assert reloaded.flower_basic_auth == values["FLOWER_BASIC_AUTH"]
    assert reloaded.redis_password == values["REDIS_PASSWORD"]
    assert not run_setup(reloaded).generated_secrets


def test_setup_generates_no_redis_password_for_a_redis_url_server(
    data_env: dict[str, str],
) -> None:
    """A REDIS_URL server has its own credentials; a password it does not know is refused."""
    settings = load_settings({**data_env, "REDIS_URL": "redis://cache.internal:6379/0"})
    assert "REDIS_PASSWORD" not in run_setup(settings).generated_secrets


def test_setup_tightens_a_world_writable_folder(data_env: dict[str, str]) -> None:
    settings = load_settings(data_env)
    run_setup(settings)
    logs = settings.log_path
    os.chmod(logs, 0o777)
    report = run_setup(settings)
    assert report.tightened_dirs == [logs]
    assert stat.S_IMODE(logs.stat().st_mode) == 0o755


def test_setup_migrates_the_old_models_folder_without_overwriting(
    data_env: dict[str, str], tmp_path: Path
) -> None:
    legacy = tmp_path / "models"
    legacy.mkdir()
    (legacy / "nvda_lstm_model.h5").write_bytes(b"h5-weights")
    (legacy / "nvda_scaler.pkl").write_bytes(b"pickle")
    (legacy / "notes.txt").write_text("not a model")
    settings = load_settings(data_env)
    report = run_setup(settings)  # default legacy folder: models/ beside the data root
    tree = DataTree.from_settings(settings)
    assert (tree.ml_models / "nvda_lstm_model.h5").read_bytes() == b"h5-weights"
    assert (tree.scalers / "nvda_scaler.pkl").read_bytes() == b"pickle"
    assert not (tree.ml_models / "notes.txt").exists()
    assert len(report.migrated_files) == 2
    (legacy / "nvda_lstm_model.h5").write_bytes(b"other weights")
    again = run_setup(settings)
    assert not again.migrated_files
    assert (tree.ml_models / "nvda_lstm_model.h5").read_bytes() == b"h5-weights"
    assert "other content" in again.skipped_migrations[0]


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "stockpred"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_storage_test_fails_on_a_missing_folder_then_passes_after_setup(
    data_env: dict[str, str],
) -> None:
    missing = run_cli("storage", "test", env=data_env)
    assert missing.returncode == 1
    assert "missing" in missing.stdout
    assert "make storage-setup" in missing.stderr
    setup = run_cli("setup", env=data_env)
    assert setup.returncode == 0, setup.stderr
    assert "generated STOCKPRED_API_TOKEN" in setup.stdout
    passed = run_cli("storage", "test", env=data_env)
    assert passed.returncode == 0, passed.stdout
    assert "Storage usage:" in passed.stdout
    second = run_cli("setup", env=data_env)
    assert "nothing to do" in second.stdout


def test_storage_test_reports_an_unwritable_or_777_folder(data_env: dict[str, str]) -> None:
    assert run_cli("setup", env=data_env).returncode == 0
    backups = Path(data_env["STOCKPRED_DATA_DIR"]) / "backups"
    os.chmod(backups, 0o777)
    result = run_cli("storage", "test", "--json", env=data_env)
    assert result.returncode == 1
    assert "world-writable" in result.stdout


def test_a_bad_setting_stops_the_cli_with_a_clear_message(data_env: dict[str, str]) -> None:
    result = run_cli("setup", env={**data_env, "STOCK_DATA_TTL": "soon"})
    assert result.returncode != 0
    assert "STOCK_DATA_TTL" in result.stderr
    assert "Traceback" not in result.stderr


def test_run_refuses_a_taken_redis_port_before_starting_anything(
    data_env: dict[str, str],
) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli("run", env={**data_env, "REDIS_PORT": str(port)})
    assert result.returncode == 1
    assert f"REDIS_PORT={port} is already in use" in result.stderr
    assert "started (pid" not in result.stdout
