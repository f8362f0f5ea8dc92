"""supervisord's configuration for the process set, generated from the Procfile's entries.

What belongs here: the restart and stop policy of every process and where supervisord keeps its
own state. What does not: which entries run (`stockpred.ops.procset`) or the commands themselves
(the Procfile, the one list of commands).
"""

from __future__ import annotations

import configparser
import io
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from stockpred.paths import DataTree

REDIS_PROGRAM = "redis"
APP_GROUP = "app"

# A process must stay up this long to count as started. A crash sooner is a failed start and
# is retried after a delay that grows by a second per attempt (supervisord's backoff); a crash
# later is restarted at once, so no crash loop turns faster than one start per 10 s.
START_SECONDS = 10
# Failed starts in a row before supervisord gives up (FATAL). With the growing delay, 100
# attempts keep a process retried for about 84 minutes (the last ones 100 s apart): long
# enough to outlast a Redis or disk outage, short of hammering a broken install forever.
START_RETRIES = 100
# Seconds between the stop signal and SIGKILL of the process group. gunicorn finishes its
# requests within its graceful_timeout (20 s); Redis writes its final snapshot; a worker's
# pool children receive the signal too (the group), so a warm shutdown ends quickly and an
# acks_late task goes back to its queue.
STOP_WAIT_SECONDS = {"redis": 30, "web": 25}
DEFAULT_STOP_WAIT_SECONDS = 15


@dataclass(frozen=True)
class SupervisorFiles:
    """Where supervisord keeps its state for one data tree (per host, not backed up)."""

    folder: Path
    conf: Path
    socket: Path
    pid: Path
    log: Path

    @classmethod
    def of(cls, tree: DataTree) -> SupervisorFiles:
        """The files under the tree's supervisor folder."""
        return cls(
            tree.supervisor,
            tree.supervisord_conf,
            tree.supervisord_socket,
            tree.supervisord_pid,
            tree.supervisord_log,
        )

    @property
    def server_url(self) -> str:
        return f"unix://{self.socket}"


@dataclass(frozen=True)
class LogLimits:
    """Rotation of supervisord's own log (the process set's logs go to the terminal)."""

    max_bytes: int
    backups: int


def _escape(value: str) -> str:
    # supervisord expands %(name)s in its values: a literal % (celery's %h) is written %%.
    return value.replace("%", "%%")


def _program(command: str, directory: Path, name: str, priority: int) -> dict[str, str]:
    return {
        "command": _escape(command),
        "directory": _escape(str(directory)),
        "priority": str(priority),
        "autostart": "true",
        "autorestart": "true",
        "startsecs": str(START_SECONDS),
        "startretries": str(START_RETRIES),
        "stopsignal": "TERM",
        "stopwaitsecs": str(STOP_WAIT_SECONDS.get(name, DEFAULT_STOP_WAIT_SECONDS)),
        # The signal goes to the whole process group: Celery's pool children and gunicorn's
        # workers stop with their parent, and SIGKILL after stopwaitsecs reaches them too.
        "stopasgroup": "true",
        "killasgroup": "true",
        # Every process's output goes to supervisord's stdout, the terminal of `make run`.
        "stdout_logfile": "/dev/stdout",
        "stdout_logfile_maxbytes": "0",
        "redirect_stderr": "true",
    }


def render(
    entries: Mapping[str, str],
    *,
    files: SupervisorFiles,
    directory: Path,
    log_limits: LogLimits,
    password: str,
    user: str | None = None,
) -> str:
    """The supervisord.conf text: one program per entry, Redis first and stopped last."""
    config = configparser.ConfigParser(interpolation=None)
    config.optionxform = str  # type: ignore[assignment,method-assign]
    config["supervisord"] = {
        "nodaemon": "true",
        "identifier": "stockpred",
        "directory": _escape(str(directory)),
        "logfile": _escape(str(files.log)),
        "logfile_maxbytes": str(log_limits.max_bytes),
        "logfile_backups": str(log_limits.backups),
        "pidfile": _escape(str(files.pid)),
        "childlogdir": _escape(str(files.folder)),
    }
    if user is not None:
        config["supervisord"]["user"] = user  # says that running as root is intended
    config["unix_http_server"] = {
        "file": _escape(str(files.socket)),
        "chmod": "0700",
        "username": "stockpred",
        "password": _escape(password),
    }
    config["rpcinterface:supervisor"] = {
        "supervisor.rpcinterface_factory": "supervisor.rpcinterface:make_main_rpcinterface"
    }
    config["supervisorctl"] = {
        "serverurl": _escape(files.server_url),
        "username": "stockpred",
        "password": _escape(password),
    }
    apps = [name for name in entries if name != REDIS_PROGRAM]
    for name, command in entries.items():
        # Lower priorities start first and stop last: Redis outlives the processes using it.
        priority = 100 if name == REDIS_PROGRAM else 200
        config[f"program:{name}"] = _program(command, directory, name, priority)
    if apps:
        # One group stops its programs together; separate ones would stop one after another.
        config[f"group:{APP_GROUP}"] = {"programs": ",".join(apps), "priority": "200"}
    out = io.StringIO()
    out.write("; generated by `stockpred run` from the Procfile at each start: edit the Procfile\n")
    config.write(out)
    return out.getvalue()


def new_password() -> str:
    """A fresh secret for supervisord's control socket (the file holding it is mode 600)."""
    return secrets.token_urlsafe(24)


def program_names(entries: Mapping[str, str]) -> list[str]:
    """supervisorctl's names of the entries' processes (group:name for the app group)."""
    return [name if name == REDIS_PROGRAM else f"{APP_GROUP}:{name}" for name in entries]
