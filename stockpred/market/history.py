"""The full daily history per symbol, kept indefinitely: `historical/<SYMBOL>/daily.parquet`.

Every write replaces the parquet file atomically, so readers never see half a file; the
symbol's folder is created by the first save, never before (refreshes of one symbol are
serialised by a Redis lock, `stockpred.jobs.locks.refresh_lock`, not a file beside it).
Versions before that left a `.refresh.lock` file per symbol; cleanup removes them.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from stockpred.infra.files import atomic_path

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
        with atomic_path(self.path(symbol)) as tmp:
            frame.to_parquet(tmp, compression="zstd")

    def symbols(self) -> list[str]:
        """Symbols that have a stored history."""
        return sorted(p.parent.name for p in self.directory.glob(f"*/{HISTORY_FILE}"))
