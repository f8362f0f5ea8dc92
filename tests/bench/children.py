"""Benchmark work run in fresh interpreters: TensorFlow never runs in the bench process itself.

`python -m tests.bench.children <out.json> '<json args>'` with args["job"] one of `train` (the
initial model), `inference` (figure a), `fit` (the bare side of figure d) or `web` (an in-process
profile of the cached predict route and the bare app, evidence for figure c). The environment is
the benchmark's temp data root, so `get_settings()` here is the system under test's.
"""

from __future__ import annotations

import cProfile
import json
import pstats
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from stockpred.infra.logs import configure_logging
from stockpred.infra.redis_client import process_client
from stockpred.market.factory import build_market_data
from stockpred.market.history import HistoryStore
from stockpred.ml.config import MLConfig, load_ml_config
from stockpred.ml.dataset import windows_at
from stockpred.ml.features import compute_features
from stockpred.ml.registry import ModelRegistry
from stockpred.paths import DataTree
from stockpred.settings import get_settings
from tests.bench.stats import summarize

SYMBOL = "NVDA"
HORIZON = 1


def _ms(started_ns: int) -> float:
    return (time.perf_counter_ns() - started_ns) / 1e6


def _ml_config() -> MLConfig:
    """ml_config.json of the data root, as the training task reads it."""
    return load_ml_config(get_settings().data_dir / "ml_config.json")


def train(args: dict[str, Any]) -> dict[str, Any]:
    """Refresh NVDA's bars and train and publish a first model (few epochs)."""
    from stockpred.ml.training import train_and_publish

    settings = get_settings()
    tree = DataTree.from_settings(settings)
    market = build_market_data(settings)
    bars = market.bars(SYMBOL)
    entry = market.cache.load(SYMBOL)
    result = train_and_publish(
        SYMBOL,
        bars,
        config=_ml_config(),
        registry=ModelRegistry(tree.ml_models, tree.scalers),
        band=settings.buy_threshold - 1,
        epochs=int(args["epochs"]),
        force=True,
        data_source=entry.source if entry else "unknown",
    )
    return result.to_dict()


def _profile(call: Callable[[], Any], before: Callable[[], Any], calls: int) -> list[list[Any]]:
    """cProfile of `calls` calls (each after an unprofiled `before`): top 25 by cumulative ms."""
    profiler = cProfile.Profile()
    for _ in range(calls):
        before()
        profiler.enable()
        call()
        profiler.disable()
    raw: dict[Any, Any] = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    rows = [
        [
            f"{Path(file).name}:{line}({func})",
            round(ct * 1000 / calls, 3),
            round(tt * 1000 / calls, 3),
        ]
        for (file, line, func), (_, _, tt, ct, _) in raw.items()
        if "disable" not in func
    ]
    return sorted(rows, key=lambda row: -row[1])[:25]


def _bare_input(service: Any) -> tuple[Any, float, np.ndarray]:
    """(loaded model, its expected next-day price, the scaled last window) as the path builds."""
    from tasks import context

    loaded = service.models.get(SYMBOL)
    features = compute_features(context.market().history.load(SYMBOL))
    anchors = np.array([len(features) - 1])
    columns = tuple(loaded.metadata["features"])
    window = windows_at(features, columns, loaded.sequence_length, 0, anchors)
    x = loaded.scalers.transform_x(window.x)
    log_return = float(loaded.scalers.inverse_y(np.asarray(loaded.model.predict_on_batch(x)))[0][0])
    expected = round(float(features["close"].iloc[-1]) * float(np.exp(log_return)), 4)
    return loaded, expected, x


def _alternate(
    path: Callable[[], dict[str, Any]],
    before_path: Callable[[], Any],
    bare: dict[str, Callable[[], Any]],
    counts: tuple[int, int],
) -> tuple[dict[str, list[float]], int]:
    """Time the path and each bare call in rounds, rotating their order; warm-up rounds dropped.

    `before_path` runs untimed before every call; `counts` is (warm-up rounds, timed rounds).
    """
    warmup, samples = counts
    calls: dict[str, Callable[[], Any]] = {"path": path, **bare}
    times: dict[str, list[float]] = {side: [] for side in calls}
    cached = 0
    order = list(calls)
    for index in range(warmup + samples):
        shift = index % len(order)
        for side in order[shift:] + order[:shift]:
            before_path()  # untimed, before every call: no earlier call's writes still running
            started = time.perf_counter_ns()
            result = calls[side]()
            if index >= warmup:
                times[side].append(_ms(started))
            if side == "path" and index >= warmup:
                cached += bool(result["cached"])
    return times, cached


def _traced_call(model: Any, x: np.ndarray) -> Callable[[], Any]:
    """The barest traced call: a concrete function of the model, its input tensor made once."""
    from stockpred.infra.tf_runtime import tensorflow

    tf = tensorflow()
    spec = tf.TensorSpec(model.input_shape, tf.float32)
    traced = tf.function(lambda t: model(t, training=False), input_signature=[spec])
    concrete = traced.get_concrete_function()
    tensor = tf.constant(x)
    concrete(tensor)
    return lambda: concrete(tensor).numpy()


def _model_share(
    path: Callable[[], Any], forget: Callable[[], Any], loaded: Any, calls: int
) -> dict[str, Any]:
    """The model call timed inside the path (a wrapper on the model's serve), and the rest."""
    inner: list[float] = []
    totals: list[float] = []
    real = loaded.serve

    def wrapped(x: Any) -> Any:
        started = time.perf_counter_ns()
        out = real(x)
        inner.append(_ms(started))
        return out

    loaded.serve = wrapped
    try:
        for _ in range(calls):
            forget()
            started = time.perf_counter_ns()
            path()
            totals.append(_ms(started))
    finally:
        loaded.serve = real
    return {
        "model_call_inside_path_ms": summarize(inner),
        "path_minus_model_call_ms": summarize([t - i for t, i in zip(totals, inner, strict=True)]),
    }


def inference(args: dict[str, Any]) -> dict[str, Any]:
    """Figure a: InferenceService.predict (a computed prediction) vs the fastest bare call."""
    from tasks import inference as inference_tasks

    settings = get_settings()
    configure_logging(settings, role="bench-inference")  # the worker's logging, as in a pool child
    service = inference_tasks.service()
    client = process_client(settings)
    key = str(args["prediction_key"])

    def forget() -> None:
        service.flush()  # the previous prediction's background lines are written (untimed)
        client.delete(key)

    def path_call() -> dict[str, Any]:
        return service.predict(SYMBOL, HORIZON)

    # The LSTM's serving path is what figure (a) measures. On the embedded NVDA bars the
    # backtest seldom finds it significantly better than naive, and a naive champion's path
    # calls no model at all; so this process's copy of the version's metadata names the LSTM.
    champion = service.models.get(SYMBOL).metadata.setdefault("champion", {})
    chosen_at_training = champion.get("forecaster", "lstm")
    champion.update(forecaster="lstm", why="figure (a) measures the LSTM's path")
    forget()
    first = path_call()
    if first.get("forecaster") != "lstm":
        raise RuntimeError(f"the path answered with {first.get('forecaster')!r}, not the LSTM")
    service.flush()  # the cache write's reply is read late: wait for it before checking
    if first["cached"] or not client.exists(key):
        raise RuntimeError(f"the prediction was not cached under {key}; the key format changed?")
    loaded, expected, x = _bare_input(service)
    bare = {
        "predict_on_batch": lambda: loaded.model.predict_on_batch(x),
        "traced_function": _traced_call(loaded.model, x),
    }
    times, cached = _alternate(path_call, forget, bare, (int(args["warmup"]), int(args["samples"])))
    background: list[float] = []
    for _ in range(100):
        forget()
        path_call()
        started = time.perf_counter_ns()
        service.flush()
        background.append(_ms(started))
    medians = {name: summarize(times[name])["median"] for name in bare}
    fastest = min(medians, key=lambda name: medians[name])
    return {
        "path_ms": summarize(times["path"]),
        "bare_ms": summarize(times[fastest]),
        "bare_call": fastest,
        "bare_ms_by_call": {name: summarize(times[name]) for name in bare},
        "cached_answers_during_timing": cached,
        "background_lines_ms_after_return": summarize(background),
        "same_window_check": abs(first["predicted_price"] - expected) < 1e-3,
        "model_version": loaded.version,
        "champion_at_training": chosen_at_training,
        "window_shape": list(x.shape),
        "tf_intra_op_threads": _tf_threads(),
        **_model_share(path_call, forget, loaded, int(args["profile"])),
        "profile_top_cumulative_ms_per_call": _profile(path_call, forget, int(args["profile"])),
    }


def _tf_threads() -> int:
    from stockpred.infra.tf_runtime import tensorflow

    return int(tensorflow().config.threading.get_intra_op_parallelism_threads())


def fit(args: dict[str, Any]) -> dict[str, Any]:
    """Figure d, bare side: model.fit on the arrays training builds, nothing else timed."""
    started = time.perf_counter_ns()
    from stockpred.infra.tf_runtime import tensorflow
    from stockpred.ml.training import new_model, prepare_training_data

    tensorflow()
    import_ms = _ms(started)
    config = _ml_config()
    bars = HistoryStore(DataTree.from_settings(get_settings()).stock_historical).load(SYMBOL)
    assert bars is not None
    data = prepare_training_data(bars, config)  # the very arrays a training task builds
    split, scalers = data.split, data.scalers
    train_x, train_y = scalers.transform_x(split.train.x), scalers.transform_y(split.train.y)
    val_x = scalers.transform_x(split.validation.x)
    val_y = scalers.transform_y(split.validation.y)
    model = new_model(config)
    epochs = int(args["epochs"])
    started = time.perf_counter_ns()
    history = model.fit(
        train_x,
        train_y,
        validation_data=(val_x, val_y),
        epochs=epochs,
        batch_size=config.batch_size,
        shuffle=True,
        verbose=0,
    )
    fit_ms = _ms(started)
    return {
        "fit_ms": round(fit_ms, 1),
        "epochs_run": len(history.history["loss"]),
        "import_tensorflow_ms": round(import_ms, 1),
        "train_windows": len(split.train),
        "validation_windows": len(split.validation),
        "batch_size": config.batch_size,
        "tf_intra_op_threads": _tf_threads(),
    }


def web(args: dict[str, Any]) -> dict[str, Any]:
    """Per-request cost of cached GET /predict vs the bare app, in process (Flask test client)."""
    from tests.bench import bare_app
    from web import create_app

    configure_logging(get_settings(), role="web")  # as docker/gunicorn.conf.py's hooks do
    requests = int(args["requests"])
    clients = {"predict": create_app().test_client(), "bare": bare_app.app.test_client()}
    paths = {"predict": str(args["path"]), "bare": "/get"}
    times: dict[str, list[float]] = {"predict": [], "bare": []}

    def call(side: str) -> None:
        response = clients[side].get(paths[side])
        if response.status_code != 200:
            raise RuntimeError(f"{side} answered {response.status_code}")

    for _ in range(50):
        call("predict")
        call("bare")
    for index in range(requests):
        for side in ("predict", "bare") if index % 2 == 0 else ("bare", "predict"):
            started = time.perf_counter_ns()
            call(side)
            times[side].append(_ms(started))
    return {
        "test_client_ms": {side: summarize(values) for side, values in times.items()},
        "predict_profile_top_cumulative_ms_per_call": _profile(
            lambda: call("predict"), lambda: None, requests
        ),
    }


def bare_server(args: dict[str, Any]) -> dict[str, Any]:
    """Time one bare model call per request line on stdin (figure b's baseline, same phase).

    Answers `ready <call>` once the model is loaded and the faster bare call chosen, then, per
    `t` line, one untimed call and one line with the milliseconds of the next (warm, as in
    figure a); stops at `q` or end of input.
    """
    from tasks import inference as inference_tasks

    configure_logging(get_settings(), role="bench-bare", stdout=False)
    loaded, _, x = _bare_input(inference_tasks.service())
    calls: dict[str, Callable[[], Any]] = {
        "predict_on_batch": lambda: loaded.model.predict_on_batch(x),
        "traced_function": _traced_call(loaded.model, x),
    }
    medians = {}
    for name, call in calls.items():
        for _ in range(30):
            call()
        times = []
        for _ in range(100):
            started = time.perf_counter_ns()
            call()
            times.append(_ms(started))
        medians[name] = summarize(times)["median"]
    chosen = min(medians, key=lambda name: medians[name])
    fastest = calls[chosen]
    print(f"ready {chosen}", flush=True)
    served = 0
    for line in sys.stdin:
        if line.strip() != "t":
            break
        fastest()  # untimed: the timed call runs warm, as figure a's bare calls do
        started = time.perf_counter_ns()
        fastest()
        print(f"{_ms(started):.4f}", flush=True)
        served += 1
    return {"call": chosen, "served": served, "warm_medians_ms": medians}


JOBS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "train": train,
    "inference": inference,
    "fit": fit,
    "web": web,
    "bare-server": bare_server,
}


def main(argv: list[str]) -> int:
    """Run the job named in the JSON args; write its result to the output path."""
    out, args = Path(argv[1]), json.loads(argv[2])
    result = JOBS[args["job"]](args)
    out.write_text(json.dumps(result, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
