"""The ledger in backups: a consistent SQLite snapshot, or a real PostgreSQL's pg_dump, in the
archive, brought back by restore into the live database while connections stay open."""

from __future__ import annotations

import sqlite3
import tarfile
import uuid
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import text

from stockpred.ledger.database import engine_from_settings
from stockpred.ledger.entries import Forecast
from stockpred.ledger.migrate import upgrade_database
from stockpred.ledger.store import ForecastLedger
from stockpred.paths import DataTree
from stockpred.settings import Settings, load_settings
from stockpred.storage.archive import DATA_PREFIX
from stockpred.storage.backup import create_backup
from stockpred.storage.errors import BackupError
from stockpred.storage.restore import restore_backup
from stockpred.storage.service import StorageService
from tests.postgres import PostgresServer


def forecast(day: int) -> Forecast:
    as_of = date(2024, 1, 1) + timedelta(days=day)
    return Forecast(
        symbol="AAPL",
        as_of=as_of,
        target_date=as_of + timedelta(days=1),
        horizon=1,
        forecaster="lstm",
        model_version="v1",
        point=100.0 + day,
        naive=100.0,
        requested_at=datetime(2024, 1, 1, tzinfo=UTC),
    )


def test_a_backup_holds_the_ledger_as_committed_and_restore_brings_it_back(
    settings: Settings,
) -> None:
    tree = DataTree.from_settings(settings)
    engine = engine_from_settings(settings)  # stays open, as a worker's would
    ledger = ForecastLedger(engine)
    kept = [ledger.record(forecast(day)) for day in range(3)]
    # Committed rows still in the -wal file (no checkpoint yet) must be in the backup too.
    assert tree.ledger_db.with_name("forecasts.db-wal").stat().st_size > 0

    result = create_backup(tree, categories=["ledger"])

    assert result.info.skipped == {}
    with tarfile.open(result.path) as tar:
        names = tar.getnames()
        member = tar.extractfile(DATA_PREFIX + "ledger/forecasts.db")
        assert member is not None
        copy = tree.root / "copy.db"
        copy.write_bytes(member.read())
    assert not any(name.endswith(("-wal", "-shm", ".partial")) for name in names)
    assert not list(tree.backups.glob(".*.partial")), "the snapshot file is removed"
    with sqlite3.connect(copy) as plain:  # one self-contained file
        assert plain.execute("SELECT count(*) FROM forecasts").fetchone() == (3,)
    copy.unlink()

    later = ledger.record(forecast(7))  # written after the backup
    assert restore_backup(tree, dry_run=True).changed == ["ledger/forecasts.db"]
    restored = restore_backup(tree, categories=["ledger"])

    assert restored.changed == ["ledger/forecasts.db"] and restored.safety_backup is not None
    assert [e.stored for e in reversed(ledger.history("AAPL"))] == kept  # the open engine sees it
    assert ledger.get(later.id) is None
    assert restore_backup(tree, dry_run=True).changed == []
    again = ledger.record(forecast(7))  # the restored database takes writes
    assert ledger.get(again.id) is not None
    engine.dispose()


def test_a_ledger_on_postgresql_is_dumped_into_the_backup_and_restored_from_it(
    settings: Settings, postgres_server: PostgresServer
) -> None:
    url = postgres_server.create_database(f"backup_{uuid.uuid4().hex[:12]}")
    on_server = load_settings({"STOCKPRED_DATA_DIR": str(settings.data_dir), "DATABASE_URL": url})
    upgrade_database(on_server)
    engine = engine_from_settings(on_server)  # stays open, as a worker's would
    ledger = ForecastLedger(engine)
    kept = [ledger.record(forecast(day)) for day in range(3)]
    service = StorageService(on_server)

    report = service.backup(categories=["ledger", "config"])

    assert report["skipped"] == {}
    with tarfile.open(report["path"]) as tar:
        names = tar.getnames()
    assert DATA_PREFIX + "ledger/postgresql.dump" in names
    assert DATA_PREFIX + "ledger/forecasts.db" not in names
    assert not list(DataTree.from_settings(on_server).backups.glob(".*.partial"))
    later = ledger.record(forecast(7))
    with engine.begin() as connection:  # damage the live ledger
        connection.execute(text("DELETE FROM forecasts WHERE id = :id"), {"id": kept[0].id})

    restored = service.restore(categories=["ledger"])

    assert restored["changed"] == ["ledger/postgresql.dump"] and restored["safety_backup"]
    assert [e.stored for e in reversed(ledger.history("AAPL"))] == kept
    assert ledger.get(later.id) is None
    assert not DataTree.from_settings(on_server).ledger_pg_dump.exists()
    assert ledger.record(forecast(9)).id > kept[-1].id  # ids go on after the restored rows
    engine.dispose()

    # The same backup is refused where the ledger is the tree's SQLite file.
    with pytest.raises(BackupError, match="holds a PostgreSQL dump while the ledger is SQLite"):
        StorageService(settings).restore(name=report["name"], categories=["ledger"])


def test_a_dump_that_fails_is_reported_and_leaves_nothing_behind(
    settings: Settings, postgres_server: PostgresServer
) -> None:
    url = postgres_server.create_database(f"backup_{uuid.uuid4().hex[:12]}")
    wrong = url.replace(f":{postgres_server.password}@", ":not-the-password@")
    assert wrong != url
    on_server = load_settings({"STOCKPRED_DATA_DIR": str(settings.data_dir), "DATABASE_URL": wrong})
    report = StorageService(on_server).backup(categories=["ledger", "config"])
    why = report["skipped"]["ledger"]
    assert "pg_dump" in why and "password authentication failed" in why
    assert "not-the-password" not in why and postgres_server.password not in why
    with tarfile.open(report["path"]) as tar:
        assert not any("ledger/" in name for name in tar.getnames())
    assert not list(DataTree.from_settings(on_server).backups.glob(".*.partial"))
