"""Shared log files: many processes, forced rotations, no lost or interleaved lines."""

from __future__ import annotations

import logging
import multiprocessing
import re
from pathlib import Path

from stockpred.infra import logs
from stockpred.settings import load_settings

WRITERS = 4
LINES_EACH = 1500
LINE = re.compile(r"^\S+ \S+ INFO \[writer-(\d+):\d+\] stress: line (\d+) (x+)$")


def _writer(data_dir: str, index: int) -> None:
    settings = load_settings(
        {
            "STOCKPRED_DATA_DIR": data_dir,
            "LOG_MAX_BYTES": "65536",
            "LOG_BACKUP_COUNT": "200",
        }
    )
    logs.configure_logging(settings, role=f"writer-{index}", stdout=False)
    log = logging.getLogger("stress")
    for number in range(LINES_EACH):
        log.info("line %d %s", number, "x" * (50 + number % 300))


def test_many_processes_rotate_one_file_without_losing_or_mixing_lines(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    procs = [context.Process(target=_writer, args=(str(tmp_path), i)) for i in range(WRITERS)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
        assert proc.exitcode == 0
    app_dir = tmp_path / "logs" / "application"
    files = sorted(app_dir.glob("stock-prediction.log*"))
    assert len(files) > 5, "the test must force several rotations"
    seen: dict[tuple[int, int], int] = {}
    for path in files:
        assert path.stat().st_size <= 65536
        for raw in path.read_text().splitlines():
            match = LINE.match(raw)
            assert match, f"mangled line in {path.name}: {raw[:120]!r}"
            writer, number, padding = int(match[1]), int(match[2]), match[3]
            assert len(padding) == 50 + number % 300
            seen[(writer, number)] = seen.get((writer, number), 0) + 1
    expected = {(w, n) for w in range(WRITERS) for n in range(LINES_EACH)}
    assert set(seen) == expected
    assert set(seen.values()) == {1}


def test_records_go_to_their_own_files_with_their_context(tmp_path: Path) -> None:
    settings = load_settings({"STOCKPRED_DATA_DIR": str(tmp_path)})
    logs.configure_logging(settings, role="unit", stdout=False)
    try:
        with logs.log_context(task_id="t-1", symbol="NVDA"):
            logging.getLogger("stockpred.prediction").info("predicted")
            logging.getLogger("stockpred.x").error("broke")
        logging.getLogger(logs.API_LOGGER).info("GET / 200")
    finally:
        logging.getLogger().handlers.clear()
        for name in (logs.API_LOGGER, logs.PREDICTION_LOGGER):
            logging.getLogger(name).handlers.clear()
    app_dir = tmp_path / "logs" / "application"
    everything = (app_dir / "stock-prediction.log").read_text()
    assert "[unit:" in everything and "broke" in everything
    assert "predicted" not in everything and "GET / 200" not in everything
    assert "task_id=t-1 symbol=NVDA: predicted" in (app_dir / "prediction.log").read_text()
    errors = (app_dir / "error.log").read_text()
    assert "broke" in errors and "predicted" not in errors
    assert "GET / 200" in (app_dir / "api.log").read_text()
    assert "predicted" not in (app_dir / "api.log").read_text()
