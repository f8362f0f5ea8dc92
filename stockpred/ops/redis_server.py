"""The command line of the redis-server that `make run` starts, and its pre-flight checks."""

from __future__ import annotations

import socket
from pathlib import Path

from stockpred.paths import DataTree
from stockpred.settings import Settings

# sun_path is 108 bytes on Linux, including the terminating NUL.
MAX_SOCKET_PATH = 107


class PreflightError(RuntimeError):
    """Something would stop a process from starting; the message says what to do."""


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """True if something already listens on host:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((host, port)) == 0


def socket_in_use(path: Path) -> bool:
    """True if a server answers on the Unix socket at `path`."""
    if not path.exists():
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True


def redis_server_argv(settings: Settings) -> list[str]:
    """argv for redis-server: the config file plus the listener chosen by the settings."""
    if not settings.manages_redis:
        raise PreflightError(
            "REDIS_URL is set, so stockpred uses that server and starts none of its own"
        )
    tree = DataTree.from_settings(settings)
    if not tree.redis_conf.is_file():
        raise PreflightError(f"{tree.redis_conf} is missing: run `stockpred setup` first")
    argv = ["redis-server", str(tree.redis_conf)]
    if settings.redis_port is not None:
        return [*argv, "--port", str(settings.redis_port), "--bind", "127.0.0.1"]
    sock = tree.redis_socket
    if len(str(sock)) > MAX_SOCKET_PATH:
        raise PreflightError(
            f"the Redis socket path {sock} is longer than {MAX_SOCKET_PATH} bytes; "
            "use a shorter STOCKPRED_DATA_DIR or set REDIS_PORT"
        )
    return [*argv, "--port", "0", "--unixsocket", str(sock), "--unixsocketperm", "700"]


def check_redis_listener(settings: Settings) -> None:
    """Refuse to start when the chosen port or socket is already served."""
    if not settings.manages_redis:
        return
    if settings.redis_port is not None:
        if port_in_use(settings.redis_port):
            raise PreflightError(
                f"REDIS_PORT={settings.redis_port} is already in use on 127.0.0.1; choose a free "
                "port, unset REDIS_PORT to use a private Unix socket, or set REDIS_URL to use "
                "that server"
            )
    elif socket_in_use(sock := DataTree.from_settings(settings).redis_socket):
        raise PreflightError(
            f"a Redis already answers on {sock}: another `make run` is using this data folder"
        )
