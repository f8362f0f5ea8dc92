"""Small writes done on a background thread, so that a request's answer does not wait for them.

The standard library's advice for latency-sensitive code (`logging.handlers.QueueHandler`),
applied to a prediction's journal line and log line: each job runs on one daemon thread per
process, in submission order, inside the submitter's context variables (so log lines keep
their task id). A full queue runs the job inline (back-pressure instead of unbounded memory);
`flush` waits for what was submitted, and worker children call it before they exit.
"""

from __future__ import annotations

import contextvars
import logging
import os
import queue
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)
Job = Callable[[], object]


class BackgroundWriter:
    """One writer thread per process, started on first use (a forked child starts its own)."""

    def __init__(self, name: str, max_pending: int = 10_000) -> None:
        self.name = name
        self.max_pending = max_pending
        self._lock = threading.Lock()
        self._pid = -1
        self._queue: queue.Queue[tuple[contextvars.Context, Job]] = queue.Queue(max_pending)
        self._thread: threading.Thread | None = None

    def submit(self, job: Job) -> None:
        """Run `job` soon on the writer thread (now, inline, if too much is pending)."""
        context = contextvars.copy_context()
        try:
            self._ready().put_nowait((context, job))
        except queue.Full:
            self._run(context, job)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every job submitted so far has run; False if `timeout` passed first."""
        if self._thread is None or self._pid != os.getpid():
            return True
        done = threading.Event()
        self._ready().put((contextvars.copy_context(), done.set))
        return done.wait(timeout)

    def _ready(self) -> queue.Queue[tuple[contextvars.Context, Job]]:
        if self._pid == os.getpid() and self._thread is not None and self._thread.is_alive():
            return self._queue
        with self._lock:
            if self._pid != os.getpid():
                # After fork the parent's queue may hold a lock taken by a thread that is gone.
                self._queue = queue.Queue(self.max_pending)
                self._thread = None
                self._pid = os.getpid()
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
                self._thread.start()
        return self._queue

    def _loop(self) -> None:
        while True:
            context, job = self._queue.get()
            self._run(context, job)

    @staticmethod
    def _run(context: contextvars.Context, job: Job) -> None:
        try:
            context.run(job)
        except Exception:
            log.exception("a background write failed")
