"""The daily JSON-lines journal of predictions: whole lines, many writers, new files, new days."""

from __future__ import annotations

import json
import multiprocessing
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from stockpred.ml import prediction_store
from stockpred.ml.prediction_store import PredictionJournal


def _today(directory: Path) -> Path:
    return directory / f"{datetime.now(UTC):%Y-%m-%d}.jsonl"


def _write_many(directory: str, writer: int, count: int) -> None:
    journal = PredictionJournal(Path(directory))
    for index in range(count):
        journal.append(json.dumps({"writer": writer, "index": index, "pad": "x" * 3000}))
    journal.close()


def test_lines_are_appended_to_todays_file_and_the_folder_is_created(tmp_path: Path) -> None:
    journal = PredictionJournal(tmp_path / "daily")
    first = journal.append('{"symbol":"NVDA","n":1}')
    journal.append('{"symbol":"NVDA","n":2}')
    assert first == _today(tmp_path / "daily")
    rows = [json.loads(line) for line in first.read_text().splitlines()]
    assert [row["n"] for row in rows] == [1, 2]


def test_concurrent_processes_never_mix_or_lose_lines(tmp_path: Path) -> None:
    # spawn: a forked pytest process inherits kombu pools whose after-fork cleanup can block
    ctx = multiprocessing.get_context("spawn")
    writers = [ctx.Process(target=_write_many, args=(str(tmp_path), w, 300)) for w in range(4)]
    for process in writers:
        process.start()
    for process in writers:
        process.join(60)
        assert process.exitcode == 0
    rows = [json.loads(line) for line in _today(tmp_path).read_text().splitlines()]
    assert len(rows) == 1200
    for writer in range(4):
        assert [r["index"] for r in rows if r["writer"] == writer] == list(range(300))


def test_a_replaced_or_deleted_file_is_reopened_so_no_line_goes_to_a_dead_inode(
    tmp_path: Path,
) -> None:
    journal = PredictionJournal(tmp_path)
    path = journal.append('{"n":1}')
    replacement = tmp_path / "restored.tmp"
    replacement.write_text('{"n":0}\n')
    os.replace(replacement, path)  # what a restore does
    journal.append('{"n":2}')
    assert path.read_text().splitlines() == ['{"n":0}', '{"n":2}']
    path.unlink()  # what a cleanup could do
    journal.append('{"n":3}')
    assert path.read_text().splitlines() == ['{"n":3}']


def test_a_new_day_starts_a_new_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    journal = PredictionJournal(tmp_path)
    journal.append('{"n":1}')

    class Tomorrow(datetime):
        @classmethod
        def now(cls, tz: object = None) -> datetime:  # type: ignore[override]
            return datetime(2099, 1, 2, 0, 0, 1, tzinfo=UTC)

    monkeypatch.setattr(prediction_store, "utcnow", lambda: Tomorrow.now(UTC))
    assert journal.append('{"n":2}') == tmp_path / "2099-01-02.jsonl"
    assert (tmp_path / "2099-01-02.jsonl").read_text() == '{"n":2}\n'
