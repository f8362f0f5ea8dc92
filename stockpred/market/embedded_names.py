"""Which symbols the package embeds, read without pandas (the web image has none)."""

from __future__ import annotations

from importlib import resources

SUFFIX = ".csv.gz"


def embedded_symbols() -> list[str]:
    """Symbols with embedded data."""
    folder = resources.files("stockpred.market").joinpath("data")
    return sorted(
        entry.name[: -len(SUFFIX)] for entry in folder.iterdir() if entry.name.endswith(SUFFIX)
    )
