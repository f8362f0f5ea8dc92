"""Settings: defaults, durations, persistent.env precedence, clear errors for bad values."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from stockpred.paths import DataTree
from stockpred.settings import (
    Settings,
    SettingsError,
    format_duration,
    load_settings,
    parse_duration,
    variable_names,
)
from tests.support import BIN, ROOT


def write_env_file(root: Path, text: str) -> None:
    """Write the data root's persistent.env."""
    (root / "config").mkdir(parents=True, exist_ok=True)
    (root / "config" / "persistent.env").write_text(text)


def test_defaults_sit_under_the_data_root(tmp_path: Path) -> None:
    s = load_settings({"STOCKPRED_DATA_DIR": str(tmp_path)})
    assert s.data_dir == tmp_path
    assert s.ml_model_path == tmp_path / "ml_models"
    assert s.scalers_path == tmp_path / "scalers"
    assert s.ml_cache_path == tmp_path / "ml_cache"
    assert s.stock_data_cache_path == tmp_path / "stock_data" / "cache"
    assert s.stock_historical_path == tmp_path / "stock_data" / "historical"
    assert s.prediction_cache_path == tmp_path / "stock_data" / "predictions"
    assert s.log_file == tmp_path / "logs" / "application" / "stock-prediction.log"
    assert s.backup_path == tmp_path / "backups"
    assert s.config_path == tmp_path / "config"
    assert s.ml_prediction_ttl == timedelta(hours=1)
    assert s.stock_data_ttl == timedelta(minutes=30)
    assert s.cache_cleanup_interval == timedelta(hours=6)
    assert (s.buy_threshold, s.sell_threshold) == (1.01, 0.99)
    assert (s.web_port, s.flower_port) == (8080, 5555)


def test_default_data_root_is_persistent_data_in_the_working_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert load_settings({}).data_dir == tmp_path / "persistent_data"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("30m", timedelta(minutes=30)),
        ("1h", timedelta(hours=1)),
        ("6h", timedelta(hours=6)),
        ("24h", timedelta(hours=24)),
        ("90s", timedelta(seconds=90)),
        ("7d", timedelta(days=7)),
    ],
)
def test_durations_accept_the_seed_forms(raw: str, expected: timedelta) -> None:
    assert parse_duration("X", raw) == expected
    assert parse_duration("X", format_duration(expected)) == expected


@pytest.mark.parametrize("raw", ["1 hour", "abc", "0h", "-5m", "1.5h", "h"])
def test_a_bad_duration_names_the_variable_and_the_accepted_forms(raw: str) -> None:
    with pytest.raises(SettingsError) as err:
        load_settings({"ML_PREDICTION_TTL": raw})
    assert "ML_PREDICTION_TTL" in str(err.value)
    assert "30m, 1h, 6h, 24h" in str(err.value)


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("WEB_PORT", "http"),
        ("WEB_PORT", "70000"),
        ("REDIS_PORT", "0"),
        ("FLOWER_PORT", "-1"),
        ("STOCK_BUY_THRESHOLD", "high"),
        ("LOG_LEVEL", "loud"),
        ("REDIS_URL", "localhost:6379"),
        ("FLOWER_BASIC_AUTH", "nopassword"),
    ],
)
def test_bad_values_stop_with_a_message_naming_the_variable(name: str, raw: str) -> None:
    with pytest.raises(SettingsError, match=name):
        load_settings({name: raw})


def test_sell_threshold_must_be_below_buy() -> None:
    with pytest.raises(SettingsError, match="STOCK_SELL_THRESHOLD"):
        load_settings({"STOCK_BUY_THRESHOLD": "0.98", "STOCK_SELL_THRESHOLD": "0.99"})


def test_persistent_env_supplies_values_and_the_environment_wins(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.mkdir()
    (config / "persistent.env").write_text(
        "# comment\nexport STOCK_DATA_TTL=15m\nWEB_PORT='9090'\nFLOWER_PORT=\"6000\"\n\n"
    )
    s = load_settings({"STOCKPRED_DATA_DIR": str(tmp_path), "FLOWER_PORT": "7000"})
    assert s.stock_data_ttl == timedelta(minutes=15)
    assert s.web_port == 9090
    assert s.flower_port == 7000


def test_a_malformed_persistent_env_line_is_reported_with_its_place(tmp_path: Path) -> None:
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "persistent.env").write_text("WEB_PORT=1\nthis is not a setting\n")
    with pytest.raises(SettingsError, match=r"persistent.env:2"):
        load_settings({"STOCKPRED_DATA_DIR": str(tmp_path)})


def test_a_persistent_env_that_is_not_text_is_a_settings_error(tmp_path: Path) -> None:
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "persistent.env").write_bytes(b"WEB_PORT=1\n\xff\xfe\x00\n")
    with pytest.raises(SettingsError, match=r"persistent\.env: cannot be read as UTF-8"):
        load_settings({"STOCKPRED_DATA_DIR": str(tmp_path)})


def test_the_original_file_valued_path_variables_mean_their_folders(tmp_path: Path) -> None:
    s = load_settings(
        {
            "STOCKPRED_DATA_DIR": str(tmp_path),
            "ML_MODEL_PATH": str(tmp_path / "ml_models" / "nvda_lstm_model"),
            "ML_SCALER_PATH": str(tmp_path / "scalers" / "scaler.pkl"),
        }
    )
    assert s.ml_model_path == tmp_path / "ml_models"
    assert s.scalers_path == tmp_path / "scalers"


def test_scalers_path_wins_over_the_older_ml_scaler_path(tmp_path: Path) -> None:
    s = load_settings({"SCALERS_PATH": str(tmp_path / "a"), "ML_SCALER_PATH": str(tmp_path / "b")})
    assert s.scalers_path == tmp_path / "a"


def test_redis_defaults_to_a_private_unix_socket(tmp_path: Path) -> None:
    s = load_settings({"STOCKPRED_DATA_DIR": str(tmp_path)})
    assert s.manages_redis
    assert s.redis_client_url == f"unix://{tmp_path}/redis/redis.sock?db=0"
    assert s.celery_url == f"redis+socket://{tmp_path}/redis/redis.sock?virtual_host=0"


def test_redis_port_listens_on_loopback_and_redis_url_uses_that_server() -> None:
    by_port = load_settings({"REDIS_PORT": "6390"})
    assert by_port.manages_redis
    assert by_port.celery_url == by_port.redis_client_url == "redis://127.0.0.1:6390/0"
    external = load_settings({"REDIS_URL": "redis://cache.internal:6379/2", "REDIS_PORT": "6390"})
    assert not external.manages_redis
    assert external.celery_url == "redis://cache.internal:6379/2"


def test_secrets_are_not_in_the_repr() -> None:
    s = load_settings({"STOCKPRED_API_TOKEN": "sekrit-token" * 3, "FLOWER_BASIC_AUTH": "a:sekrit"})
    assert "sekrit" not in repr(s)


def test_the_environment_wins_over_persistent_env_whichever_name_each_uses(tmp_path: Path) -> None:
    write_env_file(tmp_path, f"SCALERS_PATH={tmp_path / 'from-file'}\n")
    s = load_settings(
        {"STOCKPRED_DATA_DIR": str(tmp_path), "ML_SCALER_PATH": str(tmp_path / "env")}
    )
    assert s.scalers_path == tmp_path / "env"


def test_blank_values_count_as_unset_in_either_source(tmp_path: Path) -> None:
    write_env_file(tmp_path, "WEB_PORT=9090\nFLOWER_PORT=\nSTOCK_DATA_TTL='  '\n")
    s = load_settings({"STOCKPRED_DATA_DIR": str(tmp_path), "WEB_PORT": "  ", "LOG_LEVEL": ""})
    assert (s.web_port, s.flower_port, s.log_level) == (9090, 5555, "INFO")
    assert s.stock_data_ttl == timedelta(minutes=30)


def test_values_are_stripped_and_normalised() -> None:
    s = load_settings({"LOG_LEVEL": " debug ", "STOCK_DATA_SOURCE": "CSV", "AUTO_TRAIN": "Yes"})
    assert (s.log_level, s.stock_data_source, s.auto_train) == ("DEBUG", "csv", True)


def test_persistent_env_cannot_move_the_data_root_it_lives_in(tmp_path: Path) -> None:
    write_env_file(tmp_path, f"STOCKPRED_DATA_DIR={tmp_path / 'elsewhere'}\nCONFIG_PATH=/nope\n")
    s = load_settings({"STOCKPRED_DATA_DIR": str(tmp_path)})
    assert (s.data_dir, s.config_path) == (tmp_path, tmp_path / "config")


def test_config_path_says_where_persistent_env_is(tmp_path: Path) -> None:
    write_env_file(tmp_path / "conf-root", "WEB_PORT=9191\n")
    s = load_settings({"CONFIG_PATH": str(tmp_path / "conf-root" / "config")})
    assert s.web_port == 9191


def test_a_bad_value_in_persistent_env_names_the_variable_and_the_file(tmp_path: Path) -> None:
    write_env_file(tmp_path, "WEB_PORT=http\n")
    with pytest.raises(SettingsError) as err:
        load_settings({"STOCKPRED_DATA_DIR": str(tmp_path)})
    message = str(err.value)
    assert "WEB_PORT='http' must be a whole number from 1 to 65535" in message
    assert str(tmp_path / "config" / "persistent.env") in message


def test_every_bad_value_is_reported_at_once_in_plain_words() -> None:
    with pytest.raises(SettingsError) as err:
        load_settings({"WEB_PORT": "http", "JOB_TTL": "soon", "AUTO_TRAIN": "maybe"})
    message = str(err.value)
    assert "WEB_PORT='http'" in message
    assert "JOB_TTL='soon' is not a duration" in message
    assert "AUTO_TRAIN='maybe' must be true or false" in message
    assert "pydantic" not in message.lower()
    assert "validation error" not in message.lower()


def test_a_bad_secret_is_named_but_never_echoed() -> None:
    with pytest.raises(SettingsError) as err:
        load_settings({"BACKUP_ENCRYPTION_KEY": "sekrit-not-a-key", "FLOWER_BASIC_AUTH": "sekrit"})
    assert "BACKUP_ENCRYPTION_KEY must be a Fernet key" in str(err.value)
    assert "FLOWER_BASIC_AUTH must be user:password" in str(err.value)
    assert "sekrit" not in str(err.value)


def test_the_original_model_file_names_mean_their_folders(tmp_path: Path) -> None:
    s = load_settings(
        {
            "ML_MODEL_PATH": str(tmp_path / "m" / "model.h5"),
            "SCALERS_PATH": str(tmp_path / "s" / "scaler.joblib"),
        }
    )
    assert (s.ml_model_path, s.scalers_path) == (tmp_path / "m", tmp_path / "s")


def test_moved_folders_and_the_log_file_follow_their_overrides(tmp_path: Path) -> None:
    s = load_settings({"STOCKPRED_DATA_DIR": str(tmp_path), "LOG_PATH": str(tmp_path / "L")})
    assert s.log_file == tmp_path / "L" / "application" / "stock-prediction.log"
    tree = DataTree.from_settings(s)
    assert (tree.logs, tree.root) == (tmp_path / "L", tmp_path)


def test_a_redis_url_in_kombu_spelling_is_kept_in_redis_py_spelling() -> None:
    s = load_settings({"REDIS_URL": "redis+socket:///run/r.sock?virtual_host=2"})
    assert s.redis_url == s.redis_client_url == "unix:///run/r.sock?db=2"
    assert s.celery_url == "redis+socket:///run/r.sock?virtual_host=2"
    assert not s.manages_redis


def test_settings_are_frozen_and_hashable() -> None:
    s = load_settings({})
    with pytest.raises(ValueError, match="frozen"):
        s.web_port = 1  # type: ignore[misc]
    assert hash(s) == hash(load_settings({}))


def test_masked_values_hide_every_secret_and_spell_durations() -> None:
    key = Fernet.generate_key().decode()
    s = load_settings(
        {
            "STOCKPRED_API_TOKEN": "t0k" * 11,
            "FLOWER_BASIC_AUTH": "a:b",
            "BACKUP_ENCRYPTION_KEY": key,
        },
    )
    values = s.masked_values()
    assert values["backup_encryption_key"] == values["api_token"] == "(set)"
    assert values["flower_basic_auth"] == "(set)"
    assert values["job_ttl"] == "7d"
    assert set(values) == set(Settings.model_fields)


def test_stockpred_settings_never_prints_the_backup_key(data_env: dict[str, str]) -> None:
    key = Fernet.generate_key().decode()
    out = subprocess.run(
        [str(BIN / "stockpred"), "settings", "--json"],
        env={**data_env, "BACKUP_ENCRYPTION_KEY": key},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert key not in out
    assert json.loads(out)["backup_encryption_key"] == "(set)"


def test_nothing_is_read_at_import(tmp_path: Path) -> None:
    write_env_file(tmp_path, "")
    (tmp_path / "config" / "persistent.env").write_bytes(b"\xff\xfe")
    code = "import stockpred.settings, stockpred.paths"
    env = {"STOCKPRED_DATA_DIR": str(tmp_path), "PATH": str(BIN)}
    subprocess.run([sys.executable, "-c", code], env=env, check=True, cwd=ROOT, timeout=60)


def test_every_variable_of_the_persistent_env_template_is_a_declared_setting() -> None:
    template = (ROOT / "stockpred" / "templates" / "persistent.env").read_text()
    named = set(re.findall(r"^#? ?([A-Z][A-Z0-9_]+)=", template, flags=re.MULTILINE))
    assert named, "the template names no variable"
    assert named <= set(variable_names())


def test_a_malformed_persistent_env_line_is_not_echoed(tmp_path: Path) -> None:
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "persistent.env").write_text("STOCKPRED-API-TOKEN=s3cr3t-token\n")
    with pytest.raises(SettingsError) as raised:
        load_settings({"STOCKPRED_DATA_DIR": str(tmp_path)})
    assert "persistent.env:1" in str(raised.value)
    assert "s3cr3t" not in str(raised.value)


def test_a_symlinked_model_file_names_its_own_folder(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (real / "model.keras").write_bytes(b"")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "current.h5").symlink_to(real / "model.keras")
    settings = load_settings(
        {
            "STOCKPRED_DATA_DIR": str(tmp_path),
            "ML_MODEL_PATH": str(tmp_path / "data" / "current.h5"),
        }
    )
    assert settings.ml_model_path == (tmp_path / "data").resolve()
