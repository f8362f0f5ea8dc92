"""Typed settings: each declared once, read from the environment and `config/persistent.env`.

`Settings` declares every variable the release notes name plus the service's own: its type,
default and the seed's variable name(s); the accepted forms live in the field types below.
Folder defaults come from `stockpred.paths`, which names every place under the data root.
Nothing is read at import: call `get_settings()` (cached, read once per process) or
`load_settings(environ)`. Does not create directories or open connections.
"""

from __future__ import annotations

import base64
import binascii
import functools
import os
import re
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, TypeVar

from pydantic import AliasChoices, BeforeValidator, Field, ValidationError, model_validator
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails, PydanticCustomError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from stockpred.paths import DEFAULT_ROOT, PERSISTENT_ENV, DataTree, default_log_file, default_tree

DURATION_FORMS = "a whole number followed by s, m, h or d (e.g. 30m, 1h, 6h, 24h)"
_DURATION_RE = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_URL_CREDENTIALS_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)([^/?#]*)@")
_URL_PASSWORD_PARAM_RE = re.compile(r"([?&]password=)[^&#]*")
_ENV_LINE_RE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$")


class SettingsError(ValueError):
    """A setting has a value the service cannot start with."""


def _duration_seconds(raw: str) -> int | None:
    match = _DURATION_RE.match(raw)
    if not match or int(match.group(1)) == 0:
        return None
    return int(match.group(1)) * _DURATION_UNITS[match.group(2)]


def parse_duration(name: str, raw: str) -> timedelta:
    """Parse `30m`, `1h`, `6h`, `24h` style values; raise SettingsError naming the variable."""
    seconds = _duration_seconds(raw)
    if seconds is None:
        raise SettingsError(f"{name}={raw!r} is not a duration: use {DURATION_FORMS}")
    return timedelta(seconds=seconds)


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
            # The line itself is not echoed: a mistyped secret would be printed with it.
            raise SettingsError(f"{path}:{number}: expected KEY=VALUE (the line is not shown)")
        key, value = match.groups()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key] = value
    return values


# Accepted forms. Each converter takes the variable's text (already stripped, never blank) and
# raises a "setting" error whose message completes "NAME='value' ..."; values that are not text
# (Settings(**fields) in tests) go to pydantic's own validation unchanged.


def _reject(forms: str) -> PydanticCustomError:
    return PydanticCustomError("setting", forms)


def _from_text(convert: Callable[[str], object]) -> BeforeValidator:
    def validate(raw: object) -> object:
        return convert(raw) if isinstance(raw, str) else raw

    return BeforeValidator(validate)


def _whole(low: int, high: int) -> BeforeValidator:
    def convert(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            value = low - 1
        if not low <= value <= high:
            raise _reject(f"must be a whole number from {low} to {high}")
        return value

    return _from_text(convert)


def _positive(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise _reject("must be a positive number such as 1.01")
    return value


def _duration(raw: str) -> timedelta:
    seconds = _duration_seconds(raw)
    if seconds is None:
        raise _reject(f"is not a duration: use {DURATION_FORMS}")
    return timedelta(seconds=seconds)


def _one_of(*allowed: str, upper: bool = False) -> BeforeValidator:
    def convert(raw: str) -> str:
        value = raw.upper() if upper else raw.lower()
        if value not in allowed:
            raise _reject(f"must be one of {', '.join(allowed)}")
        return value

    return _from_text(convert)


def _bool(raw: str) -> bool:
    value = raw.lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise _reject("must be true or false")


REDIS_URL_FORMS = (
    "must be a redis://host:port/db, rediss://… or unix:///path URL, or Sentinel's "
    "sentinel://host:26379;sentinel://host2:26379 (optional /db)"
)
SENTINEL_FORMS = (
    "must list sentinels as sentinel://host:port, separated by ';', each with the same optional "
    "/db and no credentials or options (REDIS_PASSWORD and REDIS_SENTINEL_PASSWORD hold those)"
)
SENTINEL_SCHEME = "sentinel://"
SENTINEL_DEFAULT_PORT = 26379
_SENTINEL_MASTER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class SentinelTarget:
    """A Sentinel deployment: the sentinels to ask, the master's name and the database."""

    nodes: tuple[tuple[str, int], ...]
    master: str
    db: int


def _sentinel_node(chunk: str) -> tuple[str, int, int | None]:
    """(host, port, db or None) of one `sentinel://host:port/db`; raise ValueError otherwise."""
    parts = urllib.parse.urlsplit(chunk)
    if parts.scheme != "sentinel" or "@" in parts.netloc or parts.query or parts.fragment:
        raise ValueError(chunk)
    host = parts.hostname
    port = parts.port or SENTINEL_DEFAULT_PORT  # ValueError for a bad port
    if not host:
        raise ValueError(chunk)
    path = parts.path.strip("/")
    if path and not path.isdigit():
        raise ValueError(chunk)
    return host, port, int(path) if path else None


def _sentinel_url(raw: str) -> str:
    """The canonical `sentinel://host:port/db;…` form of a sentinel list (kombu's spelling)."""
    try:
        nodes = [_sentinel_node(chunk.strip()) for chunk in raw.split(";") if chunk.strip()]
    except ValueError:
        raise _reject(SENTINEL_FORMS) from None
    dbs = {db for _, _, db in nodes if db is not None}
    if not nodes or len(dbs) > 1:
        raise _reject(SENTINEL_FORMS)
    db = dbs.pop() if dbs else 0
    return ";".join(
        f"{SENTINEL_SCHEME}{f'[{host}]' if ':' in host else host}:{port}/{db}"
        for host, port, _ in dict.fromkeys(nodes)
    )


def parse_sentinels(url: str, master: str) -> SentinelTarget:
    """The deployment a canonical sentinel list (as `REDIS_URL` keeps it) names."""
    nodes = [_sentinel_node(chunk) for chunk in url.split(";")]
    return SentinelTarget(
        nodes=tuple((host, port) for host, port, _ in nodes), master=master, db=nodes[0][2] or 0
    )


def _sentinel_master(raw: str) -> str:
    if not _SENTINEL_MASTER_RE.match(raw):
        raise _reject("must be the master's name in sentinel.conf, such as mymaster")
    return raw


def _redis_url(raw: str) -> str:
    if raw.startswith(SENTINEL_SCHEME):
        return _sentinel_url(raw)
    if not raw.startswith(("redis://", "rediss://", "unix://", "redis+socket://")):
        raise _reject(REDIS_URL_FORMS)
    if raw.startswith("redis+socket://"):
        # Kept in redis-py's spelling; `celery_url` gives kombu its own.
        return "unix://" + raw[len("redis+socket://") :].replace("virtual_host=", "db=")
    return raw


DATABASE_FORMS = (
    "must be a sqlite:///path/to/file.db or postgresql://user:password@host:port/database URL"
)
_POSTGRESQL = ("postgresql", "postgresql+psycopg", "postgres")
_SQLITE = ("sqlite", "sqlite+pysqlite")


def _database_url(raw: str) -> str:
    # Deferred: only a process that reads this setting needs SQLAlchemy's URL parser.
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(raw)
    except (ArgumentError, ValueError):
        raise _reject(DATABASE_FORMS) from None
    if url.drivername in _POSTGRESQL and url.database:
        # Kept in SQLAlchemy's spelling with the driver the project installs (psycopg 3).
        return url.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    if url.drivername in _SQLITE and url.database and url.database != ":memory:":
        return url.set(drivername="sqlite").render_as_string(hide_password=False)
    raise _reject(DATABASE_FORMS)


SYMBOL_LIST_FORMS = "must be symbols separated by commas, such as AAPL,MSFT,^GSPC"


def _symbol_list(raw: str) -> tuple[str, ...]:
    # Deferred: the symbol rule lives with the market package; it imports nothing heavy.
    from stockpred.market.symbols import InvalidSymbol, normalize_symbol

    names = [name.strip() for name in raw.split(",") if name.strip()]
    try:
        return tuple(dict.fromkeys(normalize_symbol(name) for name in names))
    except InvalidSymbol as exc:
        raise _reject(f"{SYMBOL_LIST_FORMS}: {exc}") from None


def _fernet_key(raw: str) -> str:
    try:
        ok = len(base64.urlsafe_b64decode(raw.encode())) == 32
    except (binascii.Error, ValueError):
        ok = False
    if not ok:
        raise _reject(
            "must be a Fernet key (32 url-safe base64 bytes); make one with "
            "`stockpred storage keygen`"
        )
    return raw


def _basic_auth(raw: str) -> str:
    user, sep, password = raw.partition(":")
    if not sep or not user or not password:
        raise _reject("must be user:password with neither part empty")
    return raw


MIN_API_TOKEN_LENGTH = 32  # `stockpred setup` generates 43 characters (secrets.token_urlsafe(32))


def _api_token(raw: str) -> str:
    if len(raw) < MIN_API_TOKEN_LENGTH:
        raise _reject(
            f"must be at least {MIN_API_TOKEN_LENGTH} characters (it has {len(raw)}); "
            "make one with `python3 -c 'import secrets; print(secrets.token_urlsafe(32))'`"
        )
    return raw


def _rate_limit(raw: str) -> str:
    # Deferred: only a process that reads this setting needs the limiter's parser.
    from limits import parse_many

    try:
        parse_many(raw)
    except ValueError:
        raise _reject(
            "must be a rate such as 120/minute, 10 per second or 100/minute;2000/hour"
        ) from None
    return raw


def _path(raw: str) -> Path:
    try:
        return Path(raw).expanduser().resolve()
    except (OSError, ValueError, RuntimeError):
        raise _reject("is not a usable path") from None


def _folder_of(*suffixes: str) -> BeforeValidator:
    """Accept a folder, or (as the original's variables did) a file inside it."""

    def convert(raw: str) -> Path:
        # Judged by the name as given: a symlinked model file names its folder, not its target's.
        given = Path(raw).expanduser()
        if given.suffix in suffixes or given.name.endswith("_lstm_model"):
            return _path(str(given.parent))
        return _path(raw)

    return _from_text(convert)


AbsPath = Annotated[Path, _from_text(_path)]
Port = Annotated[int, _whole(1, 65535)]
Days = Annotated[int, _whole(1, 3650)]
Keep = Annotated[int, _whole(1, 1000)]
Positive = Annotated[float, _from_text(_positive)]
Duration = Annotated[timedelta, _from_text(_duration)]
Flag = Annotated[bool, _from_text(_bool)]
RedisUrl = Annotated[str, _from_text(_redis_url)]
SentinelMaster = Annotated[str, _from_text(_sentinel_master)]
DatabaseUrl = Annotated[str, _from_text(_database_url)]
SymbolList = Annotated[tuple[str, ...], _from_text(_symbol_list)]
RateLimit = Annotated[str, _from_text(_rate_limit)]
QueueBound = Annotated[int, _whole(1, 1_000_000)]
FernetKey = Annotated[str, _from_text(_fernet_key)]
BasicAuth = Annotated[str, _from_text(_basic_auth)]
ApiToken = Annotated[str, _from_text(_api_token)]
LogLevel = Annotated[str, _one_of("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL", upper=True)]
DataSource = Annotated[str, _one_of("auto", "yahoo", "embedded", "csv")]


def _seed(*names: str) -> AliasChoices:
    """The seed's variable names of one setting; the first one set wins."""
    return AliasChoices(*names)


def _at_default(pick: Callable[[DataTree], Path]) -> Callable[[dict[str, Any]], Path]:
    """Default of a movable folder: its place in the tree under the (validated) data root."""
    return lambda data: pick(default_tree(data["data_dir"]))


class _Root(BaseSettings):
    """The two settings that say where persistent.env is; they come from the environment only."""

    model_config = SettingsConfigDict(
        frozen=True, validate_by_name=True, validate_by_alias=True, extra="forbid"
    )

    data_dir: AbsPath = Field(
        default_factory=DEFAULT_ROOT.resolve, validation_alias=_seed("STOCKPRED_DATA_DIR")
    )
    config_path: AbsPath = Field(
        default_factory=_at_default(lambda tree: tree.config), validation_alias=_seed("CONFIG_PATH")
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Read nothing by default: `load_settings` passes the sources it chose."""
        return (init_settings,)


RootT = TypeVar("RootT", bound=_Root)


class Settings(_Root):
    """Every setting of the service, with paths resolved to absolute ones.

    Build it with `load_settings`/`get_settings`; `Settings(**fields)` reads nothing.
    """

    ml_model_path: Annotated[Path, _folder_of(".h5", ".keras")] = Field(
        default_factory=_at_default(lambda tree: tree.ml_models),
        validation_alias=_seed("ML_MODEL_PATH"),
    )
    scalers_path: Annotated[Path, _folder_of(".pkl", ".joblib")] = Field(
        default_factory=_at_default(lambda tree: tree.scalers),
        validation_alias=_seed("SCALERS_PATH", "ML_SCALER_PATH"),
    )
    ml_cache_path: AbsPath = Field(
        default_factory=_at_default(lambda tree: tree.ml_cache),
        validation_alias=_seed("ML_CACHE_PATH"),
    )
    stock_data_cache_path: AbsPath = Field(
        default_factory=_at_default(lambda tree: tree.stock_cache),
        validation_alias=_seed("STOCK_DATA_CACHE_PATH"),
    )
    stock_historical_path: AbsPath = Field(
        default_factory=_at_default(lambda tree: tree.stock_historical),
        validation_alias=_seed("STOCK_HISTORICAL_PATH"),
    )
    prediction_cache_path: AbsPath = Field(
        default_factory=_at_default(lambda tree: tree.predictions),
        validation_alias=_seed("PREDICTION_CACHE_PATH"),
    )
    log_path: AbsPath = Field(
        default_factory=_at_default(lambda tree: tree.logs), validation_alias=_seed("LOG_PATH")
    )
    log_file: AbsPath = Field(
        default_factory=lambda data: default_log_file(data["log_path"]),
        validation_alias=_seed("LOG_FILE"),
    )
    backup_path: AbsPath = Field(
        default_factory=_at_default(lambda tree: tree.backups),
        validation_alias=_seed("BACKUP_PATH"),
    )
    ml_prediction_ttl: Duration = Field(
        timedelta(hours=1), validation_alias=_seed("ML_PREDICTION_TTL")
    )
    stock_data_ttl: Duration = Field(
        timedelta(minutes=30), validation_alias=_seed("STOCK_DATA_TTL")
    )
    # Models one inference process keeps loaded; past it the least recently used is dropped.
    model_cache_size: Annotated[int, _whole(1, 10_000)] = Field(
        20, validation_alias=_seed("MODEL_CACHE_SIZE")
    )
    cache_cleanup_interval: Duration = Field(
        timedelta(hours=6), validation_alias=_seed("CACHE_CLEANUP_INTERVAL")
    )
    buy_threshold: Positive = Field(1.01, validation_alias=_seed("STOCK_BUY_THRESHOLD"))
    sell_threshold: Positive = Field(0.99, validation_alias=_seed("STOCK_SELL_THRESHOLD"))
    redis_url: RedisUrl | None = Field(None, validation_alias=_seed("REDIS_URL"))
    redis_port: Port | None = Field(None, validation_alias=_seed("REDIS_PORT"))
    redis_password: str | None = Field(None, validation_alias=_seed("REDIS_PASSWORD"), repr=False)
    # With REDIS_URL=sentinel://…: the master's name the sentinels monitor, and the sentinels'
    # own password (`requirepass` in sentinel.conf); REDIS_PASSWORD stays the data nodes'.
    redis_sentinel_master: SentinelMaster = Field(
        "mymaster", validation_alias=_seed("REDIS_SENTINEL_MASTER")
    )
    redis_sentinel_password: str | None = Field(
        None, validation_alias=_seed("REDIS_SENTINEL_PASSWORD"), repr=False
    )
    # Secret: a PostgreSQL URL carries its password.
    database_url: DatabaseUrl | None = Field(
        None, validation_alias=_seed("DATABASE_URL"), repr=False
    )
    # The daily run's symbols before any POST/DELETE /api/v1/symbols; None: the embedded ones.
    tracked_symbols: SymbolList | None = Field(None, validation_alias=_seed("TRACKED_SYMBOLS"))
    web_host: str = Field("127.0.0.1", validation_alias=_seed("WEB_HOST"))
    web_port: Port = Field(8080, validation_alias=_seed("WEB_PORT"))
    web_workers: Annotated[int, _whole(1, 64)] = Field(2, validation_alias=_seed("WEB_WORKERS"))
    web_threads: Annotated[int, _whole(1, 4096)] = Field(256, validation_alias=_seed("WEB_THREADS"))
    web_trusted_proxies: Annotated[int, _whole(0, 10)] = Field(
        0, validation_alias=_seed("WEB_TRUSTED_PROXIES")
    )
    rate_limit_reads: RateLimit = Field("1200/minute", validation_alias=_seed("RATE_LIMIT_READS"))
    rate_limit_work: RateLimit = Field("120/minute", validation_alias=_seed("RATE_LIMIT_WORK"))
    rate_limit_mutations: RateLimit = Field(
        "60/minute", validation_alias=_seed("RATE_LIMIT_MUTATIONS")
    )
    queue_max_inference: QueueBound = Field(500, validation_alias=_seed("QUEUE_MAX_INFERENCE"))
    queue_max_training: QueueBound = Field(20, validation_alias=_seed("QUEUE_MAX_TRAINING"))
    queue_max_maintenance: QueueBound = Field(200, validation_alias=_seed("QUEUE_MAX_MAINTENANCE"))
    flower_address: str = Field("127.0.0.1", validation_alias=_seed("FLOWER_ADDRESS"))
    flower_port: Port = Field(5555, validation_alias=_seed("FLOWER_PORT"))
    flower_basic_auth: BasicAuth | None = Field(
        None, validation_alias=_seed("FLOWER_BASIC_AUTH"), repr=False
    )
    api_token: ApiToken | None = Field(
        None, validation_alias=_seed("STOCKPRED_API_TOKEN"), repr=False
    )
    log_level: LogLevel = Field("INFO", validation_alias=_seed("LOG_LEVEL"))
    log_max_bytes: Annotated[int, _whole(1024, 2**40)] = Field(
        10 * 1024 * 1024, validation_alias=_seed("LOG_MAX_BYTES")
    )
    log_backup_count: Keep = Field(5, validation_alias=_seed("LOG_BACKUP_COUNT"))
    health_timeout: Positive = Field(1.0, validation_alias=_seed("HEALTH_TIMEOUT"))
    redis_memory_warn_percent: Annotated[int, _whole(1, 100)] = Field(
        80, validation_alias=_seed("REDIS_MEMORY_WARN_PERCENT")
    )
    job_ttl: Duration = Field(timedelta(days=7), validation_alias=_seed("JOB_TTL"))
    task_max_redeliveries: Annotated[int, _whole(0, 100)] = Field(
        3, validation_alias=_seed("TASK_MAX_REDELIVERIES")
    )
    training_time_limit: Duration = Field(
        timedelta(hours=2), validation_alias=_seed("TRAINING_TIME_LIMIT")
    )
    training_lock_ttl: Duration = Field(
        timedelta(minutes=5), validation_alias=_seed("TRAINING_LOCK_TTL")
    )
    no_data_ttl: Duration = Field(timedelta(hours=1), validation_alias=_seed("NO_DATA_TTL"))
    # How long a killed beat keeps the others (and its own restart) from scheduling; beat
    # extends its lock five times in it, so a short one costs a few Redis reads a second at most.
    beat_lock_timeout: Duration = Field(
        timedelta(seconds=15), validation_alias=_seed("BEAT_LOCK_TIMEOUT")
    )
    # How often beat looks for jobs whose worker stopped answering (its host died) and fails them.
    lost_worker_check: Duration = Field(
        timedelta(seconds=30), validation_alias=_seed("LOST_WORKER_CHECK")
    )
    # A killed backup's lock keeps the next storage run waiting this long (renewed while held).
    storage_lock_ttl: Duration = Field(
        timedelta(seconds=30), validation_alias=_seed("STORAGE_LOCK_TTL")
    )
    stock_data_source: DataSource = Field("auto", validation_alias=_seed("STOCK_DATA_SOURCE"))
    yahoo_timeout: Positive = Field(10.0, validation_alias=_seed("YAHOO_TIMEOUT"))
    yahoo_rate_limit: Positive = Field(10.0, validation_alias=_seed("YAHOO_RATE_LIMIT"))
    historical_wait: Positive = Field(8.0, validation_alias=_seed("HISTORICAL_WAIT"))
    predict_wait: Positive = Field(10.0, validation_alias=_seed("PREDICT_WAIT"))
    auto_train: Flag = Field(False, validation_alias=_seed("AUTO_TRAIN"))
    backup_keep: Keep = Field(10, validation_alias=_seed("BACKUP_KEEP"))
    metrics_address: str = Field("127.0.0.1", validation_alias=_seed("METRICS_ADDRESS"))
    metrics_port: Port = Field(9105, validation_alias=_seed("METRICS_PORT"))
    backup_encryption_key: FernetKey | None = Field(
        None, validation_alias=_seed("BACKUP_ENCRYPTION_KEY"), repr=False
    )
    backup_log_days: Days = Field(7, validation_alias=_seed("BACKUP_LOG_DAYS"))
    backup_max_age: Duration = Field(timedelta(hours=26), validation_alias=_seed("BACKUP_MAX_AGE"))
    cleanup_cache_days: Days = Field(1, validation_alias=_seed("CLEANUP_CACHE_DAYS"))
    cleanup_log_days: Days = Field(30, validation_alias=_seed("CLEANUP_LOG_DAYS"))
    cleanup_prediction_days: Days = Field(7, validation_alias=_seed("CLEANUP_PREDICTION_DAYS"))

    @model_validator(mode="after")
    def _sell_below_buy(self) -> Settings:
        if self.sell_threshold >= self.buy_threshold:
            raise PydanticCustomError(
                "setting",
                f"STOCK_SELL_THRESHOLD={self.sell_threshold} must be below "
                f"STOCK_BUY_THRESHOLD={self.buy_threshold}",
            )
        return self

    @model_validator(mode="after")
    def _beat_lock_spans_ticks(self) -> Settings:
        if self.beat_lock_timeout < timedelta(seconds=5):
            raise PydanticCustomError(
                "setting",
                f"BEAT_LOCK_TIMEOUT={format_duration(self.beat_lock_timeout)} must be at least "
                "5s (beat extends it five times within it, so at most once a second)",
            )
        return self

    @property
    def redis_sentinel(self) -> SentinelTarget | None:
        """The Sentinel deployment REDIS_URL names (sentinel://…), or None for one server."""
        if self.redis_url and self.redis_url.startswith(SENTINEL_SCHEME):
            return parse_sentinels(self.redis_url, self.redis_sentinel_master)
        return None

    @property
    def redis_client_url(self) -> str:
        """URL for redis-py clients: REDIS_PASSWORD folded into a TCP URL that names none.

        With sentinels, their `sentinel://` list (kombu's form, with the data nodes' password):
        redis-py's `from_url` refuses it, `infra.redis_client.connect` asks the sentinels.
        """
        if self.redis_url:
            return with_password(self.redis_url, self.redis_password)
        if self.redis_port is not None:
            return with_password(f"redis://127.0.0.1:{self.redis_port}/0", self.redis_password)
        # The socket is owner-only (unixsocketperm 700): the file mode is the authentication.
        return f"unix://{DataTree.from_settings(self).redis_socket}?db=0"

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

    def masked_values(self) -> dict[str, object]:
        """Every setting by field name, for display: secrets masked, durations and paths as text."""
        values: dict[str, object] = {}
        for name, field in type(self).model_fields.items():
            value = getattr(self, name)
            if field.repr is False:
                value = "(set)" if value else "(not set)"
            elif name == "redis_url" and value:
                value = masked_url(value)
            elif isinstance(value, timedelta):
                value = format_duration(value)
            elif isinstance(value, Path):
                value = str(value)
            values[name] = value
        return values


def with_password(url: str, password: str | None) -> str:
    """`url` with `password` as its credentials, unless it is a socket or already names some.

    A `;`-separated sentinel list gets it on every entry (kombu and Celery read the first).
    """
    if url.startswith(SENTINEL_SCHEME) and ";" in url:
        return ";".join(with_password(chunk, password) for chunk in url.split(";"))
    parts = urllib.parse.urlsplit(url)
    if not password or parts.scheme not in ("redis", "rediss", "sentinel") or "@" in parts.netloc:
        return url
    quoted = urllib.parse.quote(password, safe="")
    return urllib.parse.urlunsplit(parts._replace(netloc=f":{quoted}@{parts.netloc}"))


def masked_url(url: str) -> str:
    """`url` for display: its password (or lone credential) and a `password=` parameter as ***."""

    def hide(match: re.Match[str]) -> str:
        user, has_password, _ = match.group(2).partition(":")
        return f"{match.group(1)}{user + ':' if has_password else ''}***@"

    if url.startswith(SENTINEL_SCHEME) and ";" in url:
        return ";".join(masked_url(chunk) for chunk in url.split(";"))
    url = _URL_CREDENTIALS_RE.sub(hide, url, count=1)
    return _URL_PASSWORD_PARAM_RE.sub(r"\1***", url)


def seed_names(field: FieldInfo) -> tuple[str, ...]:
    """The variable names one declared setting is read from, in order of precedence."""
    alias = field.validation_alias
    if isinstance(alias, AliasChoices):
        return tuple(choice for choice in alias.choices if isinstance(choice, str))
    return (alias,) if isinstance(alias, str) else ()


def variable_names() -> list[str]:
    """Every variable the settings read, in declaration order."""
    return [name for field in Settings.model_fields.values() for name in seed_names(field)]


class _SeedSource(PydanticBaseSettingsSource):
    """One mapping of the seed's variables (the environment, or persistent.env), by field.

    Values are stripped and blank ones count as unset. Keyed by field name, so a field set here
    by any of its names loses, as a whole, to a source of higher priority.
    """

    def __init__(
        self,
        settings_cls: type[BaseSettings],
        values: Mapping[str, str],
        origin: Path | None = None,
        skip: frozenset[str] = frozenset(),
    ) -> None:
        super().__init__(settings_cls)
        self._values = values
        self.origin = origin
        self._skip = skip
        self.found: dict[str, tuple[str, str]] = {}

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        """Return (value, variable name, False) for the first of the field's names that is set."""
        for name in seed_names(field):
            value = self._values.get(name)
            if value is not None and value.strip():
                return value.strip(), name, False
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        for field_name, field in self.settings_cls.model_fields.items():
            if field_name in self._skip:
                continue
            value, name, _ = self.get_field_value(field, field_name)
            if value is not None:
                data[field_name] = value
                self.found[field_name] = (name, value)
        return data


def _problem(error: ErrorDetails, sources: Sequence[_SeedSource]) -> str:
    """One line naming the variable the user set, its value (unless secret) and what is accepted."""
    if not error["loc"]:
        return error["msg"]
    field_name = str(error["loc"][0])
    field = Settings.model_fields.get(field_name)
    for source in sources:
        if field_name in source.found:
            name, raw = source.found[field_name]
            if field is not None and field.repr is False:
                shown = name
            else:
                # A URL's credentials are masked as `stockpred settings` masks them.
                value = masked_url(raw) if field_name == "redis_url" else raw
                shown = f"{name}={value!r}"
            where = f" (in {source.origin})" if source.origin else ""
            return f"{shown} {error['msg']}{where}"
    names = seed_names(field) if field is not None else ()
    return f"{names[0] if names else field_name} {error['msg']}"


def _build(settings_cls: type[RootT], sources: Sequence[_SeedSource]) -> RootT:
    # mypy checks calls against the fields (dataclass_transform), not BaseSettings' own keywords.
    construct: Callable[..., RootT] = settings_cls
    try:
        return construct(_build_sources=(tuple(sources), {}))
    except ValidationError as exc:
        problems = [
            _problem(error, sources)
            for error in exc.errors()
            if error["type"] != "default_factory_not_called"  # a consequence, not a cause
        ]
        raise SettingsError("; ".join(problems)) from None


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Build settings from `environ` (default os.environ), then the data root's persistent.env."""
    env = os.environ if environ is None else environ
    root = _build(_Root, [_SeedSource(_Root, env)])
    env_file = root.config_path / PERSISTENT_ENV
    return _build(
        Settings,
        [
            _SeedSource(Settings, env),
            _SeedSource(
                Settings,
                read_env_file(env_file),
                origin=env_file,
                skip=frozenset(_Root.model_fields),
            ),
        ],
    )


@functools.cache
def get_settings() -> Settings:
    """Return this process's settings, read once on first call."""
    return load_settings()
