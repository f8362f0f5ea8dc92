"""A socket REDIS_URL, in either spelling, reaches a real Redis from redis-py and from kombu."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from celery import Celery

from stockpred.infra.redis_client import connect
from stockpred.settings import load_settings
from tests.support import wait_for


@pytest.mark.parametrize("given", ["unix://{sock}?db=1", "redis+socket://{sock}?virtual_host=1"])
def test_an_external_socket_url_reaches_redis_from_redis_py_and_celery(
    tmp_path: Path, given: str
) -> None:
    """Both spellings of a socket REDIS_URL work for the clients and for kombu, on a real server."""
    sock = tmp_path / "r.sock"
    server = subprocess.Popen(
        [
            "redis-server",
            "--port",
            "0",
            "--unixsocket",
            str(sock),
            "--save",
            "",
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        s = load_settings({"REDIS_URL": given.format(sock=sock)})
        assert s.redis_client_url == f"unix://{sock}?db=1"
        assert s.celery_url == f"redis+socket://{sock}?virtual_host=1"
        client = connect(s)
        wait_for(client.ping, 10, what="redis on its socket")
        client.set("probe", "from redis-py")
        app = Celery("probe", broker=s.celery_url)
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1)
            channel = conn.default_channel
            assert channel.client.get("probe") == b"from redis-py"  # same server, same db
        client.close()
    finally:
        server.terminate()
        server.wait(10)
