"""The process set of `make run`: the Procfile's entries under honcho, after pre-flight checks.

The Procfile is the one list of commands; this module only picks the entries that apply (no
redis entry when REDIS_URL names an external server) and checks ports before anything starts.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from honcho.environ import parse_procfile
from honcho.manager import Manager
from honcho.printer import Printer

from stockpred.ops.redis_server import PreflightError, check_redis_listener, port_in_use
from stockpred.paths import DataTree
from stockpred.settings import Settings

PROJECT_ROOT = Path(__file__).resolve().parents[2]
REDIS_ENTRY = "redis"


def procfile_entries(procfile: Path) -> dict[str, str]:
    """Name → command of every Procfile entry, in file order."""
    parsed = parse_procfile(procfile.read_text(encoding="utf-8"))
    return dict(parsed.processes)


def selected_entries(settings: Settings, procfile: Path) -> dict[str, str]:
    """The entries to start: all of them, less redis when an external server is used."""
    entries = procfile_entries(procfile)
    if not settings.manages_redis:
        entries.pop(REDIS_ENTRY, None)
    return entries


def preflight(settings: Settings) -> None:
    """Fail with a clear message when a port the set needs is taken."""
    check_redis_listener(settings)
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


def run_process_set(settings: Settings, procfile: Path | None = None) -> int:
    """Start every selected process and block; Ctrl-C or SIGTERM stops them all."""
    procfile = procfile or PROJECT_ROOT / "Procfile"
    preflight(settings)
    reset_metrics_dirs(settings)
    manager = Manager(Printer(sys.stdout, colour=sys.stdout.isatty(), prefix=True))
    env = child_environment(settings)
    for name, command in selected_entries(settings, procfile).items():
        manager.add_process(name, command, env=env, cwd=str(procfile.parent))
    manager.loop()
    return int(manager.returncode or 0)
