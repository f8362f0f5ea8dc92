"""Price refreshes on real Redis and real files: the per-symbol Redis lock, the no-data memory."""

from __future__ import annotations

import multiprocessing
import time
import uuid
from datetime import date, timedelta
from pathlib import Path

import pytest
import redis
from flask.testing import FlaskClient

from stockpred.jobs.locks import refresh_lock
from stockpred.jobs.records import KEY_PREFIX as JOB_PREFIX
from stockpred.market.daily_cache import DailyCache
from stockpred.market.errors import NoData, RememberedNoData
from stockpred.market.history import HistoryStore
from stockpred.market.no_data import KEY_PREFIX, NoDataMemo
from stockpred.market.service import MarketData
from stockpred.market.sources import SourceFrame
from stockpred.settings import Settings
from tests.unit.market.test_service import MONDAY_11AM, TTL, Clock, CountingSource, business_days
from tests.unit.market.test_service import frame as bars


def tree_of(folder: Path) -> list[str]:
    """Every path under `folder`, relative, sorted (the folder itself: [] when missing)."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


class NoSuchSymbol:
    """A source that knows no symbol and counts how often it was asked."""

    name = "none"

    def __init__(self) -> None:
        self.asked = 0

    def fetch(self, symbol: str, start: date | None = None) -> SourceFrame:
        self.asked += 1
        raise NoData(f"no source has data for {symbol}")


def market(root: Path, source: object, client: redis.Redis, no_data_ttl: timedelta) -> MarketData:
    return MarketData(
        source=source,  # type: ignore[arg-type]
        history=HistoryStore(root / "historical"),
        cache=DailyCache(root / "daily_cache"),
        intraday_ttl=TTL,
        clock=Clock(MONDAY_11AM),
        locks=refresh_lock(client),
        no_data=NoDataMemo(client, no_data_ttl),
    )


def test_a_symbol_without_data_is_remembered_creates_nothing_and_is_asked_again_after_the_ttl(
    tmp_path: Path, redis_client: redis.Redis
) -> None:
    symbol = f"N{uuid.uuid4().hex[:6].upper()}"
    source = NoSuchSymbol()
    data = market(tmp_path, source, redis_client, timedelta(seconds=1))
    (tmp_path / "historical").mkdir()
    with pytest.raises(NoData) as first:
        data.refresh(symbol)
    assert not isinstance(first.value, RememberedNoData) and source.asked == 1
    with pytest.raises(RememberedNoData, match="remembered until") as second:
        data.refresh(symbol)
    assert second.value.kind == "no_data" and source.asked == 1  # answered from memory
    assert tree_of(tmp_path / "historical") == [] and tree_of(tmp_path / "daily_cache") == []
    assert redis_client.keys(f"stockpred:lock:refresh:{symbol}") == []  # released, not left
    time.sleep(1.2)
    with pytest.raises(NoData) as third:
        data.refresh(symbol)
    assert not isinstance(third.value, RememberedNoData) and source.asked == 2
    assert tree_of(tmp_path / "historical") == []


def test_a_forced_refresh_looks_again_and_data_found_forgets_the_symbol(
    tmp_path: Path, redis_client: redis.Redis
) -> None:
    symbol = f"F{uuid.uuid4().hex[:6].upper()}"
    memo = NoDataMemo(redis_client, timedelta(hours=1))
    memo.remember(symbol, kind="no_data", message="nothing")
    source = CountingSource(bars(business_days("2026-06-01", 20)))
    data = market(tmp_path, source, redis_client, timedelta(hours=1))
    with pytest.raises(RememberedNoData):
        data.refresh(symbol)
    assert data.refresh(symbol, force=True).rows == 20
    assert memo.recall(symbol) is None
    assert (tmp_path / "historical" / symbol / "daily.parquet").is_file()


def _refresh_in_another_process(root: str, log: str, url: str, symbol: str) -> None:
    class SlowSource(CountingSource):
        def fetch(self, symbol: str, start: date | None = None) -> SourceFrame:
            with open(log, "a") as handle:
                handle.write("fetch\n")
            time.sleep(0.5)
            return super().fetch(symbol, start)

    source = SlowSource(bars(business_days("2026-06-01", 30)))
    client = redis.Redis.from_url(url, decode_responses=True)
    market(Path(root), source, client, timedelta(hours=1)).refresh(symbol)


def test_two_processes_refreshing_one_symbol_fetch_once_and_leave_no_lock_file(
    tmp_path: Path, redis_client: redis.Redis, redis_server: object
) -> None:
    symbol = f"P{uuid.uuid4().hex[:6].upper()}"
    log = tmp_path / "fetches.log"
    context = multiprocessing.get_context("spawn")
    url = redis_server.url  # type: ignore[attr-defined]
    procs = [
        context.Process(
            target=_refresh_in_another_process, args=(str(tmp_path), str(log), url, symbol)
        )
        for _ in range(2)
    ]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
        assert proc.exitcode == 0
    assert log.read_text().splitlines() == ["fetch"]
    stored = HistoryStore(tmp_path / "historical").load(symbol)
    assert stored is not None and len(stored) == 30
    assert tree_of(tmp_path / "historical" / symbol) == ["daily.parquet"]


def jobs_for(client: redis.Redis, symbol: str) -> int:
    """How many job records name `symbol`."""
    return sum(
        1 for key in client.scan_iter(f"{JOB_PREFIX}*") if client.hget(key, "symbol") == symbol
    )


@pytest.mark.parametrize("route", ["historical", "train"])
def test_an_unknown_symbol_through_web_and_worker_is_404_then_answered_from_memory(
    api: FlaskClient,
    worker_settings: Settings,
    redis_client: redis.Redis,
    auth: dict[str, str],
    route: str,
) -> None:
    symbol = f"ZQ{uuid.uuid4().hex[:4].upper()}"
    historical = worker_settings.stock_historical_path
    before = tree_of(historical)
    first = api.get(f"/api/v1/historical/{symbol}")
    assert first.status_code == 404, first.get_json()
    assert jobs_for(redis_client, symbol) == 1
    assert redis_client.exists(KEY_PREFIX + symbol)
    if route == "historical":
        again = api.get(f"/api/v1/historical/{symbol}")  # type: ignore[attr-defined]
    else:
        again = api.post(f"/api/v1/train/{symbol}", json={}, headers=auth)  # type: ignore[attr-defined]
    body = again.get_json()
    assert again.status_code == 404, body
    assert body["error"] == "no data for symbol" and "remembered until" in body["detail"]
    assert "task_id" not in body
    assert jobs_for(redis_client, symbol) == 1  # nothing queued the second time
    assert tree_of(historical) == before
    assert redis_client.keys(f"stockpred:lock:*{symbol}") == []
