"""The full daily history per symbol, kept indefinitely: `historical/<SYMBOL>/daily.parquet`.

Refreshes of one symbol are serialised across processes by an exclusive `flock` on a lock file
beside it; every write replaces the parquet file atomically, so readers never see half a file.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from stockpred.paths import FILE_MODE

HISTORY_FILE = "daily.parquet"


class DamagedHistory(Exception):
    """A stored history file that cannot be read (the next full fetch replaces it)."""


class HistoryStore:
    """Reads and writes per-symbol parquet histories under the historical folder."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def folder(self, symbol: str) -> Path:
        return self.directory / symbol

    def path(self, symbol: str) -> Path:
        return self.folder(symbol) / HISTORY_FILE

    @contextlib.contextmanager
    def lock(self, symbol: str) -> Iterator[None]:
        """Hold the symbol's refresh lock (blocks while another process holds it)."""
        folder = self.folder(symbol)
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder / ".refresh.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def load(self, symbol: str) -> pd.DataFrame | None:
        """The stored history, or None when there is none; DamagedHistory when unreadable."""
        path = self.path(symbol)
        if not path.is_file():
            return None
        try:
            frame = pd.read_parquet(path)
        except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
            raise DamagedHistory(f"{path} cannot be read ({type(exc).__name__}: {exc})") from exc
        frame.index.name = "date"
        return frame

    def save(self, symbol: str, frame: pd.DataFrame) -> None:
        """Replace the stored history atomically (temp file, fsync, rename)."""
        folder = self.folder(symbol)
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{HISTORY_FILE}.", suffix=".tmp")
        os.close(fd)
        try:
            frame.to_parquet(tmp, compression="zstd")
            with open(tmp, "rb") as handle:
                os.fsync(handle.fileno())
            os.chmod(tmp, FILE_MODE)
            os.replace(tmp, self.path(symbol))
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    def symbols(self) -> list[str]:
        """Symbols that have a stored history."""
        return sorted(p.parent.name for p in self.directory.glob(f"*/{HISTORY_FILE}"))
