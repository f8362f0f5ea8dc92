"""Fixtures of the integration layer: servers besides Redis, the ledger on both databases."""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import Engine

from stockpred.ledger import migrate
from stockpred.ledger.database import create_ledger_engine
from stockpred.ledger.store import ForecastLedger
from stockpred.market.factory import build_market_data
from stockpred.market.service import MarketData
from stockpred.settings import load_settings
from tests.postgres import PostgresServer, postgres_bin


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A real PostgreSQL for the whole session (missing binaries fail in CI, skip elsewhere)."""
    bin_dir = postgres_bin()
    if bin_dir is None:
        message = "PostgreSQL is not installed: `make system-deps` installs it"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    with tempfile.TemporaryDirectory(prefix="sp-postgres-") as directory:
        server = PostgresServer(Path(directory), bin_dir)
        try:
            server.start()
            yield server
        finally:
            server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """An engine on an empty database: a SQLite file, or a new database on the real server."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'ledger' / 'forecasts.db'}"
    else:
        server: PostgresServer = request.getfixturevalue("postgres_server")
        url = server.create_database(f"ledger_{uuid.uuid4().hex[:12]}")
    engine = create_ledger_engine(url)
    yield engine
    engine.dispose()


@pytest.fixture
def engine(empty_engine: Engine) -> Engine:
    """An engine on a database migrated to the head revision."""
    migrate.upgrade(empty_engine)
    return empty_engine


@pytest.fixture
def ledger(engine: Engine) -> ForecastLedger:
    """The ledger on a migrated database."""
    return ForecastLedger(engine)


class CountingBars:
    """Real market data, counting the reads of each symbol's bars."""

    def __init__(self, market: MarketData) -> None:
        self.market = market
        self.reads: dict[str, int] = {}

    def bars(self, symbol: str) -> pd.DataFrame:
        self.reads[symbol] = self.reads.get(symbol, 0) + 1
        return self.market.bars(symbol)


@pytest.fixture
def embedded_bars(tmp_path: Path) -> CountingBars:
    """Market data serving the embedded prices from files under a temp data root."""
    settings = load_settings(
        {"STOCKPRED_DATA_DIR": str(tmp_path / "data"), "STOCK_DATA_SOURCE": "embedded"}
    )
    return CountingBars(build_market_data(settings))
