"""The file helpers every write into persistent_data goes through."""

from __future__ import annotations

import hashlib
import logging
import multiprocessing
import stat
from pathlib import Path

import pytest

from stockpred.infra.files import (
    LockBusy,
    atomic_path,
    atomic_write,
    file_lock,
    read_json_object,
    sha256_file,
)


def test_atomic_write_replaces_the_file_with_the_mode_asked(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "report.json"
    atomic_write(target, "{}", mode=0o600)
    atomic_write(target, b"[1]")
    assert target.read_bytes() == b"[1]"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert [p.name for p in target.parent.iterdir()] == ["report.json"]


def test_a_failed_write_leaves_the_old_file_and_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "history.parquet"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["history.parquet"]


def test_sha256_file_matches_hashlib(tmp_path: Path) -> None:
    data = b"x" * (3 << 20)  # more than one read chunk
    (tmp_path / "f").write_bytes(data)
    assert sha256_file(tmp_path / "f") == hashlib.sha256(data).hexdigest()


def _hold(
    path: str, ready: multiprocessing.synchronize.Event, go: multiprocessing.synchronize.Event
) -> None:
    with file_lock(Path(path)):
        ready.set()
        go.wait(30)


def test_a_held_lock_is_busy_for_a_non_blocking_caller(tmp_path: Path) -> None:
    lock = tmp_path / ".storage.lock"
    ctx = multiprocessing.get_context("spawn")
    ready, go = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold, args=(str(lock), ready, go))
    holder.start()
    try:
        assert ready.wait(60)
        with (
            pytest.raises(LockBusy, match="storage run"),
            file_lock(lock, blocking=False, busy="another storage run"),
        ):
            pass
    finally:
        go.set()
        holder.join(30)
    with file_lock(lock, blocking=False):
        pass


def test_a_json_report_that_is_missing_damaged_or_of_another_shape_reads_as_none(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert read_json_object(tmp_path / "missing.json") is None
    (tmp_path / "ok.json").write_text('{"a": 1}')
    assert read_json_object(tmp_path / "ok.json") == {"a": 1}
    (tmp_path / "bad.json").write_text("{")
    (tmp_path / "list.json").write_text("[]")
    with caplog.at_level(logging.WARNING):
        assert read_json_object(tmp_path / "bad.json") is None
        assert read_json_object(tmp_path / "list.json") is None
    assert "bad.json cannot be read" in caplog.text
    assert "list.json holds JSON of another shape" in caplog.text
