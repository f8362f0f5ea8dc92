"""`python -m tests.bench`: measure stockpred against bare baselines; JSON on stdout.

Starts its own redis-server, Celery workers and gunicorn servers on free ports over a temp data
root, measures seven serving figures (tests/bench/figures.py, tests/bench/web_figures.py),
three backup figures (tests/bench/storage_figures.py) and, on a `make run` of its own, the
Redis-SIGKILL recovery figure (h) (tests/bench/fault_figures.py), on another `make run` the
dashboard's symbol page figures (tests/bench/dashboard_figures.py: server render, first chart in
chromium), the out-of-sample forecast figures (tests/bench/forecast_figures.py, no processes
needed), on another `make run` the daily run of 200 symbols, figure (i)
(tests/bench/daily_run_figures.py), the model cache's memory figure (j)
(tests/bench/model_memory.py, fresh interpreters of its own) and, on a Sentinel deployment of its
own with the web and an inference worker, the primary-SIGKILL recovery figure (k)
(tests/bench/sentinel_figures.py), stops every process it started, writes the JSON to
<data root>/monitoring/bench-<UTC stamp>.json of the invoking
environment, and prints it last on stdout. Progress goes to stderr. Exit status: 0 when every
figure was measured (pass or not; `--strict` makes a failed target exit 1), 1 on an error, 130
when interrupted.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

from stockpred.infra.files import atomic_write
from stockpred.settings import get_settings
from tests.bench import (
    daily_run_figures,
    dashboard_figures,
    fault_figures,
    figures,
    forecast_figures,
    model_memory,
    sentinel_figures,
    stack,
    web_figures,
)
from tests.bench.figures import Options
from tests.bench.procs import ForeignCpu, Processes, say
from tests.bench.storage_figures import storage_figures


def parse_args(argv: list[str]) -> tuple[Options, argparse.Namespace]:
    """Options from the command line (defaults: the full run)."""
    parser = argparse.ArgumentParser(prog="python -m tests.bench", description=__doc__)
    defaults = Options()
    for field in dataclasses.fields(Options):
        flag = "--" + field.name.replace("_", "-")
        default = getattr(defaults, field.name)
        parser.add_argument(flag, type=type(default), default=None, help=f"default: {default}")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--keep-temp", action="store_true", help="keep the temp dir and its logs")
    args = parser.parse_args(argv)
    chosen = {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(Options)
        if getattr(args, f.name) is not None
    }
    options = dataclasses.replace(defaults, **chosen)
    if options.load_tool not in ("auto", "wrk", "python"):
        parser.error("--load-tool must be auto, wrk or python")
    if options.rss_in_flight < 1 or options.rss_predictions < 100:
        parser.error("--rss-in-flight must be at least 1 and --rss-predictions at least 100")
    return options, args


NOISY = 0.05  # share of the machine's CPU other processes may use before a phase is flagged


def phase(label: str, step: Callable[[], Any]) -> Any:
    """Run one phase, saying how long it took; a figure gets the phase's machine load attached."""
    say(f"{label} ...")
    load = ForeignCpu()
    value = step()
    machine = load.report()
    fig = value[0] if isinstance(value, tuple) else value
    if isinstance(fig, dict) and "detail" in fig:
        fig["detail"]["machine"] = machine
    say(f"{label}: done in {machine['phase_seconds']}s")
    if machine["other_load_share_of_all_cpus"] > NOISY:
        other = machine["other_processes_cpu_seconds"]
        say(f"  warning: other processes used {other} CPU seconds meanwhile (noisy figure)")
    return value


def measure(root: Path, procs: Processes, options: Options) -> list[dict[str, Any]]:
    """Set everything up, measure the figures in an order that keeps them apart, return them."""
    faults = []
    if options.wants("h"):  # its own `make run`, measured first and stopped before the rest
        faults.append(
            phase(
                "(h) Redis SIGKILL to the first uncached prediction",
                fault_figures.redis_kill_to_uncached_prediction,
            )
        )
    if options.wants("forecast"):  # no processes: the served forecast vs naive, out of sample
        faults.extend(
            phase(
                "(forecast) served forecast vs naive and 80 % coverage, out of sample",
                forecast_figures.forecast_figures,
            )
        )
    if options.wants("i"):  # its own `make run` over 200 symbols, stopped before the rest
        faults.append(
            phase(
                "(i) daily run of 200 symbols, a model cache of 20: wall vs loads + bare calls",
                daily_run_figures.daily_run_wall_vs_loads,
            )
        )
    if options.wants("j"):  # fresh interpreters over a data root of its own, no Redis
        faults.append(
            phase(
                "(j) inference process RSS after 200 symbols vs after 20, a model cache of 20",
                model_memory.model_cache_rss,
            )
        )
    if options.wants("k"):  # its own Sentinel deployment, web and inference worker
        faults.append(
            phase(
                "(k) Redis primary SIGKILL to the first uncached prediction, with Sentinel",
                lambda: sentinel_figures.sentinel_kill_to_uncached_prediction(root / "sentinel"),
            )
        )
    if options.wants("dashboard"):  # its own `make run` and chromium, stopped before the rest
        faults.extend(
            phase(
                "(dashboard) symbol page with five years: server render, first chart in chromium",
                dashboard_figures.dashboard_figures,
            )
        )
    if not any(options.wants(name) for name in ("a", "b", "c", "d", "e", "f", "g", "storage")):
        return faults
    bench = stack.prepare(root, procs)
    trained = phase(
        "training a first NVDA model (3 epochs, fresh interpreter)",
        lambda: procs.run_python(
            "bench-train", "tests.bench.children", {"job": "train", "epochs": 3}, bench.env, 600
        ),
    )
    say(f"model {trained['version']} published ({trained['seconds']}s)")
    results: dict[str, Any] = {}
    fig_a, bare_ms = phase(
        "(a) inference path vs bare call",
        lambda: figures.inference_path_vs_bare_call(bench, options),
    )
    if options.wants("a"):
        results["a"] = fig_a
    inference_pid = stack.start_worker(bench, "worker-inference", "inference", 2)
    stack.start_worker(bench, "worker-training", "training", 1)
    web_port = stack.start_web(bench)
    bare_port = stack.start_bare_web(bench, bench.prediction_keys()[0])
    warmed = phase(
        "warming every inference pool child",
        lambda: figures.warm_inference_worker(bench, inference_pid),
    )
    served = warmed + (10 + options.http_samples + 1 if options.wants("b") else 0)
    steps: list[tuple[str, str, Callable[[], Any]]] = [
        (
            "b",
            "(b) uncached HTTP predict vs task round trip + bare call",
            lambda: figures.uncached_http_vs_round_trip(bench, web_port, bare_ms, options),
        ),
        (
            "c",
            "(c) cached HTTP predict vs bare Flask + Redis GET",
            lambda: figures.cached_http_vs_bare_flask(bench, web_port, bare_port, options),
        ),
        (
            "f",
            "(f) cached HTTP predict p99 with 100 requests waiting vs idle",
            lambda: web_figures.cached_p99_while_requests_wait(bench, web_port, options),
        ),
        (
            "g",
            "(g) the rate limiter's 429 answer vs a cached hit",
            lambda: web_figures.refusal_vs_cached_hit(
                bench, web_port, web_figures.start_limited_web(bench), options
            ),
        ),
        (
            "e",
            "(e) inference worker RSS growth",
            lambda: figures.worker_rss_growth(bench, inference_pid, served, options),
        ),
        (
            "d",
            "(d) training task vs bare fit",
            lambda: figures.training_task_vs_bare_fit(bench, web_port, options),
        ),
    ]
    for name, label, step in steps:  # this order keeps the figures apart
        if options.wants(name):
            results[name] = phase(label, step)
    storage: list[dict[str, Any]] = []
    if options.wants("storage"):
        storage = phase(
            "(storage) backup vs tar czf, unchanged incremental, restore verification",
            lambda: storage_figures(root / "storage"),
        )
    return [results[name] for name in "abcdefg" if name in results] + storage + faults


def _stop_on_signal(signum: int, _frame: FrameType | None) -> None:
    """SIGTERM/SIGHUP unwind like Ctrl-C, so every started process is stopped."""
    raise KeyboardInterrupt(f"signal {signum}")


def report(results: list[dict[str, Any]], seconds: float) -> str:
    """Write the JSON under the invoking data root's monitoring/; return it."""
    text = json.dumps(results, indent=2)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = get_settings().data_dir / "monitoring" / f"bench-{stamp}.json"
    atomic_write(path, text + "\n")
    for item in results:
        say(
            f"{'PASS' if item['pass'] else 'FAIL'} {item['name']}: {item['ratio']} {item['target']}"
        )
    say(f"finished in {seconds:.0f}s; wrote {path}")
    return text


def run(options: Options, keep_temp: bool) -> list[dict[str, Any]] | None:
    """Measure in a fresh temp dir; None when interrupted. Every started process is stopped."""
    root = Path(tempfile.mkdtemp(prefix="stockpred-bench-"))
    (root / "logs").mkdir()
    procs = Processes(root / "logs")
    results = None
    try:
        results = measure(root, procs, options)
    except KeyboardInterrupt:
        say("interrupted")
    finally:
        gc.collect()  # Celery results left by an interruption unsubscribe while Redis still runs
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not orphan
        procs.stop_all()
        signal.signal(signal.SIGINT, previous)
        if results is not None and not keep_temp:
            shutil.rmtree(root, ignore_errors=True)
        else:
            say(f"kept {root} (logs in {root / 'logs'})")
    return results


def main(argv: list[str]) -> int:
    """Run the benchmark; print the JSON last."""
    options, args = parse_args(argv)
    get_settings()  # the invoking environment's settings: fail early if they are invalid
    signal.signal(signal.SIGTERM, _stop_on_signal)
    signal.signal(signal.SIGHUP, _stop_on_signal)
    started = time.monotonic()
    results = run(options, args.keep_temp)
    if results is None:
        return 130
    text = report(results, time.monotonic() - started)
    print(text, flush=True)
    missed = not all(item["pass"] for item in results)
    return 1 if args.strict and missed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
