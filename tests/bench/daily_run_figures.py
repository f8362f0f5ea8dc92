"""Figure (i): the daily run of 200 symbols with a model cache of 20 per inference process.

One model (model_memory's preparation: the default `MLConfig`, one epoch, trained on the
embedded NVDA series) is published under 200 names (S0001..S0200) in the data root of a real
process set (`make run` on free ports, a temp data root), and each name gets the embedded NVDA
bars as its operator CSV (`STOCK_DATA_SOURCE=csv`): issue 15 lets scale measurements reuse the
embedded series under many names; the served data stays real bars, read, validated and stored
by the production path.

- Baseline, measured alone in a fresh interpreter over the same data root (the set idle, TF
  intra-op threads as an inference pool child gets): for each name, `LoadedModel.load` of its
  current version, then one bare call of its traced serving function on its latest scaled
  window (the window built untimed); the sum of both over the 200 names.
- The real thing: `POST /api/v1/predictions/daily-run` queues `maintenance.daily_run`, which
  queues one `inference.predict` job per tracked symbol; the inference worker runs at its
  production concurrency (the Procfile's `-c 2`) with `MODEL_CACHE_SIZE=20`. Wall time: from
  just before the POST to the latest `finished_at` of the 200 job records, once
  `GET /api/v1/predictions/daily-status` says all 200 succeeded.
- Checks: every job succeeded; each model was loaded at most once per process, and each process
  evicted exactly its loads past the bound (the inference worker's "loaded"/"evicted" log lines, by
  pid). The logs, not the exporter: in the `make run` sets this was built on, the pool
  children wrote no metric files to the exporter's folder (reported, not fixed here).

ratio = wall / baseline sum, target <= 1.5. No small-scale integration test: one run of 6
symbols with a cache of 2 takes about 70 s here (a `make run` start and a model's training),
past the 60 s such a test may take; tests/unit/test_bench_daily_run.py pins the log reading.

Run alone: `.venv/bin/python -m tests.bench --only i`.
"""

from __future__ import annotations

import gc
import json
import os
import re
import statistics
import subprocess
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stockpred.infra.files import atomic_write
from stockpred.infra.tf_runtime import TF_THREADS_ENV
from stockpred.paths import DataTree
from stockpred.settings import load_settings
from tests.bench.model_memory import SOURCE, run_job, symbol_names
from tests.bench.procs import say
from tests.bench.stats import figure, summarize
from tests.process_set import RunningSet, http_get, process_set, wait_healthy
from tests.supervised_set import post
from tests.support import wait_for

SYMBOLS = 200
CACHE = 20
TARGET = "<= 1.5"
INFERENCE_PROCESSES = 2  # the Procfile's `--concurrency 2` for worker-inference
RUN_TIMEOUT = 1200  # seconds for the whole daily run on a busy two-core machine
POLL = 1.0  # seconds between daily-status reads (the wall time comes from the job records)
LOGS_WITHIN = 30  # seconds for the workers' batched log lines to reach their files
COLLECT_EVERY = 5  # untimed gc in the baseline, as often as a cache of 20 collects itself
# ModelCache's log lines: "[inference@host:pid] stockpred.ml.predict <context>: loaded S0001 model
# <version> in 0.312s" and "...: evicted S0001 model <version>: the least recently used of 20".
_CACHE_LINE = re.compile(
    r"\[[^\]]*:(?P<pid>\d+)\] stockpred\.ml\.predict(?:[^:]*task_id=(?P<task>\S+))?[^:]*: "
    r"(?P<what>loaded|evicted) "
    r"(?P<symbol>\S+) model \S+(?: in (?P<seconds>[\d.]+)s)?"
)


# the baseline, in a fresh interpreter -------------------------------------------------------


def _baseline(root: Path, args: dict[str, Any]) -> dict[str, Any]:
    """Load each name's model and call its traced serving function once on its last window."""
    import numpy as np

    from stockpred.infra.tf_runtime import tensorflow
    from stockpred.market.embedded import EmbeddedSource
    from stockpred.ml.features import compute_features
    from stockpred.ml.forecast import LoadedModel
    from stockpred.ml.registry import ModelRegistry

    tensorflow()  # configured as the workers configure it (threads, logging)
    registry = ModelRegistry(root / "ml_models", root / "scalers")
    features = compute_features(EmbeddedSource().fetch(SOURCE).frame)
    anchors = np.array([len(features) - 1])
    loads: list[float] = []
    calls: list[float] = []
    for count, name in enumerate(symbol_names(int(args["symbols"])), start=1):
        version = registry.current_version(name)
        assert version is not None, name
        info = registry.info(name, version)
        started = time.perf_counter()
        loaded = LoadedModel.load(info)
        loads.append(time.perf_counter() - started)
        x = loaded.prepare(features, anchors)
        started = time.perf_counter()
        loaded.serve(x)
        calls.append(time.perf_counter() - started)
        del loaded
        if count % COLLECT_EVERY == 0:
            gc.collect()  # untimed: the bare side pays no collection
    return {"load_seconds": loads, "call_seconds": calls}


def _child(root: Path, raw: str) -> None:
    """The baseline in this (fresh) interpreter; JSON on the last line of stdout."""
    print(json.dumps(_baseline(root, json.loads(raw))), flush=True)


def measure_baseline(root: Path, env: dict[str, str], symbols: int) -> dict[str, Any]:
    """Run the baseline in a fresh interpreter over `root` with a pool child's thread budget."""
    threads = max(1, (os.cpu_count() or 1) // INFERENCE_PROCESSES)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.bench.daily_run_figures",
            "--child",
            str(root),
            json.dumps({"symbols": symbols}),
        ],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        env={**env, TF_THREADS_ENV: str(threads)},
    )
    if done.returncode != 0:
        raise RuntimeError(f"daily-run baseline failed ({done.returncode}): {done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    result["tf_threads"] = threads
    return result


# the data root --------------------------------------------------------------------------------


def write_csvs(historical: Path, names: list[str]) -> int:
    """The embedded series as each name's operator CSV (historical/<NAME>/daily.csv); rows."""
    from stockpred.market.embedded import EmbeddedSource

    bars = EmbeddedSource().fetch(SOURCE).frame
    frame = bars[["open", "high", "low", "close", "volume"]].copy()
    frame.index = [stamp.date().isoformat() for stamp in bars.index]
    text = frame.to_csv(index_label="date")
    for name in names:
        atomic_write(historical / name / "daily.csv", text)
    return len(frame)


def prepare(running: RunningSet, symbols: int) -> dict[str, Any]:
    """Train the one model into the set's data root, publish it under every name, write CSVs."""
    tree = DataTree.from_settings(load_settings(running.env))
    root = running.data_dir
    if (tree.ml_models, tree.scalers) != (root / "ml_models", root / "scalers"):
        raise RuntimeError(f"the set's model folders are not at its root's defaults: {tree}")
    say(f"(i) training one model and publishing it under {symbols} names ...")
    prepared = run_job("prepare", root, {"symbols": symbols, "epochs": 1})
    prepared["csv_rows"] = write_csvs(tree.stock_historical, symbol_names(symbols))
    return prepared


# the real thing -------------------------------------------------------------------------------


@dataclass
class CacheLog:
    """What the inference processes' log lines say about their model caches, by pid."""

    loads: dict[int, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    evictions: Counter[int] = field(default_factory=Counter)
    load_seconds: list[float] = field(default_factory=list)
    # symbol -> "pid/task id" of each load, to name the work behind a model loaded twice
    loaders: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))


def read_cache_log(logs: Path, names: set[str]) -> CacheLog:
    """Every "loaded <name> model" and "evicted <name> model" line of `names` under `logs`."""
    found = CacheLog()
    for path in sorted(logs.rglob("*.log*")):
        with path.open(errors="replace") as handle:
            for line in handle:
                match = _CACHE_LINE.search(line)
                if match is None or match.group("symbol") not in names:
                    continue
                pid = int(match.group("pid"))
                if match.group("what") == "loaded":
                    found.loads[pid][match.group("symbol")] += 1
                    found.load_seconds.append(float(match.group("seconds")))
                    found.loaders[match.group("symbol")].append(f"{pid}/{match.group('task')}")
                else:
                    found.evictions[pid] += 1
    return found


def _all_loads_logged(found: CacheLog, names: list[str]) -> CacheLog | None:
    return found if all(found.loaders.get(name) for name in names) else None


def check_cache_log(found: CacheLog, names: list[str], cache: int) -> dict[str, list[str]]:
    """Each name loaded, at most once per process, and each process evicted exactly its loads
    past `cache`; the names loaded more than once in all, with each load's pid/task id."""
    for pid, counter in found.loads.items():
        twice = {name: n for name, n in counter.items() if n > 1}
        if twice:
            raise AssertionError(f"process {pid} loaded models more than once: {twice}")
        expected = max(0, sum(counter.values()) - cache)
        if found.evictions[pid] != expected:
            raise AssertionError(
                f"process {pid} loaded {sum(counter.values())} models with a cache of {cache} "
                f"but evicted {found.evictions[pid]}, not {expected}"
            )
    missing = [name for name in names if not found.loaders.get(name)]
    if missing:
        raise AssertionError(f"models never loaded in the daily run: {missing[:10]}")
    return {name: found.loaders[name] for name in names if len(found.loaders[name]) > 1}


def _iso(value: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def _json(running: RunningSet, path: str) -> dict[str, Any]:
    status, body = http_get(running.web + path)
    if status != 200:
        raise AssertionError(f"GET {path}: {status} {body[:300]!r}")
    answer: dict[str, Any] = json.loads(body)
    return answer


def run_daily(running: RunningSet, symbols: int) -> dict[str, Any]:
    """Trigger the daily run over HTTP; wait for every job to succeed; the timings and records."""
    started = time.time()
    status, answer = post(running, "/api/v1/predictions/daily-run", {})
    assert status == 202, answer
    run_id = answer["task_id"]

    def finished() -> dict[str, Any] | None:
        run = _json(running, "/api/v1/predictions/daily-status")["run"]
        if run is None or run["run_id"] != run_id or len(run["jobs"]) < symbols:
            return None
        if any(state in ("failed", "cancelled", "expired") for state in run["states"]):
            raise AssertionError(f"daily run jobs ended badly: {run['states']}")
        return run if run["states"] == {"succeeded": symbols} else None

    run = wait_for(finished, RUN_TIMEOUT, interval=POLL, what=f"{symbols} daily predictions")
    polled = time.time() - started
    records = [_json(running, f"/api/v1/tasks/{job['job_id']}") for job in run["jobs"]]
    trigger = _json(running, f"/api/v1/tasks/{run_id}")
    last = max(_iso(record["finished_at"]) for record in records)
    ran = [_iso(r["finished_at"]) - _iso(r["started_at"]) for r in records]
    first = min(_iso(r["started_at"]) for r in records)
    return {
        "wall_seconds": last - started,
        "first_job_started_after_s": round(first - started, 3),
        "job_run_seconds": summarize(ran, 4),
        "job_run_seconds_sum": round(sum(ran), 2),
        "wall_seconds_polled": round(polled, 2),
        "daily_run_task_seconds": round(
            _iso(trigger["finished_at"]) - _iso(trigger["started_at"]), 3
        ),
        "jobs": len(records),
        "states": run["states"],
        "skipped": run["skipped"],
    }


def daily_run_wall_vs_loads(symbols: int = SYMBOLS, cache: int = CACHE) -> dict[str, Any]:
    """Figure (i) for `make bench`: its own `make run`, stopped before returning."""
    names = symbol_names(symbols)
    env = {
        "TRACKED_SYMBOLS": ",".join(names),
        "MODEL_CACHE_SIZE": str(cache),
        "STOCK_DATA_SOURCE": "csv",
    }
    with process_set(env) as running:
        wait_healthy(running)
        prepared = prepare(running, symbols)
        say(f"(i) baseline: {symbols} model loads and bare calls in a fresh interpreter ...")
        baseline = measure_baseline(running.data_dir, running.env, symbols)
        say(f"(i) the daily run of {symbols} symbols ...")
        real = run_daily(running, symbols)
        logs = DataTree.from_settings(load_settings(running.env)).logs
        # Log lines are written in batches: wait until every load has reached the files.
        cache_log = wait_for(
            lambda: _all_loads_logged(read_cache_log(logs, set(names)), names),
            LOGS_WITHIN,
            interval=0.5,
            what=f"{symbols} 'loaded' lines in the worker logs",
        )
    loads, calls = baseline["load_seconds"], baseline["call_seconds"]
    baseline_sum = sum(loads) + sum(calls)
    reloaded = check_cache_log(cache_log, names, cache)
    detail = {
        "symbols": symbols,
        "model_cache_size": cache,
        "inference_processes": len(cache_log.loads),
        "loads_per_process": {str(p): sum(c.values()) for p, c in sorted(cache_log.loads.items())},
        "evictions_per_process": {str(p): n for p, n in sorted(cache_log.evictions.items())},
        "evictions": sum(cache_log.evictions.values()),
        "model_loads": len(cache_log.load_seconds),
        "models_loaded_in_more_than_one_process": reloaded,
        "wall_seconds": round(real["wall_seconds"], 2),
        "baseline_sum_seconds": round(baseline_sum, 2),
        "baseline_load_seconds_sum": round(sum(loads), 2),
        "baseline_call_seconds_sum": round(sum(calls), 3),
        "per_model_load_mean_s": round(statistics.mean(loads), 4),
        "per_model_load_s": summarize(loads, 4),
        "bare_call_mean_ms": round(statistics.mean(calls) * 1000, 3),
        "bare_call_ms": summarize([c * 1000 for c in calls], 3),
        "baseline_tf_threads": baseline["tf_threads"],
        "served_load_seconds": summarize(cache_log.load_seconds, 4),
        "served_load_seconds_sum": round(sum(cache_log.load_seconds), 2),
        "prepared": prepared,
        **{k: v for k, v in real.items() if k != "wall_seconds"},
        "method": (
            f"One model (default MLConfig, 1 epoch) trained on the embedded {SOURCE} series and "
            f"published under {symbols} names (S0001..), each with the embedded {SOURCE} bars as "
            "its operator CSV (STOCK_DATA_SOURCE=csv; issue 15 allows reusing the embedded "
            f"series under many names). make run on a temp data root, TRACKED_SYMBOLS = the "
            f"{symbols} names, MODEL_CACHE_SIZE={cache}, the inference worker at the Procfile's "
            "concurrency. Baseline, alone in a fresh interpreter (the set idle, TF threads as a "
            "pool child gets): per name LoadedModel.load of its current version plus one call "
            "of its traced serving function on its latest scaled window (built untimed); summed. "
            "Wall: from just before POST /api/v1/predictions/daily-run to the latest "
            "finished_at of the daily run's job records, all succeeded. Loads and evictions per "
            "process from the inference worker's log lines (ModelCache's 'loaded'/'evicted'): "
            "each model loaded at most once per process, evictions = loads past the bound in "
            "each process. "
            "ratio = wall / baseline sum."
        ),
    }
    return figure(
        f"daily_run_{symbols}_symbols_cache_{cache}_wall_vs_sum_of_loads_and_bare_calls",
        real["wall_seconds"] / baseline_sum,
        TARGET,
        detail,
    )


def main(argv: list[str]) -> int:
    """`--child <root> <json>`: the baseline; otherwise measure figure (i) and print its JSON."""
    if argv[:1] == ["--child"]:
        _child(Path(argv[1]), argv[2])
        return 0
    symbols = int(argv[0]) if argv else SYMBOLS
    cache = int(argv[1]) if len(argv) > 1 else CACHE
    print(json.dumps(daily_run_wall_vs_loads(symbols, cache), indent=2), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
