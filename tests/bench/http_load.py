"""Closed-loop HTTP load on one URL: `wrk` when installed, else threads with http.client."""

from __future__ import annotations

import http.client
import re
import shutil
import threading
import time
from pathlib import Path
from typing import Any

from tests.bench.procs import Processes
from tests.bench.stats import percentile

_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}
_LATENCY = re.compile(r"^\s*(50|99)(?:\.0+)?%\s+([\d.]+)(us|ms|s|m)\s*$", re.MULTILINE)


def generator() -> str:
    """Which load generator this machine has: "wrk" or "python"."""
    return "wrk" if shutil.which("wrk") else "python"


def run_load(
    procs: Processes, port: int, path: str, seconds: float, connections: int, tool: str
) -> dict[str, Any]:
    """Load `path` for `seconds` with `connections` concurrent clients; req/s, p50/p99 in ms."""
    if tool == "wrk":
        return _wrk(procs, port, path, seconds, connections)
    return _python(port, path, seconds, connections)


def _wrk(
    procs: Processes, port: int, path: str, seconds: float, connections: int
) -> dict[str, Any]:
    name = f"wrk-{port}-{time.monotonic_ns()}"
    argv = [
        "wrk",
        "--threads",
        "2",
        "--connections",
        str(connections),
        "--duration",
        f"{round(seconds)}s",
        "--timeout",
        "10s",
        "--latency",
        f"http://127.0.0.1:{port}{path}",
    ]
    proc = procs.start(name, argv, {"PATH": "/usr/bin:/bin"})
    if proc.wait(timeout=seconds + 30) != 0:
        raise RuntimeError(f"wrk failed:\n{procs.log_tail(name)}")
    return parse_wrk(Path(procs.log_dir / f"{name}.log").read_text())


def parse_wrk(text: str) -> dict[str, Any]:
    """The figures of a `wrk --latency` report."""
    latency = {q: float(v) * _UNITS_MS[unit] for q, v, unit in _LATENCY.findall(text)}
    total = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", text)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if total is None or rate is None or set(latency) != {"50", "99"}:
        raise RuntimeError(f"unexpected wrk output:\n{text}")
    errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text
    )
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    return {
        "generator": "wrk",
        "requests_per_s": float(rate.group(1)),
        "p50_ms": round(latency["50"], 3),
        "p99_ms": round(latency["99"], 3),
        "requests": int(total.group(1)),
        "seconds": float(total.group(2)) * _UNITS_MS[total.group(3)] / 1000,
        "socket_errors": sum(int(n) for n in errors.groups()) if errors else 0,
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
    }


def _python(port: int, path: str, seconds: float, connections: int) -> dict[str, Any]:
    """Threads, each one http.client connection reused while the server keeps it open."""
    latencies: list[list[float]] = [[] for _ in range(connections)]
    failures = [0] * connections
    deadline = time.perf_counter() + seconds

    def client(slot: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            try:
                conn.request("GET", path)
                response = conn.getresponse()
                response.read()
                ok = 200 <= response.status < 400
            except (OSError, http.client.HTTPException):
                conn.close()
                ok = False
            latencies[slot].append((time.perf_counter() - started) * 1000)
            failures[slot] += not ok
        conn.close()

    started = time.perf_counter()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    merged = [value for slot in latencies for value in slot]
    return {
        "generator": "python",
        "requests_per_s": round(len(merged) / elapsed, 1),
        "p50_ms": round(percentile(merged, 50), 3),
        "p99_ms": round(percentile(merged, 99), 3),
        "requests": len(merged),
        "seconds": round(elapsed, 3),
        "socket_errors": 0,
        "non_2xx": sum(failures),
    }
