"""The background writer: order, flush, context, errors, back-pressure and forked children."""

from __future__ import annotations

import contextvars
import logging
import multiprocessing
import threading
from pathlib import Path

import pytest

from stockpred.infra.background import BackgroundWriter

WHO = contextvars.ContextVar("who", default="nobody")


def test_jobs_run_off_the_caller_thread_in_order_and_flush_waits_for_them() -> None:
    writer = BackgroundWriter("test-writer")
    seen: list[tuple[int, str]] = []
    gate = threading.Event()
    writer.submit(lambda: gate.wait(5))  # hold the writer so the next jobs queue up
    for index in range(50):
        writer.submit(lambda i=index: seen.append((i, threading.current_thread().name)))
    assert seen == []  # nothing ran on the caller's thread
    gate.set()
    assert writer.flush(5)
    assert [i for i, _ in seen] == list(range(50))
    assert {name for _, name in seen} == {"test-writer"}


def test_jobs_see_the_submitters_context_variables() -> None:
    writer = BackgroundWriter("test-context")
    seen: list[str] = []
    token = WHO.set("task-42")
    writer.submit(lambda: seen.append(WHO.get()))
    WHO.reset(token)
    writer.submit(lambda: seen.append(WHO.get()))
    assert writer.flush(5)
    assert seen == ["task-42", "nobody"]


def test_a_failing_job_is_logged_and_the_next_ones_still_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    writer = BackgroundWriter("test-errors")
    seen: list[int] = []

    def broken() -> None:
        raise OSError("disk full")

    with caplog.at_level(logging.ERROR, logger="stockpred.infra.background"):
        writer.submit(broken)
        writer.submit(lambda: seen.append(1))
        assert writer.flush(5)
    assert seen == [1]
    assert "a background write failed" in caplog.text and "disk full" in caplog.text


def test_a_full_queue_runs_the_job_inline_instead_of_growing() -> None:
    writer = BackgroundWriter("test-full", max_pending=2)
    gate, taken = threading.Event(), threading.Event()
    writer.submit(lambda: (taken.set(), gate.wait(5)))
    assert taken.wait(5)  # the thread holds that job: the queue is empty
    ran_on: list[str] = []
    for _ in range(3):  # two fit in the queue; the third runs here
        writer.submit(lambda: ran_on.append(threading.current_thread().name))
    assert ran_on == [threading.current_thread().name]
    gate.set()
    assert writer.flush(5)
    assert len(ran_on) == 3


def _child(writer: BackgroundWriter, path: str) -> None:
    writer.submit(lambda: Path(path).write_text("written by the child's writer"))
    raise SystemExit(0 if writer.flush(5) else 1)


def test_a_forked_child_gets_a_writer_thread_of_its_own(tmp_path: Path) -> None:
    writer = BackgroundWriter("test-fork")
    gate = threading.Event()
    writer.submit(lambda: gate.wait(10))  # the parent's thread is busy (and holds its queue)
    target = tmp_path / "child.txt"
    child = multiprocessing.get_context("fork").Process(target=_child, args=(writer, str(target)))
    child.start()
    child.join(30)
    gate.set()
    assert child.exitcode == 0
    assert target.read_text() == "written by the child's writer"
    assert writer.flush(5)
