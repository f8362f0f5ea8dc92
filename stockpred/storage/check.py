"""The storage test: every folder of the tree exists, is writable and safe; usage figures.

Shared by `stockpred storage test` (make storage-test) and the `maintenance.check_storage` task.
"""

from __future__ import annotations

from dataclasses import dataclass

from stockpred.paths import DataTree, DirectoryCheck, check_tree, directory_usage, free_bytes


@dataclass(frozen=True)
class StorageCheck:
    """Result of checking the persistent_data tree."""

    root: str
    directories: tuple[DirectoryCheck, ...]
    used_bytes: int
    file_count: int
    free_bytes: int

    @property
    def ok(self) -> bool:
        return all(d.ok for d in self.directories)

    @property
    def problems(self) -> list[str]:
        return [f"{d.name} ({d.path}): {d.problem}" for d in self.directories if not d.ok]

    def to_dict(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "root": self.root,
            "used_bytes": self.used_bytes,
            "file_count": self.file_count,
            "free_bytes": self.free_bytes,
            "problems": self.problems,
            "directories": [d.to_dict() for d in self.directories],
        }


def check_storage(tree: DataTree) -> StorageCheck:
    """Check every folder and measure usage below the root."""
    checks = tuple(check_tree(tree))
    used, files = directory_usage(tree.root) if tree.root.is_dir() else (0, 0)
    free = free_bytes(tree.root) if tree.root.is_dir() else 0
    return StorageCheck(str(tree.root), checks, used, files, free)


def human_bytes(size: float) -> str:
    """Render a byte count as B, K, M, G or T, as `du -h` would."""
    for unit in ("B", "K", "M", "G", "T"):
        if size < 1024 or unit == "T":
            return f"{size:.0f}{unit}" if unit == "B" else f"{size:.1f}{unit}"
        size /= 1024
    return f"{size:.1f}T"
