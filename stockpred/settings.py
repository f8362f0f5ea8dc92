"""Typed settings read from the environment and `config/persistent.env`.

Holds every variable the release notes name plus the service's own. Nothing is read at import:
call `get_settings()` (cached, read once per process) or `load_settings(environ)`.
Does not create directories or open connections.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

DEFAULT_DATA_DIR = "./persistent_data"
DURATION_FORMS = "a whole number followed by s, m, h or d (e.g. 30m, 1h, 6h, 24h)"
_DURATION_RE = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_ENV_LINE_RE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$")


class SettingsError(ValueError):
    """A setting has a value the service cannot start with."""


@dataclass(frozen=True)
class Settings:
    """Every setting of the service, with paths resolved to absolute ones."""

    data_dir: Path
    ml_model_path: Path
    scalers_path: Path
    ml_cache_path: Path
    stock_data_cache_path: Path
    stock_historical_path: Path
    prediction_cache_path: Path
    log_path: Path
    log_file: Path
    backup_path: Path
    config_path: Path
    ml_prediction_ttl: timedelta = timedelta(hours=1)
    stock_data_ttl: timedelta = timedelta(minutes=30)
    cache_cleanup_interval: timedelta = timedelta(hours=6)
    buy_threshold: float = 1.01
    sell_threshold: float = 0.99
    redis_url: str | None = None
    redis_port: int | None = None
    web_host: str = "127.0.0.1"
    web_port: int = 8080
    web_workers: int = 2
    flower_address: str = "127.0.0.1"
    flower_port: int = 5555
    flower_basic_auth: str | None = field(default=None, repr=False)
    api_token: str | None = field(default=None, repr=False)
    log_level: str = "INFO"
    log_max_bytes: int = 10 * 1024 * 1024
    log_backup_count: int = 5
    health_timeout: float = 1.0
    job_ttl: timedelta = timedelta(days=7)
    training_time_limit: timedelta = timedelta(hours=2)
    stock_data_source: str = "auto"
    yahoo_timeout: float = 10.0
    yahoo_rate_limit: float = 10.0
    historical_wait: float = 8.0
    predict_wait: float = 10.0
    auto_train: bool = False
    backup_keep: int = 10
    metrics_address: str = "127.0.0.1"
    metrics_port: int = 9105
    backup_encryption_key: str | None = field(default=None, repr=False)
    backup_log_days: int = 7
    backup_max_age: timedelta = timedelta(hours=26)
    cleanup_cache_days: int = 1
    cleanup_log_days: int = 30
    cleanup_prediction_days: int = 7

    @property
    def redis_dir(self) -> Path:
        """Folder holding Redis's data (AOF, RDB) and, by default, its socket."""
        return self.data_dir / "redis"

    @property
    def redis_socket(self) -> Path:
        """Unix socket of the Redis that `make run` starts when no port or URL is set."""
        return self.redis_dir / "redis.sock"

    @property
    def redis_client_url(self) -> str:
        """URL for redis-py clients."""
        if self.redis_url:
            return self.redis_url
        if self.redis_port is not None:
            return f"redis://127.0.0.1:{self.redis_port}/0"
        return f"unix://{self.redis_socket}?db=0"

    @property
    def celery_url(self) -> str:
        """URL for Celery's broker and result backend (kombu spells sockets differently)."""
        url = self.redis_client_url
        if url.startswith("unix://"):
            return "redis+socket://" + url[len("unix://") :].replace("db=", "virtual_host=")
        return url

    @property
    def manages_redis(self) -> bool:
        """True when this project starts its own redis-server (no REDIS_URL given)."""
        return not self.redis_url

    @property
    def metrics_dir(self) -> Path:
        """Multi-process metric files: `web/` for gunicorn workers, `workers/` for Celery."""
        return self.data_dir / "monitoring" / "metrics"

    @property
    def redis_conf(self) -> Path:
        """The Redis configuration file written by `stockpred setup`."""
        return self.config_path / "redis.conf"

    @property
    def persistent_env(self) -> Path:
        """The operator's env file; values there lose to the process environment."""
        return self.config_path / "persistent.env"


def parse_duration(name: str, raw: str) -> timedelta:
    """Parse `30m`, `1h`, `6h`, `24h` style values; raise SettingsError naming the variable."""
    match = _DURATION_RE.match(raw)
    if not match or int(match.group(1)) == 0:
        raise SettingsError(f"{name}={raw!r} is not a duration: use {DURATION_FORMS}")
    return timedelta(seconds=int(match.group(1)) * _DURATION_UNITS[match.group(2)])


def format_duration(value: timedelta) -> str:
    """Render a duration in the largest unit that divides it exactly."""
    seconds = int(value.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def read_env_file(path: Path) -> dict[str, str]:
    """Read KEY=VALUE lines (comments, blank lines, `export` and quotes allowed)."""
    values: dict[str, str] = {}
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return values
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"{path}: cannot be read as UTF-8 text ({exc})") from None
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = _ENV_LINE_RE.match(line)
        if not match:
            raise SettingsError(f"{path}:{number}: expected KEY=VALUE, got {line.strip()!r}")
        key, value = match.groups()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key] = value
    return values


class _Reader:
    """Looks up variables in the environment first, then in persistent.env."""

    def __init__(self, environ: Mapping[str, str], file_values: Mapping[str, str]) -> None:
        self._environ = environ
        self._file = file_values

    def raw(self, *names: str) -> tuple[str, str] | None:
        """Return (name, value) of the first non-empty variable among `names`."""
        for source in (self._environ, self._file):
            for name in names:
                value = source.get(name)
                if value is not None and value.strip() != "":
                    return name, value.strip()
        return None

    def get(self, names: str | tuple[str, ...], convert: Callable[[str, str], T], default: T) -> T:
        """Convert the first variable set among `names`, or return the default."""
        found = self.raw(*((names,) if isinstance(names, str) else names))
        return default if found is None else convert(*found)


def _int_in(low: int, high: int) -> Callable[[str, str], int]:
    def convert(name: str, raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            value = low - 1
        if not low <= value <= high:
            raise SettingsError(f"{name}={raw!r} must be a whole number from {low} to {high}")
        return value

    return convert


def _positive_float(name: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise SettingsError(f"{name}={raw!r} must be a positive number such as 1.01")
    return value


def _text(name: str, raw: str) -> str:
    return raw


def _log_level(name: str, raw: str) -> str:
    level = raw.upper()
    if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
        raise SettingsError(f"{name}={raw!r} must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
    return level


def _redis_url(name: str, raw: str) -> str:
    if not raw.startswith(("redis://", "rediss://", "unix://", "redis+socket://")):
        raise SettingsError(
            f"{name}={raw!r} must be a redis://host:port/db, rediss://… or unix:///path URL"
        )
    if raw.startswith("redis+socket://"):
        # Kept in redis-py's spelling; `celery_url` gives kombu its own.
        return "unix://" + raw[len("redis+socket://") :].replace("virtual_host=", "db=")
    return raw


def _fernet_key(name: str, raw: str) -> str:
    import base64
    import binascii

    try:
        ok = len(base64.urlsafe_b64decode(raw.encode())) == 32
    except (binascii.Error, ValueError):
        ok = False
    if not ok:
        raise SettingsError(
            f"{name} must be a Fernet key (32 url-safe base64 bytes); make one with "
            "`stockpred storage keygen`"
        )
    return raw


def _bool(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise SettingsError(f"{name}={raw!r} must be true or false")


def _choice(*allowed: str) -> Callable[[str, str], str]:
    def convert(name: str, raw: str) -> str:
        value = raw.lower()
        if value not in allowed:
            raise SettingsError(f"{name}={raw!r} must be one of {', '.join(allowed)}")
        return value

    return convert


def _basic_auth(name: str, raw: str) -> str:
    user, sep, password = raw.partition(":")
    if not sep or not user or not password:
        raise SettingsError(f"{name} must be user:password with neither part empty")
    return raw


def _dir_of(suffixes: tuple[str, ...]) -> Callable[[str, str], Path]:
    """Accept a folder, or (as the original's variables did) a file inside it."""

    def convert(name: str, raw: str) -> Path:
        path = Path(raw).expanduser()
        if path.suffix in suffixes or path.name.endswith("_lstm_model"):
            return path.parent.resolve()
        return path.resolve()

    return convert


def _path(name: str, raw: str) -> Path:
    return Path(raw).expanduser().resolve()


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Build settings from `environ` (default os.environ) and the data root's persistent.env."""
    env = os.environ if environ is None else environ
    bootstrap = _Reader(env, {})
    data_dir = bootstrap.get("STOCKPRED_DATA_DIR", _path, Path(DEFAULT_DATA_DIR).resolve())
    config_path = bootstrap.get("CONFIG_PATH", _path, data_dir / "config")
    read = _Reader(env, read_env_file(config_path / "persistent.env"))

    log_path = read.get("LOG_PATH", _path, data_dir / "logs")
    buy = read.get("STOCK_BUY_THRESHOLD", _positive_float, 1.01)
    sell = read.get("STOCK_SELL_THRESHOLD", _positive_float, 0.99)
    if sell >= buy:
        raise SettingsError(f"STOCK_SELL_THRESHOLD={sell} must be below STOCK_BUY_THRESHOLD={buy}")
    return Settings(
        data_dir=data_dir,
        config_path=config_path,
        ml_model_path=read.get("ML_MODEL_PATH", _dir_of((".h5", ".keras")), data_dir / "ml_models"),
        scalers_path=read.get(
            ("SCALERS_PATH", "ML_SCALER_PATH"), _dir_of((".pkl", ".joblib")), data_dir / "scalers"
        ),
        ml_cache_path=read.get("ML_CACHE_PATH", _path, data_dir / "ml_cache"),
        stock_data_cache_path=read.get(
            "STOCK_DATA_CACHE_PATH", _path, data_dir / "stock_data" / "cache"
        ),
        stock_historical_path=read.get(
            "STOCK_HISTORICAL_PATH", _path, data_dir / "stock_data" / "historical"
        ),
        prediction_cache_path=read.get(
            "PREDICTION_CACHE_PATH", _path, data_dir / "stock_data" / "predictions"
        ),
        log_path=log_path,
        log_file=read.get("LOG_FILE", _path, log_path / "application" / "stock-prediction.log"),
        backup_path=read.get("BACKUP_PATH", _path, data_dir / "backups"),
        ml_prediction_ttl=read.get("ML_PREDICTION_TTL", parse_duration, timedelta(hours=1)),
        stock_data_ttl=read.get("STOCK_DATA_TTL", parse_duration, timedelta(minutes=30)),
        cache_cleanup_interval=read.get(
            "CACHE_CLEANUP_INTERVAL", parse_duration, timedelta(hours=6)
        ),
        buy_threshold=buy,
        sell_threshold=sell,
        redis_url=read.get("REDIS_URL", _redis_url, None),
        redis_port=read.get("REDIS_PORT", _int_in(1, 65535), None),
        web_host=read.get("WEB_HOST", _text, "127.0.0.1"),
        web_port=read.get("WEB_PORT", _int_in(1, 65535), 8080),
        web_workers=read.get("WEB_WORKERS", _int_in(1, 64), 2),
        flower_address=read.get("FLOWER_ADDRESS", _text, "127.0.0.1"),
        flower_port=read.get("FLOWER_PORT", _int_in(1, 65535), 5555),
        flower_basic_auth=read.get("FLOWER_BASIC_AUTH", _basic_auth, None),
        api_token=read.get("STOCKPRED_API_TOKEN", _text, None),
        log_level=read.get("LOG_LEVEL", _log_level, "INFO"),
        log_max_bytes=read.get("LOG_MAX_BYTES", _int_in(1024, 2**40), 10 * 1024 * 1024),
        log_backup_count=read.get("LOG_BACKUP_COUNT", _int_in(1, 1000), 5),
        health_timeout=read.get("HEALTH_TIMEOUT", _positive_float, 1.0),
        job_ttl=read.get("JOB_TTL", parse_duration, timedelta(days=7)),
        training_time_limit=read.get("TRAINING_TIME_LIMIT", parse_duration, timedelta(hours=2)),
        stock_data_source=read.get(
            "STOCK_DATA_SOURCE", _choice("auto", "yahoo", "embedded", "csv"), "auto"
        ),
        yahoo_timeout=read.get("YAHOO_TIMEOUT", _positive_float, 10.0),
        yahoo_rate_limit=read.get("YAHOO_RATE_LIMIT", _positive_float, 10.0),
        historical_wait=read.get("HISTORICAL_WAIT", _positive_float, 8.0),
        predict_wait=read.get("PREDICT_WAIT", _positive_float, 10.0),
        auto_train=read.get("AUTO_TRAIN", _bool, False),
        backup_keep=read.get("BACKUP_KEEP", _int_in(1, 1000), 10),
        metrics_address=read.get("METRICS_ADDRESS", _text, "127.0.0.1"),
        metrics_port=read.get("METRICS_PORT", _int_in(1, 65535), 9105),
        backup_encryption_key=read.get("BACKUP_ENCRYPTION_KEY", _fernet_key, None),
        backup_log_days=read.get("BACKUP_LOG_DAYS", _int_in(1, 3650), 7),
        backup_max_age=read.get("BACKUP_MAX_AGE", parse_duration, timedelta(hours=26)),
        cleanup_cache_days=read.get("CLEANUP_CACHE_DAYS", _int_in(1, 3650), 1),
        cleanup_log_days=read.get("CLEANUP_LOG_DAYS", _int_in(1, 3650), 30),
        cleanup_prediction_days=read.get("CLEANUP_PREDICTION_DAYS", _int_in(1, 3650), 7),
    )


@functools.cache
def get_settings() -> Settings:
    """Return this process's settings, read once on first call."""
    return load_settings()
