"""Bringing the ledger's database to the newest schema with Alembic, configured in code.

The scripts ship in the package (`migrations/`), so an installed wheel migrates as a checkout
does. One migration at a time: PostgreSQL takes an advisory lock for the transaction, SQLite
its write lock (`write_transaction`); a second process waits, then finds nothing to do.
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from stockpred.ledger.database import engine_from_settings, shown_url, write_transaction
from stockpred.ledger.errors import LedgerUnavailable
from stockpred.settings import Settings

log = logging.getLogger(__name__)
SCRIPTS = Path(__file__).with_name("migrations")
# Any fixed 64-bit number shared by every migrating process ("ledger" in ASCII).
_ADVISORY_LOCK = 0x6C6564676572


@dataclass(frozen=True)
class Migration:
    """What one upgrade did: the revision before (None: an empty database) and after."""

    database: str
    before: str | None
    after: str

    @property
    def changed(self) -> bool:
        return self.before != self.after

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "changed": self.changed}


def _config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(SCRIPTS))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest revision the package ships."""
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None, "the package ships at least one migration"
    return head


def current_revision(engine: Engine) -> str | None:
    """The database's revision, or None when it has no ledger tables yet."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine) -> Migration:
    """Migrate the database to the head revision (creating the tables on an empty one)."""
    with write_transaction(engine) as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ADVISORY_LOCK})
        before = MigrationContext.configure(connection).get_current_revision()
        command.upgrade(_config(connection), "head")
        after = MigrationContext.configure(connection).get_current_revision()
    assert after is not None
    migration = Migration(shown_url(engine.url), before, after)
    if migration.changed:
        log.info("ledger %s migrated from %s to %s", migration.database, before or "empty", after)
    return migration


def _sqlite_file_revision(engine: Engine) -> str | None:
    """The revision a SQLite file records, read without a lock and without touching its folder.

    Only a shortcut for a setup with nothing to do (no `-wal`/`-shm` files come and go): an
    unreadable or missing answer (None) sends the caller down the locked path.
    """
    if engine.url.get_backend_name() != "sqlite" or not engine.url.database:
        return None
    path = Path(engine.url.database)
    if not path.is_file():
        return None
    try:
        # immutable: no lock and no shared-memory file; a revision, once set, only moves on.
        connection = sqlite3.connect(f"file:{quote(str(path))}?mode=ro&immutable=1", uri=True)
        try:
            row = connection.execute("SELECT version_num FROM alembic_version").fetchone()
        finally:
            connection.close()
    except sqlite3.Error as exc:
        log.debug("%s: no revision read without a lock (%s)", path, exc)
        return None
    return None if row is None else str(row[0])


def upgrade_database(settings: Settings) -> Migration:
    """Migrate the database the settings choose to the head revision; close its connections.

    Raises LedgerUnavailable when the database cannot be reached or refuses the migration.
    """
    engine = engine_from_settings(settings)
    head = head_revision()
    if _sqlite_file_revision(engine) == head:
        return Migration(shown_url(engine.url), head, head)
    try:
        return upgrade(engine)
    except DBAPIError as exc:
        # The driver's own message: SQLAlchemy's wraps it with the statement and a link.
        raise LedgerUnavailable(
            f"the ledger's database {shown_url(engine.url)} cannot be migrated: "
            f"{str(exc.orig).strip() or type(exc.orig).__name__}"
        ) from exc
    finally:
        engine.dispose()
