"""Small files read once and re-read only when they change (checked by one `stat`).

For hot paths that consult tiny, rarely rewritten files on every request (a model's `current`
pointer, a symbol's cache sidecar). Files are replaced atomically, so a new inode or mtime
always means new content.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


class FileMemo:
    """Parsed contents of files, keyed by path and invalidated by (inode, mtime, size)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: dict[tuple[str, str], tuple[tuple[int, int, int], object]] = {}

    def read(self, path: Path, parse: Callable[[Path], T], tag: str = "") -> T | None:
        """`parse(path)`, reused while the file is unchanged; None when it does not exist."""
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return None
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        key = (str(path), tag)
        with self._lock:
            held = self._held.get(key)
        if held is not None and held[0] == stamp:
            return held[1]  # type: ignore[return-value]
        value = parse(path)
        with self._lock:
            self._held[key] = (stamp, value)
        return value
