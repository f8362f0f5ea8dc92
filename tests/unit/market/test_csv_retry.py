"""Operator CSV files (valid and malformed), and the retry policy's backoff."""

from __future__ import annotations

from pathlib import Path

import pytest

from stockpred.market.csv_source import CsvSource
from stockpred.market.errors import (
    BadData,
    CsvFormatError,
    NoData,
    RateLimited,
    SourceUnavailable,
    UnknownSymbol,
)
from stockpred.market.retry import RetryPolicy

GOOD = (
    "date,open,high,low,close,volume\n"
    "2024-01-02,10,11,9.5,10.5,1000\n"
    "2024-01-03,10.5,12,10,11,1200\n"
)
YAHOO_EXPORT = "Date,Open,High,Low,Close,Adj Close,Volume\n2024-01-04,11,11.5,10.8,11.2,11.1,900\n"


def write(root: Path, symbol: str, name: str, text: str) -> None:
    (root / symbol).mkdir(parents=True, exist_ok=True)
    (root / symbol / name).write_text(text)


def test_csv_files_of_a_symbol_are_read_and_merged(tmp_path: Path) -> None:
    write(tmp_path, "ACME", "a.csv", GOOD)
    write(tmp_path, "ACME", "b.csv", YAHOO_EXPORT)
    fetched = CsvSource(tmp_path).fetch("ACME")
    assert fetched.source == "csv"
    assert list(fetched.frame.index.strftime("%Y-%m-%d")) == [
        "2024-01-02",
        "2024-01-03",
        "2024-01-04",
    ]
    assert fetched.frame.loc["2024-01-04", "close"] == 11.2
    assert fetched.frame["volume"].dtype == "int64"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("date,open,high,low,close\n2024-01-02,1,1,1,1\n", "missing columns"),
        (GOOD + "2024-01-04,1,2,1,x,5\n", "line 4"),
        (GOOD + "2024-13-01,1,2,1,1,5\n", "line 4"),
        (GOOD + "2024-01-04,1,2,3,1,5\n", "high is below low"),
        (GOOD + "2024-01-04,0,2,1,1,5\n", "positive"),
        (GOOD + "2024-01-04,1,2,1\n", "fields"),
        ("date,open,high,low,close,volume\n", "no data rows"),
    ],
)
def test_a_malformed_csv_is_reported_with_file_and_line(
    tmp_path: Path, text: str, message: str
) -> None:
    write(tmp_path, "ACME", "prices.csv", text)
    with pytest.raises(CsvFormatError, match=message) as err:
        CsvSource(tmp_path).fetch("ACME")
    assert "prices.csv" in str(err.value) or "ACME" in str(err.value)


def test_a_csv_that_is_not_utf8_text_or_not_a_file_is_reported_by_name(tmp_path: Path) -> None:
    (tmp_path / "ACME").mkdir()
    (tmp_path / "ACME" / "prices.csv").write_bytes(
        GOOD.encode() + "2024-01-04,caf\xe9".encode("latin-1")
    )
    with pytest.raises(CsvFormatError, match=r"prices\.csv: not UTF-8 text"):
        CsvSource(tmp_path).fetch("ACME")
    (tmp_path / "ACME" / "prices.csv").unlink()
    (tmp_path / "ACME" / "folder.csv").mkdir()
    with pytest.raises(CsvFormatError, match=r"folder\.csv: cannot be read"):
        CsvSource(tmp_path).fetch("ACME")


def test_a_spreadsheet_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    (tmp_path / "ACME").mkdir()
    (tmp_path / "ACME" / "prices.csv").write_bytes(b"\xef\xbb\xbf" + GOOD.encode())
    assert len(CsvSource(tmp_path).fetch("ACME").frame) == 2


def test_a_date_in_two_files_is_reported(tmp_path: Path) -> None:
    write(tmp_path, "ACME", "a.csv", GOOD)
    write(tmp_path, "ACME", "b.csv", GOOD)
    with pytest.raises(CsvFormatError, match="more than one"):
        CsvSource(tmp_path).fetch("ACME")


def test_no_csv_files_is_no_data(tmp_path: Path) -> None:
    assert not CsvSource(tmp_path).has("ACME")
    with pytest.raises(NoData):
        CsvSource(tmp_path).fetch("ACME")


def policy(sleeps: list[float], attempts: int = 4) -> RetryPolicy:
    return RetryPolicy(attempts=attempts, base=0.5, cap=2.0, sleep=sleeps.append, rng=lambda: 1.0)


def test_retryable_errors_back_off_exponentially_up_to_the_cap_then_give_up() -> None:
    sleeps: list[float] = []
    calls = []

    def always_limited() -> None:
        calls.append(1)
        raise RateLimited("slow down")

    with pytest.raises(RateLimited):
        policy(sleeps, attempts=5).run(always_limited)
    assert len(calls) == 5
    assert sleeps == [0.5, 1.0, 2.0, 2.0]


def test_a_transient_failure_then_success_returns_the_result() -> None:
    sleeps: list[float] = []
    outcomes: list[Exception | str] = [SourceUnavailable("blip"), "rows"]

    def flaky() -> str:
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    assert policy(sleeps).run(flaky) == "rows"
    assert len(sleeps) == 1


@pytest.mark.parametrize("error", [UnknownSymbol("nope"), BadData("nan"), NoData("none")])
def test_permanent_errors_are_not_retried(error: Exception) -> None:
    sleeps: list[float] = []

    def fail() -> None:
        raise error

    with pytest.raises(type(error)):
        policy(sleeps).run(fail)
    assert sleeps == []


def test_jitter_stays_within_the_exponential_bound() -> None:
    import random

    rng = random.Random(7)
    bounded = RetryPolicy(base=0.5, cap=8.0, rng=rng.random)
    for attempt in range(6):
        for _ in range(50):
            assert 0 <= bounded.delay(attempt) <= min(8.0, 0.5 * 2**attempt)
