"""Memory per loaded model, and figure (j): inference RSS after 200 symbols vs after 20.

One small-but-real model (the default `MLConfig`: LSTM 64+32, 60-day windows, 30 horizons;
one epoch, since the weights' size does not depend on how long they were trained) is trained
on the embedded NVDA series and its version copied under N symbol names (S0001, S0002, ...).
Each name is served from NVDA's embedded series too: issue 15 lets scale measurements reuse the
embedded data under many names, and neither a model's nor a symbol's memory depends on its name.

Each measurement runs in a fresh interpreter over that data root:
- `models`: a `ModelCache` large enough for all N loads each symbol's model (`ModelCache.get`)
  and calls it once; RSS after each step of 20 models gives the memory per loaded model.
- `serve`: the inference service as the worker builds it (`InferenceService` over a
  `ModelCache` of `--cache` models; no Redis cache: this measures the process, not Redis)
  predicts each of the N symbols once; figure (j) = RSS after N symbols / RSS after `--cache`
  symbols, target <= 1.15.
RSS is read with psutil: after `gc.collect()` for the per-model figure (live models only), as
the process stands for figure (j) (the cache's own collections included, none forced).
TensorFlow never runs in the calling process.

Run: `.venv/bin/python -m tests.bench.model_memory [--symbols 200] [--cache 20]` (a table on
stderr, JSON on stdout; about 3 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import gc
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from prometheus_client import REGISTRY

from stockpred.infra.files import atomic_write
from stockpred.ml.prediction_store import PredictionCache
from stockpred.ml.registry import CURRENT_FILE, ModelRegistry
from tests.bench.stats import figure

SOURCE = "NVDA"  # the embedded series every name is trained on and served from
MIB = 1024 * 1024
TARGET = "<= 1.15"


def symbol_names(count: int) -> list[str]:
    """The N symbol names the one model is copied under."""
    return [f"S{n:04d}" for n in range(1, count + 1)]


def copy_version(registry: ModelRegistry, symbol: str, version: str, names: list[str]) -> None:
    """Publish `symbol`'s `version` under each of `names` (its files copied, then the pointer)."""
    for name in names:
        for folder in (registry.models_dir, registry.scalers_dir):
            shutil.copytree(folder / symbol / version, folder / name / version)
        atomic_write(registry.models_dir / name / CURRENT_FILE, version + "\n")


def _registry(root: Path) -> ModelRegistry:
    return ModelRegistry(root / "ml_models", root / "scalers")


def _rss_mib(*, collect: bool) -> float:
    import psutil

    if collect:
        gc.collect()
    return round(psutil.Process().memory_info().rss / MIB, 1)


# children (fresh interpreters) --------------------------------------------------------------


def _prepare(root: Path, args: dict[str, Any]) -> dict[str, Any]:
    """Train one model on the embedded series and publish it under every name."""
    from stockpred.market.embedded import EmbeddedSource
    from stockpred.ml.config import MLConfig
    from stockpred.ml.training import train_and_publish

    registry = _registry(root)
    started = time.perf_counter()
    result = train_and_publish(
        SOURCE,
        EmbeddedSource().fetch(SOURCE).frame,
        config=MLConfig(),
        registry=registry,
        band=0.01,
        epochs=int(args["epochs"]),
        force=True,
        data_source="embedded",
    )
    trained = time.perf_counter() - started
    copy_version(registry, SOURCE, result.version, symbol_names(int(args["symbols"])))
    files = registry.models_dir / SOURCE / result.version
    return {
        "version": result.version,
        "train_seconds": round(trained, 1),
        "model_file_kib": round(sum(p.stat().st_size for p in files.iterdir()) / 1024, 1),
    }


def _models(root: Path, args: dict[str, Any]) -> dict[str, Any]:
    """Load every name's model into one unbounded-enough cache; RSS every `step` models."""
    import numpy as np

    from stockpred.ml.predict import ModelCache

    names = symbol_names(int(args["symbols"]))
    step = int(args["step"])
    cache = ModelCache(_registry(root), max_models=len(names))
    before = _rss_mib(collect=True)
    trail = []
    for count, name in enumerate(names, start=1):
        loaded = cache.get(name)
        loaded.serve(np.zeros((1, *loaded.model.input_shape[1:]), dtype="float32"))
        if count == 1 or count % step == 0 or count == len(names):
            trail.append({"models": count, "rss_mib": _rss_mib(collect=True)})
    first, last = trail[0], trail[-1]
    per_model = (last["rss_mib"] - first["rss_mib"]) / (last["models"] - first["models"])
    return {
        "rss_before_first_load_mib": before,
        "rss_after_first_load_mib": first["rss_mib"],
        "mib_per_model": round(per_model, 2),
        "trail": trail,
    }


class _Uncached(PredictionCache):
    """Keeps nothing: this measures the inference process, not Redis."""

    def __init__(self) -> None:
        """Hold no Redis client."""

    def put(self, key: str, encoded: str) -> None:
        """Drop the result."""

    def flush(self) -> None:
        """Nothing is pending."""


def _serve(root: Path, args: dict[str, Any]) -> dict[str, Any]:
    """Predict each name once through InferenceService with a bounded cache; RSS on the way."""
    from stockpred.infra.background import BackgroundWriter
    from stockpred.market.embedded import EmbeddedSource
    from stockpred.ml.predict import InferenceService, ModelCache
    from stockpred.ml.prediction_store import PredictionJournal

    bars = EmbeddedSource().fetch(SOURCE).frame
    fresh = SimpleNamespace(as_of=str(bars.index[-1].date()), source="embedded")
    names = symbol_names(int(args["symbols"]))
    bound = int(args["cache"])
    service = InferenceService(
        models=ModelCache(_registry(root), max_models=bound),
        refresh=lambda _symbol: fresh,
        history=lambda _symbol: bars,
        cache=_Uncached(),
        journal=PredictionJournal(root / "predictions"),
        writer=BackgroundWriter("bench-journal"),
        buy_threshold=1.01,
        sell_threshold=0.99,
    )
    step = int(args["step"])
    trail = []
    started = time.perf_counter()
    for count, name in enumerate(names, start=1):
        answer = service.predict(name, 1)
        assert answer["symbol"] == name and not answer["cached"]
        if count in (1, bound) or count % step == 0 or count == len(names):
            service.flush()
            trail.append(
                {
                    "symbols": count,
                    "rss_mib": _rss_mib(collect=False),
                    "seconds": round(time.perf_counter() - started, 1),
                    "models_held": len(service.models.loaded()),
                }
            )
    at_bound = next(t for t in trail if t["symbols"] == bound)
    return {
        "rss_after_first_symbol_mib": trail[0]["rss_mib"],
        "rss_after_cache_size_symbols_mib": at_bound["rss_mib"],
        "rss_after_all_symbols_mib": trail[-1]["rss_mib"],
        "evictions": int(REGISTRY.get_sample_value("stockpred_model_evictions_total") or 0),
        "trail": trail,
    }


JOBS = {"prepare": _prepare, "models": _models, "serve": _serve}


def _child(job: str, root: Path, raw: str) -> None:
    """Run one job in this (fresh) interpreter; JSON on the last line of stdout."""
    from stockpred.infra.tf_runtime import tensorflow

    tensorflow()  # configured as the workers configure it (threads, logging)
    print(json.dumps(JOBS[job](root, json.loads(raw))), flush=True)


# the calling side (no TensorFlow) -------------------------------------------------------------


def run_job(job: str, root: Path, args: dict[str, Any], timeout: float = 900) -> dict[str, Any]:
    """Run a job in a fresh interpreter and return its JSON."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.bench.model_memory",
            "--child",
            job,
            str(root),
            json.dumps(args),
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"model_memory {job} failed ({done.returncode}): {done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def measure(
    root: Path, *, symbols: int = 200, cache: int = 20, per_model: bool = True
) -> dict[str, Any]:
    """Prepare the models under `root`, then measure; figure (j) and the per-model memory."""
    _say(f"training one model and copying it under {symbols} names ...")
    prepared = run_job("prepare", root, {"symbols": symbols, "epochs": 1})
    detail: dict[str, Any] = {"prepared": prepared}
    if per_model:
        _say(f"loading {symbols} models into one process ...")
        detail["models"] = run_job("models", root, {"symbols": symbols, "step": 20})
        _say(f"  {detail['models']['mib_per_model']} MiB RSS per loaded model")
    _say(f"serving {symbols} symbols with a cache of {cache} ...")
    served = run_job("serve", root, {"symbols": symbols, "cache": cache, "step": 20})
    detail["serve"] = served
    ratio = served["rss_after_all_symbols_mib"] / served["rss_after_cache_size_symbols_mib"]
    detail["method"] = (
        f"One model (default MLConfig, 1 epoch) trained on the embedded {SOURCE} series and "
        f"copied under {symbols} names, each served from the same embedded series (issue 15 "
        "allows the reuse). A fresh interpreter builds InferenceService over a ModelCache of "
        f"{cache} models (no Redis cache) and predicts each name once (horizon 1); RSS "
        "(psutil, no collection forced) after the last symbol / after the cache-size-th symbol."
    )
    return figure(
        f"inference_rss_{symbols}_symbols_vs_{cache}_with_cache_of_{cache}", ratio, TARGET, detail
    )


def model_cache_rss(symbols: int = 200, cache: int = 20) -> dict[str, Any]:
    """Figure (j) for `make bench`, in a temp data root of its own."""
    root = Path(tempfile.mkdtemp(prefix="stockpred-model-memory-"))
    try:
        return measure(root, symbols=symbols, cache=cache, per_model=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main(argv: list[str]) -> int:
    """Measure memory per model and figure (j); print a table to stderr, JSON to stdout."""
    if argv[:1] == ["--child"]:
        _child(argv[1], Path(argv[2]), argv[3])
        return 0
    parser = argparse.ArgumentParser(prog="python -m tests.bench.model_memory", description=__doc__)
    parser.add_argument("--symbols", type=int, default=200)
    parser.add_argument("--cache", type=int, default=20)
    options = parser.parse_args(argv)
    if options.cache < 1 or options.symbols <= options.cache:
        parser.error("--cache must be at least 1 and --symbols larger than --cache")
    result = model_cache_rss(options.symbols, options.cache)
    models, served = result["detail"]["models"], result["detail"]["serve"]
    _say(
        f"RSS before any model {models['rss_before_first_load_mib']} MiB, after one "
        f"{models['rss_after_first_load_mib']} MiB, after {options.symbols} "
        f"{models['trail'][-1]['rss_mib']} MiB: {models['mib_per_model']} MiB per loaded model"
    )
    _say(
        f"serving with a cache of {options.cache}: RSS after {options.cache} symbols "
        f"{served['rss_after_cache_size_symbols_mib']} MiB, after {options.symbols} "
        f"{served['rss_after_all_symbols_mib']} MiB, ratio {result['ratio']} ({TARGET}); "
        f"{served['evictions']} evictions"
    )
    print(json.dumps(result, indent=2), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
