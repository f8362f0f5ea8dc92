"""The process set of `make run`: the Procfile's entries under supervisord, after pre-flight checks.

The Procfile is the one list of commands; this module picks the entries that apply (no redis
entry when REDIS_URL names an external server), checks ports and sockets before anything
starts, writes supervisord's configuration (`stockpred.ops.supervisor_conf`) and becomes
supervisord in the foreground. supervisord restarts a process that exits and stops them all
on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import fcntl
import getpass
import os
import re
import shlex
import shutil
import stat
import sys
from pathlib import Path
from typing import NoReturn

from stockpred.infra.files import atomic_write
from stockpred.ops.redis_server import (
    MAX_SOCKET_PATH,
    PreflightError,
    check_redis_listener,
    port_in_use,
    redis_server_argv,
    socket_in_use,
)
from stockpred.ops.supervisor_conf import LogLimits, SupervisorFiles, new_password, render
from stockpred.paths import DataTree
from stockpred.settings import Settings

PROJECT_ROOT = Path(__file__).resolve().parents[2]
REDIS_ENTRY = "redis"
REDIS_WRAPPER = "stockpred redis-server"
# A Procfile line: `name: command`; blank lines and # comments are skipped.
_PROCFILE_LINE = re.compile(r"^([A-Za-z0-9_-]+):\s*(.+)$")


def procfile_entries(procfile: Path) -> dict[str, str]:
    """Name → command of every Procfile entry, in file order."""
    entries: dict[str, str] = {}
    for number, line in enumerate(procfile.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = _PROCFILE_LINE.match(line)
        if match is None:
            raise PreflightError(f"{procfile}:{number}: expected `name: command`, got {line!r}")
        name, command = match.groups()
        if name in entries:
            raise PreflightError(f"{procfile}:{number}: entry {name!r} is defined twice")
        entries[name] = command.strip()
    return entries


def selected_entries(settings: Settings, procfile: Path) -> dict[str, str]:
    """The entries to start: all of them, less redis when an external server is used."""
    entries = procfile_entries(procfile)
    if not settings.manages_redis:
        entries.pop(REDIS_ENTRY, None)
    return entries


def supervised_commands(settings: Settings, entries: dict[str, str]) -> dict[str, str]:
    """The entries as supervisord runs them: `stockpred redis-server` resolved to what it execs.

    The wrapper only computes redis-server's command line and replaces itself with it; run
    directly, a Redis killed under load is back in milliseconds instead of after a Python
    start-up of one to several seconds, and the workers reconnect at their first retry.
    """
    commands = dict(entries)
    if commands.get(REDIS_ENTRY) == REDIS_WRAPPER:
        argv = redis_server_argv(settings)
        if shutil.which(argv[0]) is None:
            raise PreflightError("redis-server is not installed: run `make setup` (installs it)")
        commands[REDIS_ENTRY] = shlex.join(argv)
    return commands


def preflight(settings: Settings) -> None:
    """Fail with a clear message when a port or socket the set needs is taken."""
    check_redis_listener(settings)
    files = SupervisorFiles.of(DataTree.from_settings(settings))
    if len(str(files.socket)) > MAX_SOCKET_PATH:
        raise PreflightError(
            f"the supervisord socket path {files.socket} is longer than {MAX_SOCKET_PATH} "
            "bytes; use a shorter STOCKPRED_DATA_DIR"
        )
    if socket_in_use(files.socket):
        raise PreflightError(
            f"a supervisord already answers on {files.socket}: another `make run` is using "
            "this data folder (`stockpred ctl status` shows it)"
        )
    ports = (
        ("WEB_PORT", settings.web_port),
        ("FLOWER_PORT", settings.flower_port),
        ("METRICS_PORT", settings.metrics_port),
    )
    for name, port in ports:
        if port_in_use(port):
            raise PreflightError(f"{name}={port} is already in use on 127.0.0.1; choose another")


def child_environment(settings: Settings) -> dict[str, str]:
    """The environment every process inherits: ours, with the venv's bin first on PATH."""
    env = dict(os.environ)
    bin_dir = str(Path(sys.executable).parent)
    env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
    env["STOCKPRED_DATA_DIR"] = str(settings.data_dir)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def reset_metrics_dirs(settings: Settings) -> None:
    """Start multi-process metrics afresh: files of a previous run's processes are stale."""
    tree = DataTree.from_settings(settings)
    for folder in (tree.web_metrics, tree.worker_metrics):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True, exist_ok=True)


def write_supervisor_config(settings: Settings, entries: dict[str, str], directory: Path) -> Path:
    """Write supervisord.conf (mode 600: it holds the control socket's password); its path."""
    files = SupervisorFiles.of(DataTree.from_settings(settings))
    files.folder.mkdir(parents=True, exist_ok=True)
    os.chmod(files.folder, stat.S_IRWXU)  # the control socket lives here
    text = render(
        entries,
        files=files,
        directory=directory,
        log_limits=LogLimits(settings.log_max_bytes, settings.log_backup_count),
        password=new_password(),
        user=getpass.getuser() if os.geteuid() == 0 else None,
    )
    atomic_write(files.conf, text, mode=stat.S_IRUSR | stat.S_IWUSR)
    return files.conf


def append_to_stdout_file() -> None:
    """Make a stdout that is a regular file append-only.

    supervisord writes its own lines through this descriptor and every process's output through
    /dev/stdout opened again (appending): without O_APPEND here, `make run > file` would
    overwrite the processes' lines with supervisord's.
    """
    try:
        if not stat.S_ISREG(os.fstat(1).st_mode):
            return
        flags = fcntl.fcntl(1, fcntl.F_GETFL)
        fcntl.fcntl(1, fcntl.F_SETFL, flags | os.O_APPEND)
    except OSError:
        return  # no stdout at all: nothing to protect


def relay_socket_stdout() -> None:
    """Put a pipe, drained by `cat`, between supervisord and a stdout that is a socket.

    supervisord sends each program's output to /dev/stdout opened again, which Linux refuses
    for a socket (systemd's journal gives one): the pipe can be opened again, and `cat` ends
    when supervisord, the last writer, exits.
    """
    if not stat.S_ISSOCK(os.fstat(1).st_mode):
        return
    cat = shutil.which("cat") or "/bin/cat"
    read_end, write_end = os.pipe()
    if os.fork() == 0:
        try:
            os.dup2(read_end, 0)
            os.close(read_end)
            os.close(write_end)
            os.execv(cat, [cat])
        finally:
            os._exit(127)  # exec failed: never return into the caller's code
    os.dup2(write_end, 1)
    os.close(read_end)
    os.close(write_end)


def run_process_set(settings: Settings, procfile: Path | None = None) -> NoReturn:
    """Check, configure, then replace this process with supervisord in the foreground."""
    procfile = procfile or PROJECT_ROOT / "Procfile"
    preflight(settings)
    entries = supervised_commands(settings, selected_entries(settings, procfile))
    reset_metrics_dirs(settings)
    conf = write_supervisor_config(settings, entries, procfile.parent.resolve())
    append_to_stdout_file()
    relay_socket_stdout()
    sys.stdout.flush()
    sys.stderr.flush()
    argv = [sys.executable, "-m", "supervisor.supervisord", "--nodaemon", "--configuration"]
    os.execve(sys.executable, [*argv, str(conf)], child_environment(settings))
