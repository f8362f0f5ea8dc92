"""The persistent_data tree: its folders and files, their creation with safe modes, health checks.

The one place that names folders and files under the data root, the default root included.
Settings may move some folders (`stockpred.settings` declares which); their defaults come from
`default_tree`. Writing files into the tree goes through `stockpred.infra.files`.
Templates and migration live in `stockpred.ops.provision`; this module knows nothing of them.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from stockpred.infra.files import DIR_MODE, PRIVATE_DIR_MODE

if TYPE_CHECKING:
    # Settings computes its defaults from this module: a runtime import would be a cycle.
    from stockpred.settings import Settings

DEFAULT_ROOT = Path("persistent_data")  # relative to the working directory
STOCK_DATA = "stock_data"
APPLICATION_LOGS = "application"
MAIN_LOG = "stock-prediction.log"
CONFIG = "config"
PERSISTENT_ENV = "persistent.env"
# What a backup can hold, by category; `DataTree.category_roots` says which paths each covers.
BACKUP_CATEGORIES = (
    "models",
    "ml_cache",
    "stock_data",
    "config",
    "logs",
    "redis",
    "monitoring",
    "ledger",
)
# Names no backup holds: locks, temp and partial files, sockets (see `DataTree.backup_category`).
_UNBACKED_SUFFIXES = (".lock", ".tmp", ".partial", ".sock")
_STAGING_PREFIX = ".staging-"


@dataclass(frozen=True)
class DataTree:
    """Absolute paths of every folder under persistent_data (some may be moved by settings)."""

    root: Path
    ml_models: Path
    ml_cache: Path
    scalers: Path
    stock_historical: Path
    stock_cache: Path
    predictions: Path
    logs: Path
    config: Path
    backups: Path

    @classmethod
    def from_settings(cls, settings: Settings) -> DataTree:
        """Build the tree from resolved settings."""
        return cls(
            root=settings.data_dir,
            ml_models=settings.ml_model_path,
            ml_cache=settings.ml_cache_path,
            scalers=settings.scalers_path,
            stock_historical=settings.stock_historical_path,
            stock_cache=settings.stock_data_cache_path,
            predictions=settings.prediction_cache_path,
            logs=settings.log_path,
            config=settings.config_path,
            backups=settings.backup_path,
        )

    @property
    def top_level(self) -> dict[str, Path]:
        """The folders directly below the root by name, as the storage monitor measures them."""
        at_default = default_tree(self.root)
        folders = (
            at_default.ml_models,
            at_default.ml_cache,
            at_default.scalers,
            self.stock_data,
            at_default.logs,
            at_default.config,
            at_default.backups,
            self.redis,
            self.prometheus,
            self.grafana,
            self.monitoring,
            self.frontend,
            self.ledger,
        )
        return {folder.name: folder for folder in folders}

    @property
    def legacy_models(self) -> Path:
        """The v3.3.0 layout's `models/` folder beside the data root (`*.h5`, `*.pkl`)."""
        return self.root.parent / "models"

    @property
    def predictions_cache(self) -> Path:
        return self.ml_cache / "predictions_cache"

    @property
    def model_cache(self) -> Path:
        return self.ml_cache / "model_cache"

    def legacy_refresh_locks(self) -> list[Path]:
        """Lock files that versions locking price refreshes with a file left per symbol."""
        return sorted(self.stock_historical.glob("*/.refresh.lock"))

    @property
    def stock_data(self) -> Path:
        return self.root / STOCK_DATA

    @property
    def daily_cache(self) -> Path:
        return self.stock_cache / "daily_cache"

    @property
    def intraday_cache(self) -> Path:
        return self.stock_cache / "intraday_cache"

    @property
    def predictions_daily(self) -> Path:
        return self.predictions / "daily"

    @property
    def predictions_analysis(self) -> Path:
        return self.predictions / "analysis"

    @property
    def logs_application(self) -> Path:
        return self.logs / APPLICATION_LOGS

    @property
    def redis(self) -> Path:
        return self.root / "redis"

    @property
    def redis_socket(self) -> Path:
        """Unix socket of the Redis that `make run` starts when no port or URL is set."""
        return self.redis / "redis.sock"

    @property
    def redis_conf(self) -> Path:
        """The Redis configuration file written by `stockpred setup`."""
        return self.config / "redis.conf"

    @property
    def persistent_env(self) -> Path:
        """The operator's env file; values there lose to the process environment."""
        return self.config / PERSISTENT_ENV

    @property
    def secret_files(self) -> tuple[Path, ...]:
        """Files that hold secrets: owner-only (600) wherever they are, backups included."""
        return (self.persistent_env,)

    @property
    def ml_config(self) -> Path:
        """Model hyper-parameters and the retraining policy."""
        return self.root / "ml_config.json"

    @property
    def flower_db(self) -> Path:
        """Flower's persistent state (task history across restarts)."""
        return self.monitoring / "flower.db"

    @property
    def metrics(self) -> Path:
        """Multi-process metric files of the process set."""
        return self.monitoring / "metrics"

    @property
    def web_metrics(self) -> Path:
        """Metric files of the gunicorn workers, aggregated by the web's /metrics."""
        return self.metrics / "web"

    @property
    def worker_metrics(self) -> Path:
        """Metric files of the Celery pool children, aggregated by the exporter."""
        return self.metrics / "workers"

    @property
    def api_log(self) -> Path:
        """One line per HTTP request."""
        return self.logs_application / "api.log"

    @property
    def prediction_log(self) -> Path:
        """One line per computed prediction."""
        return self.logs_application / "prediction.log"

    @property
    def error_log(self) -> Path:
        """ERROR and above, from every process."""
        return self.logs_application / "error.log"

    @property
    def storage_report(self) -> Path:
        """The storage monitor's last report."""
        return self.monitoring / "storage-report.json"

    @property
    def storage_metrics(self) -> Path:
        """The storage monitor's last report as Prometheus text."""
        return self.monitoring / "storage.prom"

    @property
    def cleanup_report(self) -> Path:
        """The last cleanup's report."""
        return self.monitoring / "cleanup-report.json"

    @property
    def redis_dump(self) -> Path:
        """Redis's RDB snapshot (what a backup of the `redis` category holds)."""
        return self.redis / "dump.rdb"

    @property
    def storage_lock(self) -> Path:
        """Serialises backup, restore and cleanup on this host."""
        return self.backups / ".storage.lock"

    @property
    def supervisor(self) -> Path:
        """Per-host state of `make run`'s supervisord, rewritten at each start; never backed up."""
        return self.root / "supervisor"

    @property
    def gunicorn_control_socket(self) -> Path:
        """gunicorn's control socket (`gunicornc -s <path>`): this host's web, no other's."""
        return self.supervisor / "gunicorn.ctl"

    @property
    def supervisord_conf(self) -> Path:
        """supervisord's configuration, generated from the Procfile by `stockpred run`."""
        return self.supervisor / "supervisord.conf"

    @property
    def supervisord_socket(self) -> Path:
        """supervisord's control socket (what `stockpred ctl` and supervisorctl talk to)."""
        return self.supervisor / "supervisord.sock"

    @property
    def supervisord_pid(self) -> Path:
        return self.supervisor / "supervisord.pid"

    @property
    def supervisord_log(self) -> Path:
        """supervisord's own log: starts, exits and restarts of the process set."""
        return self.supervisor / "supervisord.log"

    @property
    def ledger(self) -> Path:
        """The forecast ledger's embedded database (unused when DATABASE_URL names a server)."""
        return self.root / "ledger"

    @property
    def ledger_db(self) -> Path:
        """The SQLite file of the forecast ledger (its `-wal` and `-shm` files sit beside it)."""
        return self.ledger / "forecasts.db"

    @property
    def ledger_pg_dump(self) -> Path:
        """Where a backup keeps a PostgreSQL ledger's dump (never a live file: restore loads it)."""
        return self.ledger / "postgresql.dump"

    @property
    def prometheus(self) -> Path:
        return self.root / "prometheus"

    @property
    def grafana(self) -> Path:
        return self.root / "grafana"

    @property
    def monitoring(self) -> Path:
        return self.root / "monitoring"

    @property
    def frontend(self) -> Path:
        return self.root / "frontend"

    def private_directories(self) -> frozenset[Path]:
        """Folders only the owner may enter (700): backups hold copies of the secret files."""
        return frozenset({self.backups})

    def category_roots(self) -> dict[str, list[Path]]:
        """The folders (or files) each backup category covers."""
        return {
            "models": [self.ml_models, self.scalers],
            "ml_cache": [self.ml_cache],
            "stock_data": [self.stock_historical, self.stock_cache, self.predictions],
            "config": [self.config, self.ml_config],
            "logs": [self.logs],
            "redis": [self.redis_dump],
            "monitoring": [self.monitoring, self.grafana],
            # The SQLite file alone: a backup holds a consistent copy made with SQLite's backup
            # API, never the live file or its -wal/-shm companions; or, when DATABASE_URL names
            # a PostgreSQL server, that database's pg_dump.
            "ledger": [self.ledger_db, self.ledger_pg_dump],
        }

    def backup_category(self, relative: str) -> str | None:
        """The category a root-relative path is backed up (and may be restored) under, or None.

        None for a path that is not plain (absolute, `..`, empty), for anything under backups/,
        for locks, temp, partial, staging and socket files, yfinance's per-process caches, and
        for paths no category covers. Where roots nest, the innermost decides.
        """
        pure = PurePosixPath(relative)
        if (
            not relative
            or "\\" in relative
            or pure.is_absolute()
            or not pure.parts
            or any(part in ("", ".", "..") for part in relative.split("/"))
        ):
            return None
        path = self.root.joinpath(*pure.parts)
        name = path.name
        if name.endswith(_UNBACKED_SUFFIXES) or any(
            part.startswith(_STAGING_PREFIX) for part in pure.parts
        ):
            return None
        if self.backups == path or self.backups in path.parents:
            return None
        if self.stock_cache / "yfinance" in path.parents:
            return None
        found: tuple[int, str] | None = None
        for category, roots in self.category_roots().items():
            for root in roots:
                if (root == path or root in path.parents) and (
                    found is None or len(root.parts) > found[0]
                ):
                    found = (len(root.parts), category)
        return None if found is None else found[1]

    def directories(self) -> dict[str, Path]:
        """Every folder of the tree by a short name, parents before children."""
        return {
            "root": self.root,
            "ml_models": self.ml_models,
            "ml_cache": self.ml_cache,
            "ml_cache/predictions_cache": self.predictions_cache,
            "ml_cache/model_cache": self.model_cache,
            "scalers": self.scalers,
            "stock_data": self.stock_data,
            "stock_data/historical": self.stock_historical,
            "stock_data/cache": self.stock_cache,
            "stock_data/cache/daily_cache": self.daily_cache,
            "stock_data/cache/intraday_cache": self.intraday_cache,
            "stock_data/predictions": self.predictions,
            "stock_data/predictions/daily": self.predictions_daily,
            "stock_data/predictions/analysis": self.predictions_analysis,
            "logs": self.logs,
            "logs/application": self.logs_application,
            "logs/prometheus": self.logs / "prometheus",
            "logs/grafana": self.logs / "grafana",
            "config": self.config,
            "backups": self.backups,
            "redis": self.redis,
            "prometheus": self.prometheus,
            "grafana": self.grafana,
            "monitoring": self.monitoring,
            "frontend": self.frontend,
            "frontend/logs": self.frontend / "logs",
            "frontend/cache": self.frontend / "cache",
            "ledger": self.ledger,
        }


def default_tree(root: Path) -> DataTree:
    """The tree with every movable folder at its default place under `root`."""
    stock_data = root / STOCK_DATA
    return DataTree(
        root=root,
        ml_models=root / "ml_models",
        ml_cache=root / "ml_cache",
        scalers=root / "scalers",
        stock_historical=stock_data / "historical",
        stock_cache=stock_data / "cache",
        predictions=stock_data / "predictions",
        logs=root / "logs",
        config=root / CONFIG,
        backups=root / "backups",
    )


def default_log_file(logs: Path) -> Path:
    """The main log file under a log root."""
    return logs / APPLICATION_LOGS / MAIN_LOG


def ensure_directories(tree: DataTree) -> tuple[list[Path], list[Path]]:
    """Create missing folders (755; private ones 700) and tighten looser ones; return both."""
    created: list[Path] = []
    tightened: list[Path] = []
    private = tree.private_directories()
    for path in tree.directories().values():
        closed = 0o077 if path in private else 0o022
        if not path.is_dir():
            path.mkdir(parents=True, exist_ok=True)
            os.chmod(path, PRIVATE_DIR_MODE if path in private else DIR_MODE)
            created.append(path)
        elif stat.S_IMODE(path.stat().st_mode) & closed:
            os.chmod(path, stat.S_IMODE(path.stat().st_mode) & ~closed)
            tightened.append(path)
    return created, tightened


@dataclass(frozen=True)
class DirectoryCheck:
    """The state of one folder of the tree."""

    name: str
    path: Path
    exists: bool
    writable: bool
    mode: int | None
    problem: str | None

    @property
    def ok(self) -> bool:
        return self.problem is None

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "path": str(self.path),
            "exists": self.exists,
            "writable": self.writable,
            "mode": None if self.mode is None else oct(self.mode),
            "problem": self.problem,
        }


def check_directory(name: str, path: Path, private: bool = False) -> DirectoryCheck:
    """Check that a folder exists, accepts a file write and is not group/world-writable.

    A private folder (backups/) must also be closed to group and others (700).
    """
    if not path.is_dir():
        return DirectoryCheck(name, path, False, False, None, "missing")
    mode = stat.S_IMODE(path.stat().st_mode)
    writable = True
    try:
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-check-", delete=True):
            pass
    except OSError:
        writable = False
    problem = None
    expected = "700" if private else "755"
    if not writable:
        problem = "not writable"
    elif mode & 0o002:
        problem = f"world-writable ({oct(mode)}); expected {expected}"
    elif mode & 0o020:
        problem = f"group-writable ({oct(mode)}); expected {expected}"
    elif private and mode & 0o077:
        problem = f"open to group or others ({oct(mode)}); expected 700"
    return DirectoryCheck(name, path, True, writable, mode, problem)


def check_tree(tree: DataTree) -> list[DirectoryCheck]:
    """Check every folder of the tree."""
    private = tree.private_directories()
    return [
        check_directory(name, path, private=path in private)
        for name, path in tree.directories().items()
    ]


def directory_usage(path: Path) -> tuple[int, int]:
    """Return (bytes, files) below a folder, not following links."""
    total = files = 0
    for dirpath, _dirnames, filenames in os.walk(path):
        for filename in filenames:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, filename)).st_size
                files += 1
    return total, files


def free_bytes(path: Path) -> int:
    """Free bytes on the file system holding `path`."""
    return shutil.disk_usage(path).free
