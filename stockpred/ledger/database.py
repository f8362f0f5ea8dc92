"""The ledger's engine: DATABASE_URL (PostgreSQL), else the SQLite file in the data tree.

SQLite runs in WAL mode (readers never wait for the writer), with foreign keys enforced, a
busy timeout instead of an immediate "database is locked", and FULL sync (a committed forecast
survives a power cut). Its driver is put in autocommit and transactions are begun by us, so DDL
is transactional too (SQLAlchemy's documented pysqlite recipe); `write_transaction` begins
IMMEDIATE, taking the write lock first, so two writers queue instead of failing on upgrade.
SQLite's own journal makes every write atomic; nothing here goes through `infra.files`.

Create an engine in the process that uses it (a forked child makes its own). Nothing connects
at import.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url

from stockpred.infra.files import DIR_MODE
from stockpred.paths import DataTree
from stockpred.settings import Settings

BUSY_TIMEOUT_MS = 30_000
WAL_RETRY_SECONDS = 0.05
CONNECT_TIMEOUT_S = 10
_IMMEDIATE = "stockpred_begin_immediate"


def ledger_url(settings: Settings) -> URL:
    """DATABASE_URL, else the SQLite file in the data tree (any character allowed in its path)."""
    if settings.database_url:
        return make_url(settings.database_url)
    return URL.create("sqlite", database=str(DataTree.from_settings(settings).ledger_db))


def shown_url(url: URL | str) -> str:
    """The URL with its password masked, for logs and messages."""
    return make_url(url).render_as_string(hide_password=True)


def create_ledger_engine(url: URL | str) -> Engine:
    """An engine for the ledger's database; a SQLite file's folder is created if missing."""
    url = make_url(url)
    if url.get_backend_name() != "sqlite":
        # A server that does not answer fails the connection instead of hanging it.
        timeout = {} if "connect_timeout" in url.query else {"connect_timeout": CONNECT_TIMEOUT_S}
        return create_engine(url, pool_pre_ping=True, connect_args=timeout)
    assert url.database, "settings reject a SQLite URL without a file"
    folder = Path(url.database).parent
    if not folder.is_dir():
        folder.mkdir(parents=True, exist_ok=True)
        os.chmod(folder, DIR_MODE)
    engine = create_engine(url)
    event.listen(engine, "connect", _sqlite_on_connect)
    event.listen(engine, "begin", _sqlite_begin)
    return engine


def engine_from_settings(settings: Settings) -> Engine:
    """The ledger's engine as the settings choose it."""
    return create_ledger_engine(ledger_url(settings))


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # Autocommit at the driver: `_sqlite_begin` emits BEGIN itself (DDL included).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        _switch_to_wal(cursor)
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA synchronous = FULL")
    finally:
        cursor.close()


def _switch_to_wal(cursor: Any) -> None:
    """Put the database in WAL mode, retrying within the busy timeout.

    Two processes opening a new database at once: SQLite may answer the second one's switch
    "database is locked" at once, without calling its busy handler.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(WAL_RETRY_SECONDS)


def _sqlite_begin(connection: Connection) -> None:
    immediate = connection.get_execution_options().get(_IMMEDIATE, False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


@contextlib.contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A transaction that writes: committed when the block ends, rolled back on an exception."""
    with engine.connect() as connection:
        connection.execution_options(**{_IMMEDIATE: True})
        with connection.begin():
            yield connection
