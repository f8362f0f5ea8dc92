"""Figure (i)'s reading of the model cache's log lines (tests/bench/daily_run_figures.py).

The lines are written by a real `ModelCache` through the application's log format and context
filter (only the Keras load is replaced, as in tests/unit/ml/test_model_cache.py); the figure
itself needs a `make run` and 200 models, so it is measured by `make bench`, not here.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from stockpred.infra.logs import LOG_FORMAT, ContextFilter, log_context
from stockpred.ml.predict import ModelCache
from stockpred.ml.registry import ModelRegistry
from tests.bench.daily_run_figures import CacheLog, check_cache_log, read_cache_log
from tests.unit.ml.test_model_cache import CountingCollector, RecordingLoader, publish

NAMES = ["S0001", "S0002", "S0003", "S0004"]


@pytest.fixture
def logs(tmp_path: Path) -> Iterator[Path]:
    """A folder receiving the model cache's lines in the application's format."""
    folder = tmp_path / "logs"
    folder.mkdir()
    handler = logging.FileHandler(folder / "celery.log")
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    handler.addFilter(ContextFilter())
    logger = logging.getLogger("stockpred.ml.predict")
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield folder
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)
        handler.close()


@pytest.fixture
def registry(tmp_path: Path) -> ModelRegistry:
    """One version published under every name."""
    registry = ModelRegistry(tmp_path / "ml_models", tmp_path / "scalers")
    for name in NAMES:
        publish(registry, name, "v1")
    return registry


def serve(registry: ModelRegistry, names: list[str], bound: int) -> None:
    """Ask a cache of `bound` models for each name in turn, each in a task's log context."""
    cache = ModelCache(
        registry, max_models=bound, load=RecordingLoader(), collect=CountingCollector()
    )
    for index, name in enumerate(names):
        with log_context(task="inference.predict", task_id=f"task-{index}", symbol=name):
            cache.get(name)


def test_loads_and_evictions_are_read_per_process_with_their_task_ids(
    registry: ModelRegistry, logs: Path
) -> None:
    serve(registry, NAMES, bound=2)
    found = read_cache_log(logs, set(NAMES))
    assert [sum(counter.values()) for counter in found.loads.values()] == [4]
    assert list(found.evictions.values()) == [2]
    assert len(found.load_seconds) == 4
    assert found.loaders["S0003"][0].endswith("/task-2")
    assert check_cache_log(found, NAMES, cache=2) == {}


def test_a_model_loaded_twice_by_one_process_fails_the_figure(
    registry: ModelRegistry, logs: Path
) -> None:
    serve(registry, [*NAMES, "S0001"], bound=2)  # S0001 evicted, then asked for again
    with pytest.raises(AssertionError, match="loaded models more than once"):
        check_cache_log(read_cache_log(logs, set(NAMES)), NAMES, cache=2)


def test_evictions_other_than_the_loads_past_the_bound_fail_the_figure(
    registry: ModelRegistry, logs: Path
) -> None:
    serve(registry, NAMES, bound=2)
    with pytest.raises(AssertionError, match="evicted 2, not 1"):
        check_cache_log(read_cache_log(logs, set(NAMES)), NAMES, cache=3)


def test_a_name_never_loaded_fails_the_figure() -> None:
    with pytest.raises(AssertionError, match="never loaded"):
        check_cache_log(CacheLog(), ["S0001"], cache=2)
