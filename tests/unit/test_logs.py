"""Shared log files: many processes, forced rotations, no lost or interleaved lines."""

from __future__ import annotations

import logging
import multiprocessing
import os
import re
import time
from pathlib import Path

from stockpred.infra import logs
from stockpred.settings import load_settings
from tests.support import wait_for

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
        for logger in map(logging.getLogger, ("", logs.API_LOGGER, logs.PREDICTION_LOGGER)):
            for handler in list(logger.handlers):
                logger.removeHandler(handler)
                handler.close()  # writes what api.log's handler buffered, as at exit
    app_dir = tmp_path / "logs" / "application"
    everything = (app_dir / "stock-prediction.log").read_text()
    assert "[unit:" in everything and "broke" in everything
    assert "predicted" not in everything and "GET / 200" not in everything
    assert "task_id=t-1 symbol=NVDA: predicted" in (app_dir / "prediction.log").read_text()
    errors = (app_dir / "error.log").read_text()
    assert "broke" in errors and "predicted" not in errors
    assert "GET / 200" in (app_dir / "api.log").read_text()
    assert "predicted" not in (app_dir / "api.log").read_text()


def _buffered(path: Path, seconds: float) -> logging.Logger:
    """A logger of its own writing through a buffered shared handler."""
    handler = logs.SharedRotatingFileHandler(path, 1 << 20, 3, buffer_seconds=seconds)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger(f"buffered-{path.name}")
    logger.propagate = False
    logger.handlers = [handler]
    logger.setLevel(logging.INFO)
    return logger


def test_buffered_lines_are_written_by_the_flusher_without_another_request(
    tmp_path: Path,
) -> None:
    path = tmp_path / "api.log"
    logger = _buffered(path, 0.2)
    logger.info("GET /a 200")
    assert not path.exists() or "GET /a" not in path.read_text()  # buffered, not yet written
    wait_for(lambda: path.is_file() and "GET /a 200" in path.read_text(), 5, what="the flush")
    logger.handlers[0].close()


def test_closing_writes_what_is_buffered_and_a_full_buffer_is_written_at_once(
    tmp_path: Path,
) -> None:
    path = tmp_path / "api.log"
    logger = _buffered(path, 3600)
    line = "x" * 1023
    for _ in range(logs.BUFFER_BYTES // 1024):
        logger.info(line)
    assert path.read_text().count(line) == logs.BUFFER_BYTES // 1024  # the batch filled up
    logger.info("last")
    assert "last" not in path.read_text()
    logger.handlers[0].close()
    assert path.read_text().endswith("last\n")


def test_a_forked_child_never_writes_the_lines_its_parent_buffered(tmp_path: Path) -> None:
    path = tmp_path / "api.log"
    logger = _buffered(path, 3600)
    logger.info("parent")
    # os.fork, not multiprocessing: its after-fork hooks (kombu's, when the integration tests
    # ran first in this process) are not what this test is about.
    pid = os.fork()
    if pid == 0:  # the child
        code = 1
        try:
            logger.info("child")
            logger.handlers[0].close()
            code = 0
        finally:
            os._exit(code)
    deadline = time.monotonic() + 30
    while (done := os.waitpid(pid, os.WNOHANG))[0] == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert done[0] == pid and os.waitstatus_to_exitcode(done[1]) == 0
    logger.handlers[0].close()
    assert sorted(path.read_text().splitlines()) == ["child", "parent"]
