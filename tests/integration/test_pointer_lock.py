"""Publish and rollback of one symbol are serialised through Redis (redis-py's Lock)."""

from __future__ import annotations

import threading
from pathlib import Path

import redis

from stockpred.jobs.locks import pointer_lock
from stockpred.ml.registry import ModelRegistry


def _registry_with_two_versions(root: Path, client: redis.Redis) -> ModelRegistry:
    registry = ModelRegistry(root / "ml_models", root / "scalers", pointer_lock(client))
    for version in ("20240101T000000Z-aaaa", "20240201T000000Z-bbbb"):

        def write(model: Path, scaler: Path) -> None:
            model.write_bytes(b"m")
            scaler.write_bytes(b"s")

        registry.write_version("ZZZ", version, {"version": version}, write)
    registry.publish("ZZZ", "20240201T000000Z-bbbb")
    return registry


def test_a_rollback_waits_while_another_host_holds_the_symbols_pointer(
    tmp_path: Path, redis_client: redis.Redis
) -> None:
    registry = _registry_with_two_versions(tmp_path, redis_client)
    other_host = pointer_lock(redis_client)("ZZZ")  # the same lock, taken elsewhere
    assert other_host.__enter__() is not None
    done: list[str] = []
    rollback = threading.Thread(target=lambda: done.append(registry.rollback("ZZZ")))
    rollback.start()
    try:
        rollback.join(0.5)
        assert rollback.is_alive() and not done, "the rollback must wait for the lock"
        assert registry.current_version("ZZZ") == "20240201T000000Z-bbbb"
    finally:
        other_host.__exit__(None, None, None)
    rollback.join(30)
    assert done == ["20240101T000000Z-aaaa"]
    assert registry.current_version("ZZZ") == "20240101T000000Z-aaaa"
