"""The model registry: versions in ml_models/<SYMBOL>/ and scalers/<SYMBOL>/, a `current` pointer.

Layout: `ml_models/<SYMBOL>/<version>/{model.keras, metadata.json}`,
`scalers/<SYMBOL>/<version>/scaler.joblib`, and `ml_models/<SYMBOL>/current` holding the
published version's name. A version is written into `.staging-*` folders, renamed into place,
and only then published by atomically replacing `current`: a crash at any point leaves the
previously published version in use. No TensorFlow here: the web reads the registry too.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import secrets
import shutil
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from stockpred.infra.clock import utcnow
from stockpred.infra.filememo import FileMemo
from stockpred.infra.files import DIR_MODE, atomic_write
from stockpred.jobs.errors import ErrorKind

MODEL_FILE = "model.keras"
METADATA_FILE = "metadata.json"
SCALER_FILE = "scaler.joblib"
CURRENT_FILE = "current"
PointerLock = Callable[[str], AbstractContextManager[object]]

log = logging.getLogger(__name__)


@functools.lru_cache(maxsize=4096)  # read on every cached prediction: the Path is built once
def pointer_path(models_dir: Path, symbol: str) -> Path:
    """Where a symbol's `current` pointer lives."""
    return models_dir / symbol / CURRENT_FILE


def _read_pointer(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8").strip() or None
    except (UnicodeDecodeError, IsADirectoryError) as exc:
        symbol = path.parent.name
        raise DamagedVersion(
            f"the {symbol} `current` pointer is unreadable ({type(exc).__name__}); "
            + repair_hint(symbol)
        ) from None


class CurrentVersions:
    """Published versions for hot paths: each pointer re-read only when its file changes."""

    def __init__(self, models_dir: Path) -> None:
        self.models_dir = models_dir
        self._memo = FileMemo()

    def get(self, symbol: str) -> str | None:
        """The published version of `symbol`, or None (one `stat` when unchanged)."""
        return self._memo.read(pointer_path(self.models_dir, symbol), _read_pointer)


class RegistryError(ValueError):
    """A registry request that cannot be met (unknown version, nothing to roll back to)."""


class DamagedVersion(RegistryError):
    """A stored version or pointer that exists but cannot be read."""

    kind = ErrorKind.DAMAGED_VERSION


def repair_hint(symbol: str) -> str:
    """What an operator does about a damaged version."""
    return (
        f"roll back with POST /api/v1/models/{symbol}/rollback (or `stockpred models rollback "
        f"{symbol}`), or retrain"
    )


def new_version(now: datetime | None = None) -> str:
    """A sortable, unique version name such as 20261123T014512Z-3f9a."""
    stamp = (now or utcnow()).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{secrets.token_hex(2)}"


def _champion_summary(metadata: dict[str, Any]) -> dict[str, Any] | None:
    """Who serves for a version and every forecaster's backtest figures at h = 1 (or None)."""
    champion = metadata.get("champion")
    if not champion:
        return None
    figures = (metadata.get("backtest") or {}).get("forecasters") or {}
    return {
        "forecaster": champion.get("forecaster"),
        "why": champion.get("why"),
        "backtest_h1": {name: rows[0] for name, rows in figures.items() if rows},
    }


@dataclass(frozen=True)
class VersionInfo:
    """One stored version and its metadata."""

    symbol: str
    version: str
    metadata: dict[str, Any]
    model_path: Path
    scaler_path: Path


class ModelRegistry:
    """Reads and writes model versions."""

    def __init__(
        self, models_dir: Path, scalers_dir: Path, pointer_lock: PointerLock | None = None
    ) -> None:
        self.models_dir = models_dir
        self.scalers_dir = scalers_dir
        # Publish and rollback of one symbol take it, so a rollback's read-then-write of the
        # pointer never interleaves with a publish. Workers pass a Redis lock (one for every
        # host); without one (a reader, a test) nothing is serialised.
        self._pointer_lock = pointer_lock or (lambda _symbol: contextlib.nullcontext())

    def _model_dir(self, symbol: str, version: str) -> Path:
        return self.models_dir / symbol / version

    def _scaler_dir(self, symbol: str, version: str) -> Path:
        return self.scalers_dir / symbol / version

    def symbols(self) -> list[str]:
        """Symbols with a published version."""
        if not self.models_dir.is_dir():
            return []
        return sorted(p.parent.name for p in self.models_dir.glob(f"*/{CURRENT_FILE}"))

    def current_version(self, symbol: str) -> str | None:
        """The published version's name, or None (also when the pointer is unreadable).

        Management paths (training, rollback, stats) treat an unreadable pointer as none, so
        that a retrain or a rollback replaces it; predictions report it (`CurrentVersions`).
        """
        try:
            return _read_pointer(pointer_path(self.models_dir, symbol))
        except FileNotFoundError:
            return None
        except DamagedVersion as exc:
            log.warning("%s", exc)
            return None

    def versions(self, symbol: str) -> list[str]:
        """Complete versions (model, metadata and scaler present), oldest first."""
        folder = self.models_dir / symbol
        if not folder.is_dir():
            return []
        return sorted(
            p.name
            for p in folder.iterdir()
            if p.is_dir()
            and not p.name.startswith(".")
            and (p / METADATA_FILE).is_file()
            and (p / MODEL_FILE).is_file()
            and (self._scaler_dir(symbol, p.name) / SCALER_FILE).is_file()
        )

    def info(self, symbol: str, version: str) -> VersionInfo:
        """A version's paths and metadata; RegistryError when it does not exist."""
        model_dir = self._model_dir(symbol, version)
        try:
            metadata = json.loads((model_dir / METADATA_FILE).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise RegistryError(f"{symbol} has no version {version!r}") from None
        except (ValueError, IsADirectoryError) as exc:  # UnicodeDecodeError is a ValueError
            metadata = exc
        if not isinstance(metadata, dict):
            raise DamagedVersion(
                f"the metadata of {symbol} {version} is unreadable "
                f"({type(metadata).__name__}); " + repair_hint(symbol)
            )
        return VersionInfo(
            symbol,
            version,
            metadata,
            model_dir / MODEL_FILE,
            self._scaler_dir(symbol, version) / SCALER_FILE,
        )

    def current(self, symbol: str) -> VersionInfo | None:
        """The published version, or None when the symbol has no model."""
        version = self.current_version(symbol)
        return None if version is None else self.info(symbol, version)

    def write_version(
        self,
        symbol: str,
        version: str,
        metadata: dict[str, Any],
        write_files: Callable[[Path, Path], None],
    ) -> VersionInfo:
        """Stage a version (write_files(model_path, scaler_path)), then move it into place."""
        staged_model = self.models_dir / symbol / f".staging-{version}"
        staged_scaler = self.scalers_dir / symbol / f".staging-{version}"
        try:
            for folder in (staged_model, staged_scaler):  # a full disk may refuse even these
                shutil.rmtree(folder, ignore_errors=True)
                folder.mkdir(parents=True, mode=DIR_MODE)
            write_files(staged_model / MODEL_FILE, staged_scaler / SCALER_FILE)
            atomic_write(staged_model / METADATA_FILE, json.dumps(metadata, indent=2, default=str))
            for path in (staged_model / MODEL_FILE, staged_scaler / SCALER_FILE):
                os.chmod(path, 0o644)
                with path.open("rb") as handle:
                    os.fsync(handle.fileno())
            os.rename(staged_scaler, self._scaler_dir(symbol, version))
            try:
                os.rename(staged_model, self._model_dir(symbol, version))
            except BaseException:
                shutil.rmtree(self._scaler_dir(symbol, version), ignore_errors=True)
                raise
        finally:
            shutil.rmtree(staged_model, ignore_errors=True)
            shutil.rmtree(staged_scaler, ignore_errors=True)
        return self.info(symbol, version)

    def publish(self, symbol: str, version: str) -> None:
        """Make `version` current by atomically replacing the pointer."""
        with self._pointer_lock(symbol):
            self._publish(symbol, version)

    def _publish(self, symbol: str, version: str) -> None:
        if version not in self.versions(symbol):
            raise RegistryError(f"{symbol} has no complete version {version!r}")
        atomic_write(pointer_path(self.models_dir, symbol), version + "\n")

    def rollback(self, symbol: str, to_version: str | None = None) -> str:
        """Publish `to_version`, or the newest version older than the current one."""
        with self._pointer_lock(symbol):
            return self._rollback(symbol, to_version)

    def _rollback(self, symbol: str, to_version: str | None) -> str:
        versions = self.versions(symbol)
        current = self.current_version(symbol)
        if to_version is None:
            older = [v for v in versions if current is None or v < current]
            if not older:
                raise RegistryError(f"{symbol} has no version older than {current} to roll back to")
            to_version = older[-1]
        if to_version not in versions:
            raise RegistryError(
                f"{symbol} has no version {to_version!r}; versions: {', '.join(versions) or 'none'}"
            )
        self._publish(symbol, to_version)
        return to_version

    def discard(self, symbol: str, version: str) -> None:
        """Delete a version that was written but never published (never the current one)."""
        with self._pointer_lock(symbol):
            if self.current_version(symbol) == version:
                raise RegistryError(f"{symbol} {version} is current: not discarded")
            shutil.rmtree(self._model_dir(symbol, version), ignore_errors=True)
            shutil.rmtree(self._scaler_dir(symbol, version), ignore_errors=True)

    def prune(self, symbol: str, keep: int) -> list[str]:
        """Delete all but the newest `keep` versions, never the current one; return removed."""
        current = self.current_version(symbol)
        versions = self.versions(symbol)
        removed = [v for v in versions[:-keep] if v != current] if keep > 0 else []
        for version in removed:
            shutil.rmtree(self._model_dir(symbol, version), ignore_errors=True)
            shutil.rmtree(self._scaler_dir(symbol, version), ignore_errors=True)
        return removed

    def describe(self, symbol: str) -> dict[str, Any]:
        """Versions with their metrics, and which is current (for the API and the CLI)."""
        current = self.current_version(symbol)
        rows = []
        for version in reversed(self.versions(symbol)):
            try:
                meta = self.info(symbol, version).metadata
            except RegistryError as exc:
                rows.append(
                    {"version": version, "current": version == current, "problem": str(exc)}
                )
                continue
            rows.append(
                {
                    "version": version,
                    "current": version == current,
                    "trained_at": meta.get("trained_at"),
                    "kind": meta.get("kind"),
                    "data": meta.get("data"),
                    "evaluation": (meta.get("evaluation") or {}).get("summary"),
                    "champion": _champion_summary(meta),
                }
            )
        return {"symbol": symbol, "current": current, "versions": rows}
