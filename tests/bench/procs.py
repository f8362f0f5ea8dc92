"""Every process the benchmark starts: each in its own session, all stopped at the end."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import psutil

from tests.support import ROOT, stop_group


def say(message: str) -> None:
    """Progress for the human watching: stderr, flushed, time-stamped."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class ChildFailed(RuntimeError):
    """A helper process exited with an error or did not finish in time."""


class Processes:
    """Starts subprocesses in new sessions and stops every one of them (and their groups)."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self._procs: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(
        self, name: str, argv: Sequence[str], env: Mapping[str, str]
    ) -> subprocess.Popen[bytes]:
        """Start `argv` from the project root with output in `<log_dir>/<name>.log`."""
        with (self.log_dir / f"{name}.log").open("ab") as log:
            proc = subprocess.Popen(
                list(argv),
                cwd=ROOT,
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._procs.append((name, proc))
        return proc

    def adopt(self, name: str, proc: subprocess.Popen[bytes]) -> None:
        """Take charge of a process started elsewhere (in its own session)."""
        self._procs.append((name, proc))

    def pid_of(self, name: str) -> int:
        """The pid of the running process started as `name`."""
        for known, proc in self._procs:
            if known == name and proc.poll() is None:
                return proc.pid
        raise KeyError(f"no running process named {name!r}")

    def log_tail(self, name: str, lines: int = 30) -> str:
        """The last lines of a process's log."""
        path = self.log_dir / f"{name}.log"
        try:
            return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def run_python(
        self,
        name: str,
        module: str,
        args: Mapping[str, Any],
        env: Mapping[str, str],
        timeout: float,
    ) -> dict[str, Any]:
        """Run `python -m module <out.json> <args json>` to completion; return what it wrote."""
        out = self.log_dir / f"{name}.result.json"
        out.unlink(missing_ok=True)
        argv = [sys.executable, "-m", module, str(out), json.dumps(dict(args))]
        proc = self.start(name, argv, env)
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop(proc)
            raise ChildFailed(f"{name} did not finish in {timeout:.0f}s") from None
        self._forget(proc)
        if code != 0 or not out.is_file():
            raise ChildFailed(f"{name} exited with {code}:\n{self.log_tail(name)}")
        result: dict[str, Any] = json.loads(out.read_text())
        return result

    def stop(self, proc: subprocess.Popen[bytes], timeout: float = 20) -> None:
        """SIGTERM the process group, SIGKILL it after `timeout`, then kill any stray child."""
        strays = _descendants(proc.pid)
        stop_group(proc, signal.SIGTERM, timeout)
        for stray in strays:
            with contextlib.suppress(psutil.Error):
                if stray.is_running():
                    stray.kill()

    def stop_all(self) -> None:
        """Stop everything still running, last started first."""
        while self._procs:
            name, proc = self._procs.pop()
            if proc.poll() is None:
                say(f"stopping {name} (pid {proc.pid})")
                try:
                    self.stop(proc)
                except Exception as exc:  # keep stopping the others
                    say(f"could not stop {name}: {exc}")

    def _forget(self, proc: subprocess.Popen[bytes]) -> None:
        self._procs = [(n, p) for n, p in self._procs if p is not proc]


def _descendants(pid: int) -> list[psutil.Process]:
    """The process's children, grandchildren… (empty if it is gone)."""
    try:
        return list(psutil.Process(pid).children(recursive=True))
    except psutil.Error:
        return []


class ForeignCpu:
    """CPU seconds used meanwhile by processes the benchmark did not start (other load)."""

    def __init__(self) -> None:
        self._start = _foreign_cpu()
        self._started = time.monotonic()

    def report(self) -> dict[str, float]:
        """Wall seconds since creation and the other processes' CPU seconds (a lower bound)."""
        end = _foreign_cpu()
        used = sum(cpu - self._start.get(key, 0.0) for key, cpu in end.items())
        seconds = time.monotonic() - self._started
        return {
            "phase_seconds": round(seconds, 1),
            "other_processes_cpu_seconds": round(used, 1),
            "other_load_share_of_all_cpus": round(used / (seconds * (os.cpu_count() or 1)), 3),
        }


def _foreign_cpu() -> dict[tuple[int, float], float]:
    """(pid, start time) → user+system CPU seconds of every process outside this process tree."""
    me = psutil.Process()
    ours = {me.pid} | {p.pid for p in _descendants(me.pid)}
    found: dict[tuple[int, float], float] = {}
    for proc in psutil.process_iter(["pid", "create_time", "cpu_times"]):
        info = proc.info
        if info["pid"] in ours or info["cpu_times"] is None:
            continue
        found[(info["pid"], info["create_time"])] = (
            info["cpu_times"].user + info["cpu_times"].system
        )
    return found


def tree_cpu_seconds(pid: int) -> float:
    """User+system CPU seconds used so far by a process and its live descendants."""
    total = 0.0
    for proc in [psutil.Process(pid), *_descendants(pid)]:
        with contextlib.suppress(psutil.Error):
            times = proc.cpu_times()
            total += times.user + times.system
    return total
