"""Secrets are never printed: `stockpred settings`, URLs shown or logged, supervisord.conf."""

from __future__ import annotations

import json
import logging
import stat
import subprocess
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from stockpred.ops.procset import supervised_commands, write_supervisor_config
from stockpred.ops.provision import run_setup
from stockpred.settings import Settings, load_settings, masked_url
from tests.support import BIN, ROOT, free_port
from web import create_app

REDIS_PASSWORD = "redis-pass-0123456789abcdef"
URL_PASSWORD = "url-pass-fedcba9876543210"
API_TOKEN = "api-token-0123456789abcdef0123456789"
FLOWER_PASSWORD = "flower-pass-0123456789"


def secret_env(data_env: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    """An environment holding every kind of secret, and the secret values themselves."""
    key = Fernet.generate_key().decode()
    env = {
        **data_env,
        "REDIS_PORT": str(free_port()),
        "REDIS_PASSWORD": REDIS_PASSWORD,
        "BACKUP_ENCRYPTION_KEY": key,
        "STOCKPRED_API_TOKEN": API_TOKEN,
        "FLOWER_BASIC_AUTH": f"admin:{FLOWER_PASSWORD}",
    }
    return env, [REDIS_PASSWORD, key, API_TOKEN, FLOWER_PASSWORD]


def stockpred_settings(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [str(BIN / "stockpred"), "settings", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout + done.stderr


@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
def test_stockpred_settings_masks_every_secret(data_env: dict[str, str], as_json: bool) -> None:
    env, secrets = secret_env(data_env)
    out = stockpred_settings(env, *(["--json"] if as_json else []))
    for secret in secrets:
        assert secret not in out
    assert "redis://:***@127.0.0.1" in out  # the broker, password folded in and masked
    if as_json:
        values = json.loads(out)
        assert values["redis_password"] == values["backup_encryption_key"] == "(set)"


def test_stockpred_settings_masks_a_password_inside_redis_url(data_env: dict[str, str]) -> None:
    env = {**data_env, "REDIS_URL": f"redis://app:{URL_PASSWORD}@cache.internal:6379/2"}
    out = stockpred_settings(env)
    assert URL_PASSWORD not in out
    assert "redis://app:***@cache.internal:6379/2" in out


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:s3cret@h:6379/0", "redis://:***@h:6379/0"),
        ("rediss://user:s3cret@h/1", "rediss://user:***@h/1"),
        ("redis://s3cret@h/0", "redis://***@h/0"),
        ("redis://:p@ss%40s3cret@h/0", "redis://:***@h/0"),
        ("unix:///run/r.sock?db=0&password=s3cret", "unix:///run/r.sock?db=0&password=***"),
        ("redis://h:6379/0", "redis://h:6379/0"),
    ],
)
def test_masked_url_hides_every_spelling_of_a_password(url: str, shown: str) -> None:
    assert masked_url(url) == shown


def test_supervisord_conf_is_owner_only_and_holds_no_redis_password(
    data_env: dict[str, str],
) -> None:
    env, _ = secret_env(data_env)
    env.pop("REDIS_PASSWORD")
    run_setup(load_settings(env))  # generates REDIS_PASSWORD into persistent.env
    settings = load_settings(env)
    assert settings.redis_password
    commands = supervised_commands(settings, {"redis": "stockpred redis-server"})
    conf = write_supervisor_config(settings, commands, ROOT)
    assert stat.S_IMODE(conf.stat().st_mode) == 0o600
    assert stat.S_IMODE(conf.parent.stat().st_mode) == 0o700
    text = conf.read_text()
    assert "redis-server" in text and settings.redis_password not in text


def test_health_says_why_redis_is_down_without_the_password(
    settings: Settings, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    """A refused password: /api/v1/health and its log line name the problem, not the secret."""
    from tests.support import RedisServer

    server = RedisServer(tmp_path / "redis")
    server.start()
    wrong = settings.model_copy(
        update={"redis_url": f"redis://:{URL_PASSWORD}@127.0.0.1:{server.port}/0"}
    )
    app = create_app({"STOCKPRED_SETTINGS": wrong, "TESTING": True})
    try:
        with caplog.at_level(logging.WARNING):
            answer = app.test_client().get("/api/v1/health")
        assert answer.get_json()["services"]["redis"] == "down"
        assert URL_PASSWORD not in answer.get_data(as_text=True)
        assert caplog.records and not any(URL_PASSWORD in r.getMessage() for r in caplog.records)
    finally:
        app.extensions["stockpred"].close()
        server.stop()
