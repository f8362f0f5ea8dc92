"""The command line of the redis-server that `make run` starts, and its pre-flight checks."""

from __future__ import annotations

import hashlib
import socket
from pathlib import Path

from stockpred.paths import DataTree
from stockpred.settings import Settings

# sun_path is 108 bytes on Linux, including the terminating NUL.
MAX_SOCKET_PATH = 107
# What the default user may run, after its password: everything but Redis's @dangerous
# category (CONFIG, DEBUG, MODULE, REPLICAOF, SHUTDOWN, KEYS, FLUSHALL, ACL, MONITOR, ...), less
# the few of it the project reads: INFO (memory and persistence facts), and LASTSAVE and
# BGSAVE (the backup's consistent snapshot). Celery, kombu, redis-py and the rate limiter need
# none of the rest. docker-compose-persistent.yml repeats this list (a test keeps them equal).
COMMAND_RULES = ("~*", "&*", "+@all", "-@dangerous", "+info", "+lastsave", "+bgsave")

# With Sentinel (REDIS_URL=sentinel://…), each data node also has two users whose password is
# REDIS_SENTINEL_PASSWORD: the sentinels' (what Redis's Sentinel documentation lists as their
# minimum: INFO, ROLE, REPLICAOF and CONFIG REWRITE on failover, their hello channel, ...) and
# the replicas' (replication only). The default user keeps COMMAND_RULES. The compose file's
# sentinel profile repeats these lists (a test keeps them equal).
SENTINEL_USER = "stockpred-sentinel"
REPLICA_USER = "stockpred-replica"
SENTINEL_USER_RULES = (
    "&*",
    "+multi",
    "+exec",
    "+slaveof",
    "+replicaof",
    "+ping",
    "+subscribe",
    "+publish",
    "+config|rewrite",
    "+role",
    "+info",
    "+client|setname",
    "+client|kill",
    "+script|kill",
)
REPLICA_USER_RULES = ("+psync", "+replconf", "+ping")


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
        if not settings.redis_password:
            raise PreflightError(
                "REDIS_PORT is set but REDIS_PASSWORD is not: run `stockpred setup` (generates "
                "one into config/persistent.env) or set it, so no client reaches Redis unasked"
            )
        listener = ["--port", str(settings.redis_port), "--bind", "127.0.0.1"]
        return [*argv, *listener, *default_user_acl(settings.redis_password)]
    sock = tree.redis_socket
    if len(str(sock)) > MAX_SOCKET_PATH:
        raise PreflightError(
            f"the Redis socket path {sock} is longer than {MAX_SOCKET_PATH} bytes; "
            "use a shorter STOCKPRED_DATA_DIR or set REDIS_PORT"
        )
    # Only this user can open the socket (mode 700): no password, the same command rules.
    listener = ["--port", "0", "--unixsocket", str(sock), "--unixsocketperm", "700"]
    return [*argv, *listener, *default_user_acl(None)]


def default_user_acl(password: str | None) -> list[str]:
    """redis-server arguments defining the default user: its password and COMMAND_RULES.

    The password is given as its SHA-256, so neither the command line (visible in `ps` until
    Redis renames its process) nor supervisord.conf holds it; None means no password.
    """
    secret = "nopass" if password is None else "#" + hashlib.sha256(password.encode()).hexdigest()
    return ["--user", "default", "reset", "on", secret, *COMMAND_RULES]


def sentinel_users_acl(sentinel_password: str) -> list[str]:
    """redis-server arguments defining the sentinels' and the replicas' users on a data node."""
    secret = "#" + hashlib.sha256(sentinel_password.encode()).hexdigest()
    return [
        *("--user", SENTINEL_USER, "reset", "on", secret, *SENTINEL_USER_RULES),
        *("--user", REPLICA_USER, "reset", "on", secret, *REPLICA_USER_RULES),
    ]


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
