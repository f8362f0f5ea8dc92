"""The per-process model cache: bounded, least recently used dropped first, versions followed.

Versions are real registry folders and pointers on disk; only the Keras load and the garbage
collection are replaced by recorders (tests/integration/test_model_cache.py loads real models
and lets the cache collect them).
"""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from stockpred.ml.forecast import LoadedModel
from stockpred.ml.predict import ModelCache, NoModel
from stockpred.ml.registry import (
    METADATA_FILE,
    MODEL_FILE,
    SCALER_FILE,
    DamagedVersion,
    ModelRegistry,
    VersionInfo,
)
from stockpred.settings import Settings, SettingsError, load_settings
from tests.conftest import clean_environ
from tests.support import ROOT


class RecordingLoader:
    """Loads a version as a LoadedModel without Keras, recording (symbol, version) per load."""

    def __init__(self) -> None:
        self.loads: list[tuple[str, str]] = []
        self.refuse: set[str] = set()

    def __call__(self, info: VersionInfo) -> LoadedModel:
        if info.symbol in self.refuse:
            raise DamagedVersion(f"{info.symbol} refused by the test")
        self.loads.append((info.symbol, info.version))
        return LoadedModel(info.symbol, info.version, info.metadata, None, None, 0.001)


class CountingCollector:
    """Stands in for gc.collect: counts the collections the cache asks for."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> int:
        self.calls += 1
        return 0


def publish(registry: ModelRegistry, symbol: str, version: str) -> None:
    """Write a complete (empty-weights) version on disk and point `current` at it."""
    model_dir = registry.models_dir / symbol / version
    scaler_dir = registry.scalers_dir / symbol / version
    model_dir.mkdir(parents=True)
    scaler_dir.mkdir(parents=True)
    (model_dir / MODEL_FILE).write_bytes(b"")
    (model_dir / METADATA_FILE).write_text('{"max_horizon": 1}')
    (scaler_dir / SCALER_FILE).write_bytes(b"")
    registry.publish(symbol, version)


def sample(name: str, labels: dict[str, str] | None = None) -> float:
    """This process's value of a worker metric sample (0 when never set)."""
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


@pytest.fixture
def registry(tmp_path: Path) -> ModelRegistry:
    """A registry with version v1 published for AAA, BBB, CCC and DDD."""
    models = ModelRegistry(tmp_path / "ml_models", tmp_path / "scalers")
    for symbol in ("AAA", "BBB", "CCC", "DDD"):
        publish(models, symbol, "v1")
    return models


def test_the_cache_holds_at_most_its_bound_and_counts_each_eviction(
    registry: ModelRegistry,
) -> None:
    loader = RecordingLoader()
    cache = ModelCache(registry, max_models=2, load=loader, collect=CountingCollector())
    evictions = sample("stockpred_model_evictions_total")
    absent = sample("stockpred_model_loads_total", {"reason": "absent"})
    for symbol in ("AAA", "BBB", "CCC", "DDD"):
        assert cache.get(symbol).symbol == symbol
        assert len(cache.loaded()) <= 2
    assert cache.loaded() == {"CCC": "v1", "DDD": "v1"}
    assert sample("stockpred_model_evictions_total") - evictions == 2
    assert sample("stockpred_model_loads_total", {"reason": "absent"}) - absent == 4
    assert sample("stockpred_models_loaded") == 2
    assert sample("stockpred_model_cache_capacity") == 2


def test_the_least_recently_used_model_is_evicted_and_loaded_again_when_asked(
    registry: ModelRegistry,
) -> None:
    loader = RecordingLoader()
    cache = ModelCache(registry, max_models=2, load=loader, collect=CountingCollector())
    cache.get("AAA")
    cache.get("BBB")
    cache.get("AAA")  # a hit: AAA is now the most recently used, BBB the least
    cache.get("CCC")
    assert set(cache.loaded()) == {"AAA", "CCC"}
    cache.get("BBB")  # evicted earlier: loaded again, and AAA (least recent now) makes room
    assert set(cache.loaded()) == {"CCC", "BBB"}
    assert loader.loads == [("AAA", "v1"), ("BBB", "v1"), ("CCC", "v1"), ("BBB", "v1")]
    cache.get("CCC")
    cache.get("BBB")
    assert len(loader.loads) == 4  # hits load nothing


def test_a_new_version_replaces_the_old_one_without_an_eviction(
    registry: ModelRegistry,
) -> None:
    loader = RecordingLoader()
    cache = ModelCache(registry, max_models=2, load=loader, collect=CountingCollector())
    cache.get("AAA")
    cache.get("BBB")
    evictions = sample("stockpred_model_evictions_total")
    changed = sample("stockpred_model_loads_total", {"reason": "version_changed"})
    publish(registry, "AAA", "v2")
    assert cache.get("AAA").version == "v2"
    assert cache.loaded() == {"AAA": "v2", "BBB": "v1"}
    assert sample("stockpred_model_evictions_total") == evictions
    assert sample("stockpred_model_loads_total", {"reason": "version_changed"}) - changed == 1
    assert cache.get("AAA").version == "v2"
    assert loader.loads == [("AAA", "v1"), ("BBB", "v1"), ("AAA", "v2")]


def test_a_failed_load_evicts_nothing(registry: ModelRegistry) -> None:
    loader = RecordingLoader()
    cache = ModelCache(registry, max_models=2, load=loader, collect=CountingCollector())
    cache.get("AAA")
    cache.get("BBB")
    loader.refuse.add("CCC")
    with pytest.raises(DamagedVersion):
        cache.get("CCC")
    assert cache.loaded() == {"AAA": "v1", "BBB": "v1"}
    with pytest.raises(NoModel):
        cache.get("ZZZ")


def test_on_load_may_list_the_loaded_models_from_under_the_lock(
    registry: ModelRegistry,
) -> None:
    seen: list[dict[str, str]] = []
    cache: ModelCache = ModelCache(
        registry,
        on_load=lambda _: seen.append(cache.loaded()),
        max_models=1,
        load=RecordingLoader(),
        collect=CountingCollector(),
    )

    def ask() -> None:
        cache.get("AAA")
        cache.get("BBB")

    thread = threading.Thread(target=ask, daemon=True)
    thread.start()
    thread.join(10)
    assert not thread.is_alive(), "on_load calling loaded() deadlocked"
    assert seen == [{"AAA": "v1"}, {"BBB": "v1"}]


def test_threads_sharing_the_cache_never_exceed_its_bound(registry: ModelRegistry) -> None:
    loader = RecordingLoader()
    cache = ModelCache(registry, max_models=3, load=loader, collect=CountingCollector())
    failures: list[BaseException] = []
    sizes: list[int] = []

    def serve(offset: int) -> None:
        symbols = ("AAA", "BBB", "CCC", "DDD")
        try:
            for i in range(200):
                cache.get(symbols[(i + offset) % 4])
                sizes.append(len(cache.loaded()))
        except BaseException as exc:  # reported by the assertion below
            failures.append(exc)

    threads = [threading.Thread(target=serve, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not failures
    assert max(sizes) == 3


def test_dropped_models_are_collected_after_every_quarter_of_the_bound(
    tmp_path: Path,
) -> None:
    registry = ModelRegistry(tmp_path / "ml_models", tmp_path / "scalers")
    names = [f"S{n:02d}" for n in range(12)]
    for name in names:
        publish(registry, name, "v1")
    collector = CountingCollector()
    cache = ModelCache(registry, max_models=8, load=RecordingLoader(), collect=collector)
    for name in names[:8]:
        cache.get(name)
    assert collector.calls == 0  # nothing dropped yet
    cache.get(names[8])  # one eviction: 8 // 4 = 2 drops make a collection
    assert collector.calls == 0
    cache.get(names[9])
    assert collector.calls == 1
    publish(registry, names[9], "v2")
    cache.get(names[9])  # a replaced version is a dropped model too
    cache.get(names[10])
    assert collector.calls == 2
    assert len(cache.loaded()) == 8


def test_the_bound_is_at_least_one(registry: ModelRegistry) -> None:
    with pytest.raises(ValueError, match="at least one"):
        ModelCache(registry, max_models=0, load=RecordingLoader(), collect=CountingCollector())


def test_model_cache_size_is_a_setting_of_at_least_one(settings: Settings, tmp_path: Path) -> None:
    assert settings.model_cache_size == 20
    assert (
        load_settings(
            {"STOCKPRED_DATA_DIR": str(tmp_path), "MODEL_CACHE_SIZE": "200"}
        ).model_cache_size
        == 200
    )
    for bad in ("0", "-1", "many"):
        with pytest.raises(SettingsError, match="MODEL_CACHE_SIZE"):
            load_settings({"STOCKPRED_DATA_DIR": str(tmp_path), "MODEL_CACHE_SIZE": bad})


def test_the_inference_worker_builds_its_cache_with_model_cache_size(
    settings: Settings, data_env: dict[str, str]
) -> None:
    code = "from tasks.inference import service; print(service().models.max_models)"
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**data_env, "MODEL_CACHE_SIZE": "7"},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "7"


CHILD = """
import sys
from pathlib import Path
from stockpred.ml.predict import ModelCache
from stockpred.ml.registry import ModelRegistry
from tests.unit.ml.test_model_cache import CountingCollector, RecordingLoader
root = Path(sys.argv[1])
registry = ModelRegistry(root / "ml_models", root / "scalers")
cache = ModelCache(registry, max_models=2, load=RecordingLoader(), collect=CountingCollector())
for symbol in ("AAA", "BBB", "CCC", "DDD"):
    cache.get(symbol)
"""


def test_pool_children_metrics_add_up_through_the_multiprocess_files(
    registry: ModelRegistry, tmp_path: Path
) -> None:
    from prometheus_client import CollectorRegistry
    from prometheus_client.multiprocess import MultiProcessCollector

    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    env = {**clean_environ(), "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
    for _ in range(2):  # two pool children, as `stockpred exporter` aggregates them
        subprocess.run(
            [sys.executable, "-c", CHILD, str(registry.models_dir.parent)],
            env=env,
            cwd=ROOT,
            check=True,
            timeout=120,
        )
    collected = CollectorRegistry()
    MultiProcessCollector(collected, path=str(metrics_dir))
    assert collected.get_sample_value("stockpred_model_evictions_total") == 4
    assert collected.get_sample_value("stockpred_model_loads_total", {"reason": "absent"}) == 8
    capacity = [
        s
        for metric in collected.collect()
        if metric.name == "stockpred_model_cache_capacity"
        for s in metric.samples
    ]
    assert len(capacity) == 2 and {s.value for s in capacity} == {2.0}
