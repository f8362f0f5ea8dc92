"""Logging to persistent_data/logs/application/ that many processes can share safely.

Files: stock-prediction.log (everything), api.log (one line per HTTP request), prediction.log
(predictions), error.log (ERROR and above), plus stdout. Several processes (gunicorn workers,
Celery pool children) append to the same files: each record is one `write()` on an O_APPEND
descriptor, and size rotation happens under an exclusive `flock`, so lines never interleave
and none are lost across a rotation. The lock is a blocking `flock` on a descriptor kept open,
not `stockpred.infra.files.file_lock`: filelock polls a held lock, which would stall log lines.
"""

from __future__ import annotations

import contextlib
import contextvars
import fcntl
import logging
import os
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import MappingProxyType

from stockpred.paths import DataTree
from stockpred.settings import Settings

API_LOGGER = "stockpred.api"
PREDICTION_LOGGER = "stockpred.prediction"
LOG_FORMAT = (
    "%(asctime)s %(levelname)s [%(process_role)s:%(process)d] %(name)s%(context)s: %(message)s"
)

# api.log lines are buffered per process and appended in batches, as nginx's `access_log ...
# buffer= flush=` does: one locked write per batch instead of per request. A killed process
# loses at most this much of its request lines; every other log is written line by line.
ACCESS_LOG_FLUSH_SECONDS = 1.0
BUFFER_BYTES = 64 * 1024

_context: contextvars.ContextVar[Mapping[str, str]] = contextvars.ContextVar(
    "stockpred_log_context", default=MappingProxyType({})
)
_role = "main"


@contextmanager
def log_context(**values: str | None) -> Iterator[None]:
    """Add key=value pairs (task id, symbol, job id…) to every record logged inside the block."""
    merged = {**_context.get(), **{k: str(v) for k, v in values.items() if v is not None}}
    token = _context.set(merged)
    try:
        yield
    finally:
        _context.reset(token)


def set_log_context(**values: str | None) -> contextvars.Token[Mapping[str, str]]:
    """Set the context without a block (for signal-driven code); undo with `reset_log_context`."""
    merged = {**_context.get(), **{k: str(v) for k, v in values.items() if v is not None}}
    return _context.set(merged)


def reset_log_context(token: contextvars.Token[Mapping[str, str]]) -> None:
    """Undo a `set_log_context`."""
    _context.reset(token)


class ContextFilter(logging.Filter):
    """Adds the process role and the current log context to each record."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = _context.get()
        record.context = "".join(f" {k}={v}" for k, v in context.items()) if context else ""
        record.process_role = _role
        return True


class SharedRotatingFileHandler(logging.Handler):
    """Size-rotating file handler safe for many writer processes on one host."""

    def __init__(
        self, path: Path, max_bytes: int, backup_count: int, buffer_seconds: float = 0.0
    ) -> None:
        super().__init__()
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.backup_count = backup_count
        self.buffer_seconds = buffer_seconds
        self._pid = -1
        self._fd = -1
        self._lock_fd = -1
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._pending_since = 0.0
        self._flusher_pid = -1
        self._closed = False

    def _open_lock(self) -> None:
        """Open this process's lock descriptor (after a fork the child needs its own)."""
        self._close_fds()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.path.with_name(f".{self.path.name}.lock")
        self._lock_fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        self._pid = os.getpid()

    def _open_log(self) -> None:
        """(Re)open the log file for appending; the lock descriptor is left alone."""
        if self._fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self._fd)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)

    def _close_fds(self) -> None:
        for fd in (self._fd, self._lock_fd):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._fd = self._lock_fd = -1

    def _reopen_if_rotated(self) -> None:
        """Follow a rotation another process made; call with the lock held."""
        if self._fd < 0:
            self._open_log()
            return
        try:
            on_disk = os.stat(self.path)
        except FileNotFoundError:
            self._open_log()
            return
        mine = os.fstat(self._fd)
        if (on_disk.st_ino, on_disk.st_dev) != (mine.st_ino, mine.st_dev):
            self._open_log()

    def _rotate(self) -> None:
        """Shift name.N to name.N+1 and start a new file; call with the lock held."""
        for index in range(self.backup_count - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{index}")
            if older.exists():
                os.replace(older, self.path.with_name(f"{self.path.name}.{index + 1}"))
        os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))
        self._open_log()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            data = (self.format(record) + "\n").encode("utf-8", "replace")
            if self.buffer_seconds <= 0:
                self._append(data)
                return
            if self._flusher_pid != os.getpid():
                self._start_flusher()
            now = time.monotonic()
            if not self._pending:
                self._pending_since = now
            self._pending.append(data)
            self._pending_bytes += len(data)
            if (
                self._pending_bytes >= BUFFER_BYTES
                or now - self._pending_since >= self.buffer_seconds
            ):
                self._write_pending()
        except Exception:
            self.handleError(record)

    def flush(self) -> None:
        """Write the buffered lines now (also at exit, through logging.shutdown)."""
        with self.lock:  # type: ignore[union-attr]
            try:
                self._write_pending()
            except Exception as exc:
                # No record to hand to handleError: report on stderr as it would.
                sys.stderr.write(f"lost buffered lines: cannot write {self.path}: {exc!r}\n")

    def _write_pending(self) -> None:
        """Write the batch; on failure it is dropped (memory stays bounded) and the error raised."""
        if self._pending and self._flusher_pid == os.getpid():
            data = b"".join(self._pending)
            self._pending.clear()
            self._pending_bytes = 0
            self._append(data)

    def _start_flusher(self) -> None:
        """Start this process's flusher; lines a parent buffered before a fork are its own."""
        self._pending.clear()
        self._pending_bytes = 0
        self._flusher_pid = os.getpid()
        threading.Thread(
            target=self._flush_periodically,
            args=(self._flusher_pid,),
            name=f"log-flush-{self.path.name}",
            daemon=True,
        ).start()

    def _flush_periodically(self, pid: int) -> None:
        while not self._closed and os.getpid() == pid:
            time.sleep(self.buffer_seconds)
            self.flush()

    def _append(self, data: bytes) -> None:
        """Append whole lines under the lock, rotating first when they would not fit."""
        if self._pid != os.getpid():
            self._open_lock()
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        try:
            self._reopen_if_rotated()
            size = os.fstat(self._fd).st_size
            if size and size + len(data) > self.max_bytes:
                self._rotate()
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view) :]
        finally:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def close(self) -> None:
        self.flush()
        with self.lock:  # type: ignore[union-attr]
            self._closed = True  # a flusher waking now finds nothing to write, and stops
            self._close_fds()
        super().close()


def _file_handler(
    settings: Settings, path: Path, level: int, buffer_seconds: float = 0.0
) -> logging.Handler:
    handler = SharedRotatingFileHandler(
        path, settings.log_max_bytes, settings.log_backup_count, buffer_seconds
    )
    handler.setLevel(level)
    return handler


def configure_logging(settings: Settings, role: str, stdout: bool = True) -> None:
    """Send logs to the application files (and stdout); `role` names the process in each line."""
    global _role
    _role = role
    # LOG_FORMAT uses neither the caller's file and line nor the thread: skip computing them for
    # every record (the logging HOWTO's "Optimization" section). This is process-wide: no
    # formatter of this process may use %(funcName)s, %(lineno)d or %(threadName)s.
    logging._srcfile = None
    logging.logThreads = False
    tree = DataTree.from_settings(settings)
    formatter = logging.Formatter(LOG_FORMAT)
    context_filter = ContextFilter()
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        old.close()
    handlers: list[logging.Handler] = [
        _file_handler(settings, settings.log_file, logging.DEBUG),
        _file_handler(settings, tree.error_log, logging.ERROR),
    ]
    if stdout:
        handlers.append(logging.StreamHandler(sys.stdout))
    for handler in handlers:
        handler.setFormatter(formatter)
        handler.addFilter(context_filter)
        root.addHandler(handler)
    root.setLevel(settings.log_level)
    for name, path, buffer_seconds in (
        (API_LOGGER, tree.api_log, ACCESS_LOG_FLUSH_SECONDS),
        (PREDICTION_LOGGER, tree.prediction_log, 0.0),
    ):
        logger = logging.getLogger(name)
        for old in list(logger.handlers):
            logger.removeHandler(old)
            old.close()
        handler = _file_handler(settings, path, logging.DEBUG, buffer_seconds)
        handler.setFormatter(formatter)
        handler.addFilter(context_filter)
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        # One line per request or prediction belongs in its own file, not in the main log too.
        logger.propagate = False
