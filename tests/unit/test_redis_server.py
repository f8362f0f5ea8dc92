"""The redis-server command line and the pre-flight checks of the process set."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from stockpred.ops.procset import preflight
from stockpred.ops.redis_server import PreflightError, check_redis_listener, redis_server_argv
from stockpred.paths import DataTree
from stockpred.settings import Settings


def test_by_default_redis_listens_only_on_a_private_socket(settings: Settings) -> None:
    tree = DataTree.from_settings(settings)
    argv = redis_server_argv(settings)
    assert argv[:2] == ["redis-server", str(tree.redis_conf)]
    assert argv[argv.index("--port") + 1] == "0"
    assert argv[argv.index("--unixsocket") + 1] == str(tree.redis_socket)
    assert argv[argv.index("--unixsocketperm") + 1] == "700"


def test_with_redis_port_it_listens_on_loopback(settings: Settings) -> None:
    argv = redis_server_argv(settings.model_copy(update={"redis_port": 6391}))
    assert argv[argv.index("--port") + 1] == "6391"
    assert argv[argv.index("--bind") + 1] == "127.0.0.1"
    assert "--unixsocket" not in argv


def test_with_redis_url_it_starts_none(settings: Settings) -> None:
    with pytest.raises(PreflightError, match="REDIS_URL"):
        redis_server_argv(settings.model_copy(update={"redis_url": "redis://elsewhere:6379/0"}))


def test_a_socket_path_too_long_for_unix_is_refused(settings: Settings) -> None:
    deep = settings.model_copy(update={"data_dir": Path("/tmp/" + "d" * 120)})
    with pytest.raises(PreflightError, match="longer than"):
        redis_server_argv(deep)


def test_a_taken_port_stops_start_up_with_a_clear_message(settings: Settings) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(PreflightError, match=f"REDIS_PORT={port} is already in use"):
            check_redis_listener(settings.model_copy(update={"redis_port": port}))
        with pytest.raises(PreflightError, match=f"WEB_PORT={port}"):
            preflight(settings.model_copy(update={"web_port": port, "flower_port": 1}))


def test_a_live_socket_means_another_run_owns_this_data_folder(settings: Settings) -> None:
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(DataTree.from_settings(settings).redis_socket))
        server.listen()
        with pytest.raises(PreflightError, match="another `make run`"):
            check_redis_listener(settings)
