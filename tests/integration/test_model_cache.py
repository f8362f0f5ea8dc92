"""A bounded model cache over real Keras models: evicts, frees and reloads them.

One tiny model is trained on the embedded NFLX series and its version copied under several
symbol names (issue 15 lets scale tests reuse the embedded data under many names).
"""

from __future__ import annotations

import shutil
import weakref

import numpy as np
import pytest
from prometheus_client import REGISTRY

from stockpred.market.embedded import EmbeddedSource
from stockpred.ml.config import MLConfig
from stockpred.ml.forecast import LoadedModel
from stockpred.ml.predict import ModelCache
from stockpred.ml.registry import ModelRegistry
from stockpred.ml.training import train_and_publish
from tests.bench.model_memory import copy_version, symbol_names

SOURCE = "NFLX"
NAMES = symbol_names(3)


def evictions() -> float:
    return REGISTRY.get_sample_value("stockpred_model_evictions_total") or 0.0


def loads(reason: str) -> float:
    return REGISTRY.get_sample_value("stockpred_model_loads_total", {"reason": reason}) or 0.0


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> ModelRegistry:
    """One tiny trained model published under S0001, S0002 and S0003."""
    root = tmp_path_factory.mktemp("model-cache")
    models = ModelRegistry(root / "ml_models", root / "scalers")
    result = train_and_publish(
        SOURCE,
        EmbeddedSource().fetch(SOURCE).frame,
        config=MLConfig(lstm_units=(8,), sequence_length=20, max_horizon=1),
        registry=models,
        band=0.01,
        epochs=1,
        force=True,
        data_source="embedded",
    )
    assert result.published
    copy_version(models, SOURCE, result.version, NAMES)
    return models


def window(loaded: LoadedModel) -> np.ndarray:
    return np.linspace(-1, 1, loaded.sequence_length * 6, dtype="float32").reshape(
        1, loaded.sequence_length, 6
    )


def test_more_symbols_than_the_bound_evict_free_and_reload_real_models(
    registry: ModelRegistry,
) -> None:
    cache = ModelCache(registry, max_models=2)
    before_evictions, before_loads = evictions(), loads("absent")
    first = cache.get(NAMES[0])
    answer = first.serve(window(first))
    held = weakref.ref(first.model)
    del first
    cache.get(NAMES[1])
    cache.get(NAMES[2])  # the third symbol: S0001, least recently used, makes room
    assert set(cache.loaded()) == {NAMES[1], NAMES[2]}
    assert evictions() - before_evictions == 1
    # No gc.collect() here: the cache collects its dropped models itself (a cycle web otherwise
    # outlives its eviction until Python's next full collection).
    assert held() is None, "an evicted Keras model is still in memory"

    again = cache.get(NAMES[0])  # asked again: loaded again, S0002 makes room
    assert held() is None and again.model is not None
    np.testing.assert_allclose(again.serve(window(again)), answer, rtol=1e-6)
    assert set(cache.loaded()) == {NAMES[2], NAMES[0]}
    assert evictions() - before_evictions == 2
    assert loads("absent") - before_loads == 4


def test_a_new_version_of_a_held_symbol_replaces_it_in_place(registry: ModelRegistry) -> None:
    cache = ModelCache(registry, max_models=2)
    old = cache.get(NAMES[0])
    cache.get(NAMES[1])
    for folder in (registry.models_dir, registry.scalers_dir):
        shutil.copytree(folder / NAMES[0] / old.version, folder / NAMES[0] / "v-new")
    registry.publish(NAMES[0], "v-new")
    before_evictions, before_changed = evictions(), loads("version_changed")
    assert cache.get(NAMES[0]).version == "v-new"
    assert cache.loaded() == {NAMES[0]: "v-new", NAMES[1]: old.version}
    assert evictions() == before_evictions
    assert loads("version_changed") - before_changed == 1
