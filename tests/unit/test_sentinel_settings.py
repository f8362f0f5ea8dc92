"""Naming a Sentinel deployment: REDIS_URL=sentinel://…, its master and the sentinels' password."""

from __future__ import annotations

import json
import subprocess

import pytest

import celeryconfig
from stockpred.settings import SentinelTarget, SettingsError, load_settings, masked_url
from tests.support import BIN

SENTINELS = "sentinel://s1:26379;sentinel://s2:26380;sentinel://s3"


def test_a_sentinel_list_names_its_nodes_master_and_database_and_starts_no_redis() -> None:
    s = load_settings({"REDIS_URL": SENTINELS + "/2", "REDIS_SENTINEL_MASTER": "stock-main"})
    assert s.redis_sentinel == SentinelTarget(
        nodes=(("s1", 26379), ("s2", 26380), ("s3", 26379)), master="stock-main", db=2
    )
    # Kept in kombu's spelling, each entry with the database (kombu reads the first).
    assert s.redis_url == "sentinel://s1:26379/2;sentinel://s2:26380/2;sentinel://s3:26379/2"
    assert not s.manages_redis
    assert load_settings({"REDIS_URL": SENTINELS}).redis_sentinel.master == "mymaster"  # type: ignore[union-attr]
    assert load_settings({"REDIS_URL": "redis://r:6379/0"}).redis_sentinel is None


def test_the_data_nodes_password_rides_in_every_entry_of_the_broker_url() -> None:
    s = load_settings({"REDIS_URL": SENTINELS, "REDIS_PASSWORD": "p@ss;word"})
    assert s.celery_url == s.redis_client_url
    entries = s.celery_url.split(";")
    assert len(entries) == 3
    assert all(entry.startswith("sentinel://:p%40ss%3Bword@s") for entry in entries)
    assert masked_url(s.celery_url) == (
        "sentinel://:***@s1:26379/0;sentinel://:***@s2:26380/0;sentinel://:***@s3:26379/0"
    )


@pytest.mark.parametrize(
    "raw",
    [
        "sentinel://",  # no host
        "sentinel://s1:26379;redis://r:6379",  # a data node among the sentinels
        "sentinel://s1:26379/1;sentinel://s2:26379/2",  # two databases
        "sentinel://:secret@s1:26379",  # credentials: REDIS_PASSWORD / REDIS_SENTINEL_PASSWORD
        "sentinel://s1:26379?master_name=x",  # options belong in settings
        "sentinel://s1:port",
        "sentinel://s1:26379/db",
    ],
)
def test_a_malformed_sentinel_list_is_refused_naming_the_variable_without_secrets(raw: str) -> None:
    with pytest.raises(SettingsError, match=r"REDIS_URL=.* must list sentinels") as err:
        load_settings({"REDIS_URL": raw})
    assert "secret" not in str(err.value)


def test_a_master_name_must_be_a_plain_name() -> None:
    with pytest.raises(SettingsError, match="REDIS_SENTINEL_MASTER"):
        load_settings({"REDIS_URL": SENTINELS, "REDIS_SENTINEL_MASTER": "my master"})


def test_the_sentinels_password_is_a_masked_secret(data_env: dict[str, str]) -> None:
    env = {**data_env, "REDIS_URL": SENTINELS, "REDIS_PASSWORD": "data-secret"}
    env["REDIS_SENTINEL_PASSWORD"] = "sentinel-secret"
    s = load_settings(env)
    assert "sentinel-secret" not in repr(s)
    assert s.masked_values()["redis_sentinel_password"] == "(set)"
    out = subprocess.run(
        [str(BIN / "stockpred"), "settings", "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert "sentinel-secret" not in out and "data-secret" not in out
    shown = json.loads(out)
    assert shown["broker"].startswith("sentinel://:***@s1:26379/0;sentinel://:***@s2")
    assert shown["redis_sentinel_master"] == "mymaster"


def test_celery_and_redbeat_ask_the_sentinels_for_the_master_keeping_the_queue_options() -> None:
    s = load_settings(
        {
            "REDIS_URL": SENTINELS,
            "REDIS_PASSWORD": "data-secret",
            "REDIS_SENTINEL_MASTER": "stock-main",
            "REDIS_SENTINEL_PASSWORD": "sentinel-secret",
        }
    )
    derived = celeryconfig.from_settings(s)
    assert derived["broker_url"] == derived["result_backend"] == s.celery_url
    broker = derived["broker_transport_options"]
    backend = derived["result_backend_transport_options"]
    for options in (broker, backend):
        assert options["master_name"] == "stock-main"
        assert options["sentinel_kwargs"]["password"] == "sentinel-secret"
        assert options["visibility_timeout"] == broker["visibility_timeout"]
    assert broker["priority_steps"] == list(
        celeryconfig.PRIORITY_TRANSPORT_OPTIONS["priority_steps"]
    )
    assert derived["redis_socket_keepalive"] is True
    assert derived["redbeat_redis_url"] == "redis-sentinel://s1:26379/0"
    beat = derived["redbeat_redis_options"]
    assert beat["sentinels"] == [["s1", 26379], ["s2", 26380], ["s3", 26379]]
    assert (beat["service_name"], beat["password"], beat["db"]) == ("stock-main", "data-secret", 0)
    assert beat["sentinel_kwargs"]["password"] == "sentinel-secret"
    assert beat["retry_period"] == celeryconfig.REDBEAT_RETRY_SECONDS


def test_one_server_gets_no_sentinel_options() -> None:
    derived = celeryconfig.from_settings(load_settings({"REDIS_URL": "redis://r:6379/0"}))
    assert "master_name" not in derived["broker_transport_options"]
    assert "master_name" not in derived["result_backend_transport_options"]
    assert "sentinels" not in derived["redbeat_redis_options"]
