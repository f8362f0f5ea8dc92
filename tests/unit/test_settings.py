"""Settings: defaults, durations, persistent.env precedence, clear errors for bad values."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from stockpred.settings import SettingsError, format_duration, load_settings, parse_duration


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
    s = load_settings({"STOCKPRED_API_TOKEN": "sekrit-token", "FLOWER_BASIC_AUTH": "a:sekrit"})
    assert "sekrit" not in repr(s)
