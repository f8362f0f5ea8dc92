"""The five figures: each measures the system and its bare baseline side by side."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import statistics
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from celery.result import AsyncResult

from stockpred.infra.tf_runtime import TF_THREADS_ENV
from stockpred.jobs.records import JobStore
from tests.bench import http_load
from tests.bench.procs import say, tree_cpu_seconds
from tests.bench.stack import HORIZON, SYMBOL, Stack, http_get, pool_children
from tests.bench.stats import figure, summarize
from tests.support import ROOT, wait_for

PREDICT_PATH = f"/api/v1/predict/{SYMBOL}"
TRIVIAL_TASK = "celery.accumulate"  # built into every Celery app: returns its arguments
LOADED_KEY_PREFIX = "stockpred:loaded:"  # tasks.context.LOADED_KEY_PREFIX
MB = 1024 * 1024


@dataclass(frozen=True)
class Options:
    """How much to measure (the defaults take about 5 minutes on 2 quiet cores)."""

    inference_samples: int = 300
    http_samples: int = 100
    load_seconds: float = 10.0
    load_rounds: int = 3
    load_connections: int = 8
    load_tool: str = "auto"
    train_epochs: int = 10
    train_rounds: int = 3
    rss_predictions: int = 5000
    rss_in_flight: int = 3
    # which figures to measure (a subset while iterating)
    only: str = "a,b,c,d,e,f,g,storage,h,forecast,i,j,k,dashboard"

    def wants(self, figure: str) -> bool:
        return figure in {part.strip() for part in self.only.split(",")}


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def _iso(value: str) -> float:
    """Seconds since the epoch of an RFC 3339 stamp such as 2025-01-02T03:04:05.678Z."""
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


# (a) ------------------------------------------------------------------------------------------


def inference_path_vs_bare_call(stack: Stack, options: Options) -> tuple[dict[str, Any], float]:
    """Figure a, in a fresh interpreter; also returns the bare call's median (ms) for figure b."""
    key, _ = stack.prediction_keys()
    threads = max(1, (os.cpu_count() or 1) // 2)  # what the -c 2 inference worker gives a child
    args = {
        "job": "inference",
        "prediction_key": key,
        "warmup": 30,
        "samples": options.inference_samples,
        "profile": 100,
    }
    env = {**stack.env, TF_THREADS_ENV: str(threads)}
    result = stack.procs.run_python("bench-inference", "tests.bench.children", args, env, 300)
    path, bare = result["path_ms"]["median"], result["bare_ms"]["median"]
    result["method"] = (
        "One fresh interpreter on the bench data root and Redis, TF intra-op threads as an "
        "inference pool child gets. Inference path: tasks.inference.service().predict('NVDA', 1) "
        "(ModelCache, the current-version check, freshness check, model call, result sent to "
        "the Redis cache (reply read at the next write); the JSONL journal and prediction.log "
        "lines are handed to the background writer, whose pending work is flushed, untimed, "
        "before every timed call of either side (background_lines_ms_after_return: a flush "
        "timed right after a path call); worker logging configured; the cache entry deleted "
        "before each call, untimed: the path never reads the cache, the web does); steady "
        "state: model loaded and "
        "the per-process feature cache warm after the first call. Bare, on the identical scaled "
        "window (windows_at + scalers.transform_x): model.predict_on_batch(x), and a concrete "
        "function of tf.function(model(x, training=False)) traced once, its input tensor made "
        "once; the faster median is the baseline (bare_call). 30 warm-up rounds, then "
        f"{options.inference_samples} rounds of path and both bare calls, the order rotating; "
        "ratio = median(path)/median(fastest bare). Then 100 path calls with the loaded model's "
        "serve wrapped by a timer (model_call_inside_path_ms, path_minus_model_call_ms) and a "
        "cProfile of 100 more (ms per call, inflated by the profiler)."
    )
    return figure("inference_path_vs_bare_call", path / bare, "<= 1.2", result), bare


# worker warm-up --------------------------------------------------------------------------------


def forget_prediction(stack: Stack, client: Any) -> None:
    """Delete the cached prediction and the web's dedupe key, so the next request computes."""
    client.delete(*stack.prediction_keys())


def warm_inference_worker(stack: Stack, worker_pid: int) -> int:
    """Send predictions until every pool child has loaded the model; returns how many were sent."""
    client, app = stack.redis(), stack.celery()
    sent = 0

    def all_loaded() -> bool:
        nonlocal sent
        pending = []
        for _ in pool_children(worker_pid):
            forget_prediction(stack, client)
            pending.append(app.send_task("inference.predict", args=[SYMBOL, HORIZON]))
        for result in pending:
            result.get(timeout=120)
        sent += len(pending)
        pids = {p.pid for p in pool_children(worker_pid)}
        loaded = {int(k.rsplit(":", 1)[1]) for k in client.scan_iter(f"{LOADED_KEY_PREFIX}*")}
        return pids <= loaded

    try:
        wait_for(all_loaded, 180, interval=0, what="every inference pool child to load the model")
    finally:
        client.close()
        app.close()
    return sent


# (b) ------------------------------------------------------------------------------------------


def _uncached_request(stack: Stack, client: Any, port: int) -> dict[str, float]:
    """Time one uncached GET /predict; split it with the job record's timestamps."""
    forget_prediction(stack, client)
    wall, started = time.time(), time.perf_counter()
    status, body = http_get(port, PREDICT_PATH)
    total = _ms(started)
    answer = json.loads(body)
    if status != 200 or answer.get("cached") is not False:
        raise RuntimeError(f"uncached predict answered {status}: {body[:300]!r}")
    job_id = client.get(stack.prediction_keys()[1])
    job = JobStore(client, stack.settings.job_ttl).get(job_id) if job_id else None
    if job is None or not job.started_at or not job.finished_at:
        return {"total": total}
    created, begun, done = _iso(job.created_at), _iso(job.started_at), _iso(job.finished_at)
    return {
        "total": total,
        "web_until_job_created": (created - wall) * 1000,
        "queue_until_task_started": (begun - created) * 1000,
        "task_started_until_finished": (done - begun) * 1000,
        "after_task_finished_until_response": total - (done - wall) * 1000,
    }


def _round_trip(app: Any) -> float:
    """Time one trivial task through the inference worker and back."""
    started = time.perf_counter()
    result = app.send_task(TRIVIAL_TASK, args=[1], queue="inference")
    result.get(timeout=30)
    return _ms(started)


def _traced_round_trip(stack: Stack, app: Any, client: Any) -> dict[str, float]:
    """A trivial round trip with a job record, so the worker stamps started/finished (breakdown)."""
    store = JobStore(client, stack.settings.job_ttl)
    job = store.create(kind="bench", task_name=TRIVIAL_TASK, queue="inference")
    wall, started = time.time(), time.perf_counter()
    app.send_task(TRIVIAL_TASK, args=[1], queue="inference", task_id=job.id).get(timeout=30)
    total = _ms(started)
    done = store.get(job.id)
    if done is None or not done.started_at or not done.finished_at:
        return {"total": total}
    begun, finished = _iso(done.started_at), _iso(done.finished_at)
    return {
        "total": total,
        "queue_until_task_started": (begun - wall) * 1000,
        "task_started_until_finished": (finished - begun) * 1000,
        "after_task_finished_until_result": total - (finished - wall) * 1000,
    }


def _medians(parts: list[dict[str, float]]) -> dict[str, float]:
    """Median of each field over samples (fields missing from a sample are skipped)."""
    names = {name for part in parts for name in part} - {"total"}
    return {
        name: round(statistics.median(p[name] for p in parts if name in p), 2)
        for name in sorted(names)
    }


class BareTimer:
    """A child process holding the model: times one bare call whenever asked (figure b)."""

    def __init__(self, stack: Stack, threads: int) -> None:
        out = stack.procs.log_dir / "bench-bare.result.json"
        args = json.dumps({"job": "bare-server"})
        env = {**stack.env, TF_THREADS_ENV: str(threads)}
        with (stack.procs.log_dir / "bench-bare.log").open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tests.bench.children", str(out), args],
                cwd=ROOT,
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                start_new_session=True,
            )
        stack.procs.adopt("bench-bare", self.proc)
        assert self.proc.stdout is not None
        for line in self.proc.stdout:  # anything a library printed comes first
            if line.startswith("ready "):
                self.call = line.split()[1]
                return
        raise RuntimeError(f"the bare timer exited: {stack.procs.log_tail('bench-bare')}")

    def time_one(self) -> float:
        """Milliseconds of one bare call, timed inside the child."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("t\n")
        self.proc.stdin.flush()
        return float(self.proc.stdout.readline())

    def close(self) -> None:
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.write("q\n")
                self.proc.stdin.close()
        self.proc.wait(timeout=30)


def uncached_http_vs_round_trip(
    stack: Stack, web_port: int, bare_call_ms: float, options: Options
) -> dict[str, Any]:
    """Figure b: uncached HTTP predict vs a trivial task round trip plus the bare call.

    All three are measured in this phase, in rotating order, so that they share its machine
    conditions; the bare call runs in a child process that holds the model.
    """
    client, app = stack.redis(), stack.celery()
    timer = BareTimer(stack, threads=max(1, (os.cpu_count() or 1) // 2))
    try:
        steps: dict[str, Callable[[], Any]] = {
            "http": lambda: _uncached_request(stack, client, web_port),
            "trip": lambda: _round_trip(app),
            "bare": timer.time_one,
        }
        for _ in range(10):
            for step in steps.values():
                step()
        samples: dict[str, list[Any]] = {name: [] for name in steps}
        order = list(steps)
        for index in range(options.http_samples):
            shift = index % len(order)
            for name in order[shift:] + order[:shift]:
                samples[name].append(steps[name]())
        traced = [_traced_round_trip(stack, app, client) for _ in range(30)]
    finally:
        timer.close()
        client.close()
        app.close()
    parts: list[dict[str, float]] = samples["http"]
    http_ms = summarize([p["total"] for p in parts])
    trip_ms = summarize(samples["trip"])
    bare_ms = summarize(samples["bare"])
    baseline = trip_ms["median"] + bare_ms["median"]
    detail = {
        "http_ms": http_ms,
        "round_trip_ms": trip_ms,
        "bare_call_ms": bare_ms,
        "bare_call": timer.call,
        "bare_call_ms_from_a": bare_call_ms,
        "baseline_ms": round(baseline, 3),
        "http_breakdown_median_ms": _medians(parts),
        "round_trip_with_job_record_breakdown_median_ms": {
            "total": round(statistics.median(t["total"] for t in traced), 2),
            **_medians(traced),
        },
        "method": (
            f"GET {PREDICT_PATH} on a new connection to gunicorn (docker/gunicorn.conf.py, as the "
            "Procfile starts it) with the Procfile's inference worker (-c 2), its prediction cache "
            "key and dedupe key deleted before each request (not timed), 200 with cached=false "
            f"checked; vs send_task('{TRIVIAL_TASK}', [1], queue='inference').get() on the same "
            "worker plus one bare call of the model on the same window (the faster of "
            "predict_on_batch and a traced function, timed inside a child process that holds "
            "the model, right after an untimed call, so warm as in figure a; bare_call_ms_from_a "
            "is figure a's median for comparison). 10 warm-up rounds, then "
            f"{options.http_samples} rounds of the three, the order rotating, so that all three "
            "share this phase's machine conditions. Breakdown from the job record's timestamps "
            "(same clock); for comparison, 30 more trivial round trips sent with a job record "
            "(so the worker's signals stamp them too; not in the ratio). "
            "ratio = median(http)/(median(round trip) + median(bare call))."
        ),
    }
    return figure(
        "uncached_http_predict_vs_task_roundtrip_plus_bare_call",
        http_ms["median"] / baseline,
        "<= 1.5",
        detail,
    )


# (c) ------------------------------------------------------------------------------------------


def cached_http_vs_bare_flask(
    stack: Stack, web_port: int, bare_port: int, options: Options
) -> dict[str, Any]:
    """Figure c: req/s of cached GET /predict vs a bare Flask app doing one Redis GET."""
    http_get(web_port, PREDICT_PATH)  # computes the prediction if it is not cached yet
    status, body = http_get(web_port, PREDICT_PATH)
    bare_status, bare_body = http_get(bare_port, "/get")
    if status != 200 or json.loads(body).get("cached") is not True or bare_status != 200:
        raise RuntimeError(f"cached predict answered {status}: {body[:300]!r}")
    tool = http_load.generator() if options.load_tool == "auto" else options.load_tool
    redis_pid = stack.procs.pid_of("redis")
    servers = {"predict": stack.procs.pid_of("web"), "bare": stack.procs.pid_of("bare-web")}
    if tool == "python":
        say("  no wrk: the Python load generator (GIL-bound) caps the faster side; see method")
    sides = {"predict": (web_port, PREDICT_PATH), "bare": (bare_port, "/get")}

    def load(side: str, seconds: float) -> dict[str, Any]:
        port, path = sides[side]
        before = tree_cpu_seconds(servers[side]), tree_cpu_seconds(redis_pid)
        result = http_load.run_load(
            stack.procs, port, path, seconds, options.load_connections, tool
        )
        after = tree_cpu_seconds(servers[side]), tree_cpu_seconds(redis_pid)
        per_request = 1000 / max(1, result["requests"])
        result["gunicorn_cpu_ms_per_request"] = round((after[0] - before[0]) * per_request, 4)
        result["redis_cpu_ms_per_request"] = round((after[1] - before[1]) * per_request, 4)
        return result

    for side in sides:
        load(side, 3)  # warm-up
    runs: dict[str, list[dict[str, Any]]] = {"predict": [], "bare": []}
    for index in range(options.load_rounds):
        order = ("predict", "bare") if index % 2 == 0 else ("bare", "predict")
        for side in order:
            runs[side].append(load(side, options.load_seconds))
            say(f"  {side}: {runs[side][-1]['requests_per_s']:.0f} req/s")

    def median_of(side: str, field: str) -> float:
        return round(float(statistics.median(r[field] for r in runs[side])), 3)

    fields = (
        "requests_per_s",
        "p50_ms",
        "p99_ms",
        "gunicorn_cpu_ms_per_request",
        "redis_cpu_ms_per_request",
    )
    detail: dict[str, Any] = {
        **{f"{side}_{f}": median_of(side, f) for side in runs for f in fields},
        "runs": runs,
        "response_bytes": {"predict": len(body), "bare": len(bare_body)},
        "in_process": _web_profile(stack),
        "method": (
            f"{tool}: {options.load_connections} concurrent connections for "
            f"{options.load_seconds:.0f} s per run, {options.load_rounds} rounds alternating "
            f"(ABBA) after 3 s warm-ups; cached GET {PREDICT_PATH} (cache warmed, cached=true "
            "checked) vs GET /get of tests/bench/bare_app.py (one Redis GET of the same cached "
            "prediction) under the same gunicorn config (docker/gunicorn.conf.py: same workers, "
            "worker class). Note: gunicorn's sync worker closes every connection after one "
            "response, so each request opens a new TCP connection on both sides. With the "
            "python generator (threads + http.client, used when wrk is missing) the generator "
            "itself saturates near ~2,000 req/s here, which caps the bare side and flatters the "
            "ratio; wrk is authoritative. *_cpu_ms_per_request: user+system CPU of the gunicorn "
            "process tree and of redis-server during each run (psutil) / requests served. ratio = "
            "median req/s(predict)/median req/s(bare). in_process: the same two handlers "
            "through Flask's test client in one fresh interpreter (500 alternating requests "
            "each, then a cProfile of 500 predict requests), to show where the time goes."
        ),
    }
    ratio = detail["predict_requests_per_s"] / detail["bare_requests_per_s"]
    return figure("cached_http_predict_vs_bare_flask_redis_get", ratio, ">= 1.0", detail)


def _web_profile(stack: Stack) -> dict[str, Any]:
    """Both handlers in process, timed and profiled (no server, no load generator)."""
    args = {"job": "web", "path": PREDICT_PATH, "requests": 500}
    env = {**stack.env, "BENCH_BARE_KEY": stack.prediction_keys()[0]}
    return stack.procs.run_python("bench-web-profile", "tests.bench.children", args, env, 120)


# (d) ------------------------------------------------------------------------------------------


def _post_training(stack: Stack, web_port: int, epochs: int) -> str:
    """POST /api/v1/train/NVDA (forced, fixed epochs); returns the job id."""
    conn = http.client.HTTPConnection("127.0.0.1", web_port, timeout=30)
    try:
        body = json.dumps({"epochs": epochs, "force": True})
        headers = {
            "Authorization": f"Bearer {stack.api_token()}",
            "Content-Type": "application/json",
        }
        conn.request("POST", f"/api/v1/train/{SYMBOL}", body=body, headers=headers)
        response = conn.getresponse()
        answer = json.loads(response.read())
    finally:
        conn.close()
    if response.status != 202:
        raise RuntimeError(f"POST /train answered {response.status}: {answer}")
    return str(answer["task_id"])


def _training_job(stack: Stack, web_port: int, epochs: int) -> dict[str, Any]:
    """Run one training job through the API and the training worker; its timings."""
    client = stack.redis()
    store = JobStore(client, stack.settings.job_ttl)
    job_id = _post_training(stack, web_port, epochs)
    first_epoch_wall: float | None = None

    def finished() -> Any:
        nonlocal first_epoch_wall
        job = store.get(job_id)
        if first_epoch_wall is None and job is not None and job.progress:
            first_epoch_wall = time.time()
        return job if job is not None and job.finished else None

    try:
        job = wait_for(finished, 900, interval=0.05, what=f"training job {job_id}")
    finally:
        client.close()
    if job.state != "succeeded" or not job.started_at or not job.finished_at:
        raise RuntimeError(f"training job {job_id} ended {job.state}: {job.error}")
    started, done = _iso(job.started_at), _iso(job.finished_at)
    result = job.result
    return {
        "task_ms": round((done - started) * 1000, 1),
        "epochs_run": int(result["epochs_run"]),
        "train_and_publish_ms": round(float(result["seconds"]) * 1000, 1),
        "queue_wait_ms": round((started - _iso(job.created_at)) * 1000, 1),
        "started_until_first_epoch_seen_ms": (
            round((first_epoch_wall - started) * 1000, 1) if first_epoch_wall else None
        ),
        "published": bool(result["published"]),
    }


def training_task_vs_bare_fit(stack: Stack, web_port: int, options: Options) -> dict[str, Any]:
    """Figure d: a training job through the API and worker vs a bare model.fit, per epoch."""
    tasks: list[dict[str, Any]] = []
    fits: list[dict[str, Any]] = []
    env = {**stack.env, TF_THREADS_ENV: str(os.cpu_count() or 1)}  # the -c 1 worker's budget
    for index in range(options.train_rounds):
        tasks.append(_training_job(stack, web_port, options.train_epochs))
        say(f"  training job {index + 1}: {tasks[-1]}")
        args = {"job": "fit", "epochs": tasks[-1]["epochs_run"]}
        fits.append(
            stack.procs.run_python(f"bench-fit-{index}", "tests.bench.children", args, env, 900)
        )
        say(f"  bare fit {index + 1}: {fits[-1]}")
    task_per_epoch = statistics.median(t["task_ms"] / t["epochs_run"] for t in tasks)
    fit_per_epoch = statistics.median(f["fit_ms"] / f["epochs_run"] for f in fits)
    detail = {
        "task_ms_per_epoch": round(task_per_epoch, 1),
        "bare_fit_ms_per_epoch": round(fit_per_epoch, 1),
        "tasks": tasks,
        "bare_fits": fits,
        "method": (
            f"POST /api/v1/train/{SYMBOL} {{epochs: {options.train_epochs}, force: true}} with the "
            "bearer token; the Procfile's training worker (-c 1 --max-tasks-per-child 1) runs it; "
            "task time = job record finished_at - started_at (includes the fresh pool child's "
            "TensorFlow import, data load, champion scoring and saving). Bare: in a fresh "
            "interpreter with the worker's TF thread budget, the same bars, features, windows, "
            "split and scalers as training.py, seed_everything, build_model, then only "
            "model.fit(train, validation_data, same batch size, shuffle, no callbacks) timed, for "
            "exactly the epochs the preceding job ran (its EarlyStopping may stop early). "
            f"{options.train_rounds} rounds alternating job, fit; ratio = median(task ms/epoch) / "
            "median(fit ms/epoch)."
        ),
    }
    return figure("training_task_vs_bare_fit", task_per_epoch / fit_per_epoch, "<= 1.3", detail)


# (e) ------------------------------------------------------------------------------------------


def _pool_rss(worker_pid: int) -> dict[str, Any]:
    """RSS (MB) of each pool child of the worker, and their sum."""
    children = {p.pid: round(p.memory_info().rss / MB, 1) for p in pool_children(worker_pid)}
    return {"sum_mb": round(sum(children.values()), 1), "by_pid_mb": children}


class PredictionPump:
    """Keeps a few uncached inference.predict tasks in flight through the worker."""

    def __init__(self, stack: Stack, in_flight: int) -> None:
        self.stack = stack
        self.client = stack.redis()
        self.app = stack.celery()
        self.in_flight = in_flight
        self.computed = 0
        self.cached = 0

    def run_until(self, target: int, timeout: float = 60) -> None:
        """Send tasks until `target` predictions have been computed (not served from cache)."""
        pending: deque[AsyncResult] = deque()
        while self.computed + len(pending) < target or pending:
            while len(pending) < self.in_flight and self.computed + len(pending) < target:
                forget_prediction(self.stack, self.client)
                pending.append(self.app.send_task("inference.predict", args=[SYMBOL, HORIZON]))
            result = pending.popleft().get(timeout=timeout)
            if result["cached"]:
                self.cached += 1
            else:
                self.computed += 1

    def close(self) -> None:
        self.client.close()
        self.app.close()


def worker_rss_growth(stack: Stack, worker_pid: int, served_before: int, options: Options) -> Any:
    """Figure e: the inference pool's RSS after 100 computed predictions vs after N."""
    checkpoints = sorted(
        {100, *range(1000, options.rss_predictions, 1000), options.rss_predictions}
    )
    pump = PredictionPump(stack, options.rss_in_flight)
    trail: list[dict[str, Any]] = []
    started = time.perf_counter()
    try:
        for target in checkpoints:
            pump.run_until(target)
            trail.append(
                {"predictions": pump.computed, "seconds": round(time.perf_counter() - started, 1)}
                | _pool_rss(worker_pid)
            )
            say(f"  {pump.computed} predictions: pool RSS {trail[-1]['sum_mb']} MB")
    finally:
        pump.close()
    first, last = trail[0], trail[-1]
    ratio = last["sum_mb"] / first["sum_mb"]
    detail = {
        "rss_after_first_mb": first["sum_mb"],
        "rss_after_last_mb": last["sum_mb"],
        "growth": round(ratio - 1, 4),
        "predictions_first": first["predictions"],
        "predictions_last": last["predictions"],
        "answered_from_cache_not_counted": pump.cached,
        "pool_pids_unchanged": set(first["by_pid_mb"]) == set(last["by_pid_mb"]),
        "predictions_per_s": round(last["predictions"] / last["seconds"], 1),
        "seconds_for_first_100": first["seconds"],
        "served_by_worker_before_this_phase": served_before,
        "trail": trail,
        "method": (
            "inference.predict('NVDA', 1) sent with send_task and collected with .get(), "
            f"{options.rss_in_flight} in flight, the prediction cache key deleted before each send "
            "(answers that still came from the cache are resent and not counted); RSS = sum over "
            "the -c 2 inference worker's pool children (psutil), read once the pipeline drained "
            "at each checkpoint. ratio = RSS after the last checkpoint / RSS after the first 100."
        ),
    }
    return figure("inference_worker_rss_growth", ratio, "< 1.10", detail)
