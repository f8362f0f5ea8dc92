"""The web tier's figures: cached answers while many requests wait, and the cost of refusing.

(f) cached-prediction p99 while 100 clients hold slow requests open, over the idle p99; the
slow requests are historical refreshes the bench's stack has no maintenance worker for, so
each waits HISTORICAL_WAIT in the server. (g) requests per second answered by the rate
limiter's 429 path over cached hits, on a second server whose read limit every request is past.
"""

from __future__ import annotations

import http.client
import statistics
import threading
import time
from typing import Any

import redis

from tests.bench import http_load
from tests.bench.figures import PREDICT_PATH, Options
from tests.bench.procs import say
from tests.bench.stack import Stack, http_get, start_gunicorn
from tests.bench.stats import figure

SLOW_CLIENTS = 100
SLOW_SYMBOLS = 10  # distinct refreshes the slow clients share (each one job, deduplicated)


def _tool(options: Options) -> str:
    return http_load.generator() if options.load_tool == "auto" else options.load_tool


class SlowClients:
    """Threads that each keep one slow request open, sending the next when one is answered.

    Their first requests are spread over `spread` seconds (the server's wait), as independent
    clients' are: started together, all 100 would be answered in the same instant at the end of
    every wait and send again at once, a burst of 100 new requests that is a flood, not waiting.
    """

    def __init__(self, port: int, count: int, spread: float = 0.0) -> None:
        self.port = port
        self.count = count
        self.spread = spread
        self.stop = threading.Event()
        self.open = 0
        self.answered: dict[int, int] = {}
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, args=(i,)) for i in range(count)]

    def _run(self, index: int) -> None:
        path = f"/api/v1/historical/ZQB{chr(65 + index % SLOW_SYMBOLS)}?days=5"
        if self.stop.wait(self.spread * index / self.count):
            return
        while not self.stop.is_set():
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            with self._lock:
                self.open += 1
            try:
                conn.request("GET", path)
                status = conn.getresponse().status
            except (OSError, http.client.HTTPException):
                status = 0
            finally:
                conn.close()
                with self._lock:
                    self.open -= 1
                    self.answered[status] = self.answered.get(status, 0) + 1

    def __enter__(self) -> SlowClients:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        for thread in self._threads:
            thread.join(timeout=90)


def _redis_commands(stack: Stack) -> int:
    client: redis.Redis = stack.redis()
    try:
        return int(client.info("stats")["total_commands_processed"])
    finally:
        client.close()


def cached_p99_while_requests_wait(stack: Stack, web_port: int, options: Options) -> dict[str, Any]:
    """Figure f: p99 of cached GET /predict with 100 slow requests open, over the idle p99."""
    status, _ = http_get(web_port, PREDICT_PATH)
    if status != 200:
        raise RuntimeError(f"cached predict answered {status}")
    tool = _tool(options)
    connections = options.load_connections

    def load() -> dict[str, Any]:
        return http_load.run_load(
            stack.procs, web_port, PREDICT_PATH, options.load_seconds, connections, tool
        )

    load()  # warm-up
    runs: dict[str, list[dict[str, Any]]] = {"idle": [], "waiting": []}
    waits: dict[str, Any] = {}
    for index in range(options.load_rounds):
        for side in ("idle", "waiting") if index % 2 == 0 else ("waiting", "idle"):
            if side == "idle":
                runs[side].append(load())
            else:
                wait = stack.settings.historical_wait
                with SlowClients(web_port, SLOW_CLIENTS, spread=wait) as slow:
                    deadline = time.monotonic() + wait + 30
                    while slow.open < SLOW_CLIENTS and time.monotonic() < deadline:
                        time.sleep(0.05)
                    time.sleep(1.0)  # every slow request inside the server, waiting
                    commands, started = _redis_commands(stack), time.monotonic()
                    time.sleep(3.0)
                    waits_only = (_redis_commands(stack) - commands) / (time.monotonic() - started)
                    commands = _redis_commands(stack)
                    started = time.monotonic()
                    result = load()
                    rate = (_redis_commands(stack) - commands) / (time.monotonic() - started)
                    result["open_slow_requests_at_end"] = slow.open
                    runs[side].append(result)
                    waits = {
                        "slow_answers": dict(slow.answered),
                        "redis_commands_per_s_while_only_waiting": round(waits_only, 1),
                    }
                    result["redis_commands_per_s"] = round(rate, 1)
            say(f"  {side}: p99 {runs[side][-1]['p99_ms']:.2f} ms")
    idle = statistics.median(r["p99_ms"] for r in runs["idle"])
    waiting = statistics.median(r["p99_ms"] for r in runs["waiting"])
    detail = {
        "idle_p99_ms": idle,
        "waiting_p99_ms": waiting,
        "idle_requests_per_s": statistics.median(r["requests_per_s"] for r in runs["idle"]),
        "waiting_requests_per_s": statistics.median(r["requests_per_s"] for r in runs["waiting"]),
        "runs": runs,
        **waits,
        "method": (
            f"{tool}: {connections} connections for {options.load_seconds:.0f} s per run on "
            f"cached GET {PREDICT_PATH}, {options.load_rounds} rounds alternating; 'waiting' "
            f"runs while {SLOW_CLIENTS} threads each keep one GET /api/v1/historical/<symbol> "
            f"open ({SLOW_SYMBOLS} symbols never refreshed: the bench runs no maintenance "
            "worker, so each request waits HISTORICAL_WAIT in the server, then answers 202 and "
            "is sent again; the threads start spread over one HISTORICAL_WAIT, so about "
            f"{SLOW_CLIENTS} / HISTORICAL_WAIT requests a second are answered and sent again, "
            "not all at once). redis_commands_per_s: every command Redis ran during the run, "
            "cached reads included; redis_commands_per_s_while_only_waiting: the same over 3 s "
            "with only the slow requests open (their waits are blocking BLMOVEs, not polls; "
            "re-sent requests included). "
            "ratio = median waiting p99 / median idle p99."
        ),
    }
    return figure("cached_p99_with_100_waiting_vs_idle", waiting / idle, "<= 2.0", detail)


def start_limited_web(stack: Stack) -> int:
    """A second web server whose read limit every request after the first is past."""
    extra = ["--name", "stockpred-bench-limited"]
    metrics = stack.root / "limited-web-metrics"  # its own: the config's on_starting wipes it
    env = {"RATE_LIMIT_READS": "1/hour", "PROMETHEUS_MULTIPROC_DIR": str(metrics)}
    # The probe spends the one read the limit allows (health answers 206 here: the bench runs
    # no maintenance worker).
    return start_gunicorn(stack, "limited-web", extra, "/", env)


def refusal_vs_cached_hit(
    stack: Stack, web_port: int, limited_port: int, options: Options
) -> dict[str, Any]:
    """Figure g: req/s of the limiter's 429 answer vs a cached hit, same request."""
    refused, _ = http_get(limited_port, PREDICT_PATH)
    hit, _ = http_get(web_port, PREDICT_PATH)
    if refused != 429 or hit != 200:
        raise RuntimeError(f"expected 429 and 200, got {refused} and {hit}")
    tool = _tool(options)
    sides = {"refused": limited_port, "hit": web_port}

    def load(side: str, seconds: float) -> dict[str, Any]:
        return http_load.run_load(
            stack.procs, sides[side], PREDICT_PATH, seconds, options.load_connections, tool
        )

    for side in sides:
        load(side, 3)  # warm-up
    runs: dict[str, list[dict[str, Any]]] = {"refused": [], "hit": []}
    for index in range(options.load_rounds):
        for side in ("refused", "hit") if index % 2 == 0 else ("hit", "refused"):
            runs[side].append(load(side, options.load_seconds))
            say(f"  {side}: {runs[side][-1]['requests_per_s']:.0f} req/s")
    rates = {s: statistics.median(r["requests_per_s"] for r in runs[s]) for s in runs}
    detail = {
        "refused_requests_per_s": rates["refused"],
        "hit_requests_per_s": rates["hit"],
        "runs": runs,
        "method": (
            f"{tool}: {options.load_connections} connections for {options.load_seconds:.0f} s "
            f"per run, {options.load_rounds} rounds alternating after 3 s warm-ups; GET "
            f"{PREDICT_PATH} on a server with RATE_LIMIT_READS=1/hour (every answer a 429 "
            "with Retry-After, in the JSON error shape) vs the same request answered from the "
            "cache by the main server (same gunicorn config). ratio = median req/s refused / "
            "median req/s hit."
        ),
    }
    ratio = rates["refused"] / rates["hit"]
    return figure("rate_limited_429_vs_cached_hit_requests_per_s", ratio, ">= 0.8", detail)
