"""`stockpred setup` and `stockpred ledger ...` on real databases, as an operator runs them."""

from __future__ import annotations

import json
import subprocess
import uuid
from datetime import UTC, date, datetime

from stockpred.ledger.database import create_ledger_engine, ledger_url
from stockpred.ledger.entries import Forecast
from stockpred.ledger.migrate import head_revision
from stockpred.ledger.store import ForecastLedger
from stockpred.paths import DataTree
from stockpred.settings import load_settings
from tests.postgres import PostgresServer
from tests.support import BIN, free_port


def stockpred(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "stockpred"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_setup_creates_the_sqlite_ledger_at_the_head_revision(data_env: dict[str, str]) -> None:
    first = stockpred("setup", env=data_env)
    assert first.returncode == 0, first.stderr
    db = DataTree.from_settings(load_settings(data_env)).ledger_db
    assert db.is_file()
    assert f"migrated  ledger sqlite:///{db} from empty to {head_revision()}" in first.stdout
    status = stockpred("ledger", "status", env=data_env)
    assert status.returncode == 0, status.stderr
    shown = json.loads(status.stdout)
    assert shown["revision"] == shown["head"] == head_revision()
    assert shown["counts"] == {"forecasts": 0, "scored": 0}
    second = stockpred("setup", env=data_env)
    assert "nothing to do" in second.stdout


def test_ledger_upgrade_on_postgresql_never_prints_the_password(
    data_env: dict[str, str], postgres_server: PostgresServer
) -> None:
    url = postgres_server.create_database(f"cli_{uuid.uuid4().hex[:12]}")
    env = {**data_env, "DATABASE_URL": url}
    upgraded = stockpred("ledger", "upgrade", env=env)
    assert upgraded.returncode == 0, upgraded.stderr
    assert f"from empty to {head_revision()}" in upgraded.stdout
    again = stockpred("ledger", "upgrade", env=env)
    assert "nothing to do" in again.stdout
    status = stockpred("ledger", "status", env=env)
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["database"].startswith("postgresql+psycopg://stockpred:***@")
    settings = stockpred("settings", env=env)
    for result in (upgraded, again, status, settings):
        assert postgres_server.password not in result.stdout + result.stderr
    assert not DataTree.from_settings(load_settings(env)).ledger_db.exists()


def test_an_unreachable_database_stops_setup_with_a_clear_message(
    data_env: dict[str, str],
) -> None:
    url = f"postgresql://stockpred:s3cr3t-pw@127.0.0.1:{free_port()}/ledger"
    for command in (("setup",), ("ledger", "upgrade")):
        result = stockpred(*command, env={**data_env, "DATABASE_URL": url})
        assert result.returncode == 1
        assert "the ledger's database postgresql+psycopg://stockpred:***@" in result.stderr
        assert "Traceback" not in result.stderr
        assert "s3cr3t-pw" not in result.stdout + result.stderr


def test_ledger_score_scores_due_forecasts_from_the_embedded_prices(
    data_env: dict[str, str],
) -> None:
    env = {**data_env, "STOCK_DATA_SOURCE": "embedded"}
    assert stockpred("setup", "-q", env=env).returncode == 0
    engine = create_ledger_engine(ledger_url(load_settings(env)))
    ledger = ForecastLedger(engine)
    stored = ledger.record(
        Forecast(
            symbol="MSFT",
            as_of=date(2013, 2, 21),
            target_date=date(2013, 2, 22),
            horizon=1,
            forecaster="naive",
            model_version="",
            point=27.0,
            naive=27.0,
            requested_at=datetime(2013, 2, 21, 22, 0, tzinfo=UTC),
        )
    )
    result = stockpred("ledger", "score", env=env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["scored"] == 1
    entry = ledger.get(stored.id)
    assert entry is not None and entry.score is not None
    assert entry.score.actual > 0 and entry.score.previous_close > 0
    again = stockpred("ledger", "score", env=env)
    assert json.loads(again.stdout)["scored"] == 0
    engine.dispose()
