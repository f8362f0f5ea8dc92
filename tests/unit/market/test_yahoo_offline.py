"""The real yfinance code path, offline: Yahoo-format responses built from real embedded rows."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from stockpred.market.csv_source import CsvSource
from stockpred.market.embedded import EmbeddedSource
from stockpred.market.errors import NoData, RateLimited, SourceUnavailable, UnknownSymbol
from stockpred.market.retry import RetryPolicy
from stockpred.market.sources import AutoSource
from stockpred.market.yahoo import YahooSource
from tests.yahoo_fake import FakeYahoo, offline_yahoo


@pytest.fixture(scope="module")
def nvda() -> pd.DataFrame:
    """The last 300 embedded NVDA rows: real prices to serve as Yahoo's."""
    return EmbeddedSource().fetch("NVDA").frame.tail(300)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch, nvda: pd.DataFrame) -> Iterator[FakeYahoo]:
    with offline_yahoo(monkeypatch, {"NVDA": nvda}) as fake_yahoo:
        yield fake_yahoo


def yahoo(tmp_path: Path, sleeps: list[float] | None = None, timeout: float = 10.0) -> YahooSource:
    policy = RetryPolicy(
        attempts=3, base=0.01, cap=0.02, sleep=(sleeps.append if sleeps is not None else time.sleep)
    )
    return YahooSource(cache_root=tmp_path / "yf", timeout=timeout, retry=policy)


def test_yfinance_parses_yahoo_responses_into_exactly_the_source_rows(
    fake: FakeYahoo, nvda: pd.DataFrame, tmp_path: Path
) -> None:
    start = nvda.index[100].date()
    fetched = yahoo(tmp_path).fetch("NVDA", start)
    assert fetched.source == "yahoo"
    expected = nvda[nvda.index >= pd.Timestamp(start)]
    pd.testing.assert_frame_equal(fetched.frame, expected, check_freq=False)
    symbol, query = fake.chart_calls[-1]
    assert symbol == "NVDA" and query["interval"] == ["1d"] and "period1" in query
    assert (tmp_path / "yf").is_dir(), "yfinance's caches live in our folder, per process"


def test_an_unknown_symbol_is_unknown_not_an_outage(fake: FakeYahoo, tmp_path: Path) -> None:
    sleeps: list[float] = []
    with pytest.raises(UnknownSymbol, match="ZZZZZZ"):
        yahoo(tmp_path, sleeps).fetch("ZZZZZZ", date(2024, 1, 2))
    assert sleeps == [], "an unknown symbol is never retried"


def test_a_rate_limit_is_retried_with_backoff_then_given_up_cleanly(
    fake: FakeYahoo, tmp_path: Path
) -> None:
    fake.mode = "rate_limit"
    sleeps: list[float] = []
    with pytest.raises(RateLimited):
        yahoo(tmp_path, sleeps).fetch("NVDA", date(2024, 1, 2))
    assert len(sleeps) == 2
    assert len([c for c in fake.chart_calls if "period1" in c[1]]) >= 1


def test_a_network_failure_is_source_unavailable_after_retries(
    fake: FakeYahoo, tmp_path: Path
) -> None:
    fake.mode = "network"
    sleeps: list[float] = []
    with pytest.raises(SourceUnavailable, match="unreachable"):
        yahoo(tmp_path, sleeps).fetch("NVDA", date(2024, 1, 2))
    assert len(sleeps) == 2


def test_a_network_that_never_answers_is_bounded(fake: FakeYahoo, tmp_path: Path) -> None:
    fake.mode = "slow"
    fake.slow_seconds = 5
    started = time.monotonic()
    with pytest.raises(SourceUnavailable, match=r"within 0.5s"):
        YahooSource(cache_root=tmp_path / "yf", timeout=0.5, retry=RetryPolicy(attempts=1)).fetch(
            "NVDA", date(2024, 1, 2)
        )
    assert time.monotonic() - started < 2


def auto(tmp_path: Path) -> AutoSource:
    quick = YahooSource(
        cache_root=tmp_path / "yf", timeout=5, retry=RetryPolicy(attempts=2, base=0.01, cap=0.01)
    )
    return AutoSource(CsvSource(tmp_path / "historical"), quick, EmbeddedSource())


def test_auto_prefers_an_operators_csv_then_yahoo(fake: FakeYahoo, tmp_path: Path) -> None:
    source = auto(tmp_path)
    assert source.fetch("NVDA", date(2024, 6, 3)).source == "yahoo"
    folder = tmp_path / "historical" / "NVDA"
    folder.mkdir(parents=True)
    (folder / "mine.csv").write_text("date,open,high,low,close,volume\n2024-01-02,1,2,1,1.5,10\n")
    assert source.fetch("NVDA").source == "csv"


def test_auto_falls_back_to_embedded_when_yahoo_is_unreachable_and_remembers(
    fake: FakeYahoo, tmp_path: Path
) -> None:
    fake.mode = "network"
    source = auto(tmp_path)
    fetched = source.fetch("TSLA")
    assert fetched.source == "embedded" and len(fetched.frame) > 100
    calls = len(fake.chart_calls)
    started = time.monotonic()
    assert source.fetch("AAPL").source == "embedded"
    assert time.monotonic() - started < 1 and len(fake.chart_calls) == calls


def test_auto_offline_with_a_symbol_nobody_has_is_no_data(fake: FakeYahoo, tmp_path: Path) -> None:
    fake.mode = "network"
    with pytest.raises(NoData, match="Yahoo is unreachable"):
        auto(tmp_path).fetch("ZZZZZZ")


def test_auto_online_with_an_unknown_symbol_is_unknown(fake: FakeYahoo, tmp_path: Path) -> None:
    with pytest.raises(UnknownSymbol):
        auto(tmp_path).fetch("ZZZZZZ")
