"""A full disk while a model version is written or published: a clear error, nothing left."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from stockpred.jobs.errors import ErrorKind, kind_of
from stockpred.ml.registry import ModelRegistry
from stockpred.ml.training import ModelDiskFull, _write_and_publish

FULL = OSError(errno.ENOSPC, "No space left on device")


def files(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


def test_a_version_the_disk_cannot_hold_leaves_no_staging_folder(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path / "ml_models", tmp_path / "scalers")

    def write_files(model: Path, scaler: Path) -> None:
        model.write_bytes(b"half a model")
        raise FULL

    with pytest.raises(ModelDiskFull, match="nothing was published") as raised:
        _write_and_publish(registry, "ACME", "v2", {}, write_files, keep=3, should_stop=None)
    assert kind_of(raised.value) == ErrorKind.DISK_FULL
    assert files(tmp_path / "ml_models") == ["ACME"] and files(tmp_path / "scalers") == ["ACME"]


def test_a_pointer_the_disk_cannot_hold_discards_the_written_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = ModelRegistry(tmp_path / "ml_models", tmp_path / "scalers")

    def write_files(model: Path, scaler: Path) -> None:
        model.write_bytes(b"model")
        scaler.write_bytes(b"scaler")

    def no_room(symbol: str, version: str) -> None:
        raise FULL

    monkeypatch.setattr(registry, "_publish", no_room)
    with pytest.raises(ModelDiskFull):
        _write_and_publish(registry, "ACME", "v2", {}, write_files, keep=3, should_stop=None)
    assert registry.versions("ACME") == [] and registry.current_version("ACME") is None
