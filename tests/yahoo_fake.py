"""An offline Yahoo Finance for yfinance's real code path.

Patches `request` on curl_cffi's and requests' Session classes (what yfinance 1.7 calls; mock
libraries do not intercept curl_cffi) and answers like Yahoo: a cookie, a crumb, and v8 chart
JSON built from real price rows. Modes simulate rate limits, network failures and a slow network.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, urlparse
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

NEW_YORK = ZoneInfo("America/New_York")
VALID_RANGES = ["1d", "5d", "1mo", "3mo", "6mo", "1y", "2y", "5y", "10y", "ytd", "max"]


@dataclass
class FakeResponse:
    """The parts of a curl_cffi/requests response yfinance reads."""

    status_code: int
    text: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def content(self) -> bytes:
        return self.text.encode()

    @property
    def ok(self) -> bool:
        return self.status_code < 400

    def json(self) -> Any:
        return json.loads(self.text)

    def raise_for_status(self) -> None:
        """Raise what curl_cffi raises: an HTTPError carrying this response."""
        from curl_cffi.requests.exceptions import HTTPError

        if self.status_code >= 400:
            raise HTTPError(f"HTTP Error {self.status_code}: ", 0, self)  # type: ignore[arg-type]


def _bar_time(day: pd.Timestamp) -> int:
    """Yahoo stamps daily bars at the 09:30 local open."""
    local = datetime(day.year, day.month, day.day, 9, 30, tzinfo=NEW_YORK)
    return int(local.timestamp())


def chart_json(symbol: str, frame: pd.DataFrame) -> dict[str, Any]:
    """A v8 chart response for the rows of `frame` (columns open, high, low, close, volume)."""
    last = frame.iloc[-1] if len(frame) else None
    meta = {
        "currency": "USD",
        "symbol": symbol,
        "exchangeName": "NMS",
        "fullExchangeName": "NasdaqGS",
        "instrumentType": "EQUITY",
        "firstTradeDate": 917015400,
        "gmtoffset": -18000,
        "timezone": "EST",
        "exchangeTimezoneName": "America/New_York",
        "regularMarketPrice": None if last is None else float(last["close"]),
        "priceHint": 2,
        "dataGranularity": "1d",
        "range": "",
        "validRanges": VALID_RANGES,
    }
    quote = {c: [float(v) for v in frame[c]] for c in ("open", "high", "low", "close")}
    quote["volume"] = [int(v) for v in frame["volume"]]
    result = {
        "meta": meta,
        "timestamp": [_bar_time(d) for d in frame.index],
        "indicators": {"quote": [quote], "adjclose": [{"adjclose": quote["close"]}]},
    }
    return {"chart": {"result": [result], "error": None}}


QUOTE_NOT_FOUND = {
    "quoteSummary": {
        "result": None,
        "error": {"code": "Not Found", "description": "Quote not found for symbol"},
    }
}
NOT_FOUND = {
    "chart": {
        "result": None,
        "error": {"code": "Not Found", "description": "No data found, symbol may be delisted"},
    }
}


class FakeYahoo:
    """Answers yfinance's requests from `rows`; `mode` picks a failure to simulate."""

    def __init__(self, rows: dict[str, pd.DataFrame]) -> None:
        self.rows = rows
        self.mode = "ok"  # ok | rate_limit | network | slow
        self.slow_seconds = 30.0
        self.chart_calls: list[tuple[str, dict[str, list[str]]]] = []

    def answer(self, url: str, params: dict[str, Any] | None) -> FakeResponse:
        if self.mode == "network":
            from curl_cffi.requests.exceptions import DNSError

            raise DNSError("Failed to perform, curl: (6) Could not resolve host (offline test)")
        if self.mode == "slow":
            time.sleep(self.slow_seconds)
        parsed = urlparse(url)
        query = {k: v for k, v in parse_qs(parsed.query).items()}
        query.update({k: [str(v)] for k, v in (params or {}).items()})
        if parsed.netloc == "fc.yahoo.com":
            return FakeResponse(200, "", url)
        if parsed.path.endswith("/v1/test/getcrumb"):
            return FakeResponse(200, "offline-crumb", url)
        if "/v8/finance/chart/" in parsed.path:
            symbol = parsed.path.rsplit("/", 1)[1]
            self.chart_calls.append((symbol, query))
            if self.mode == "rate_limit":
                return FakeResponse(429, "Too Many Requests", url)
            frame = self.rows.get(symbol)
            if frame is None:
                return FakeResponse(404, json.dumps(NOT_FOUND), url)
            return FakeResponse(
                200, json.dumps(chart_json(symbol, self._select(frame, query))), url
            )
        if "/quoteSummary/" in parsed.path or parsed.path.endswith("/v7/finance/quote"):
            # yfinance asks for `info` when the timezone probe fails; Yahoo 404s unknown symbols.
            return FakeResponse(404, json.dumps(QUOTE_NOT_FOUND), url)
        return FakeResponse(404, "<html>not here</html>", url)

    @staticmethod
    def _select(frame: pd.DataFrame, query: dict[str, list[str]]) -> pd.DataFrame:
        if "period1" in query:
            times = pd.Series([_bar_time(d) for d in frame.index], index=frame.index)
            start = int(query["period1"][0])
            end = int(query.get("period2", [str(2**40)])[0])
            return frame[(times >= start).to_numpy() & (times < end).to_numpy()]
        if query.get("range") == ["1d"]:
            return frame.tail(1)
        return frame.tail(22)


@contextmanager
def offline_yahoo(
    monkeypatch: pytest.MonkeyPatch, rows: dict[str, pd.DataFrame]
) -> Iterator[FakeYahoo]:
    """Route every yfinance HTTP request to a FakeYahoo; reset yfinance's global state."""
    import curl_cffi.requests
    import requests
    from yfinance.data import SingletonMeta, YfData

    import stockpred.market.yahoo as yahoo_module

    fake = FakeYahoo(rows)

    def request(self: Any, method: str, url: str, *args: Any, **kwargs: Any) -> FakeResponse:
        return fake.answer(url, kwargs.get("params"))

    monkeypatch.setattr(curl_cffi.requests.Session, "request", request)
    monkeypatch.setattr(requests.Session, "request", request)

    def reset() -> None:
        SingletonMeta._instances.pop(YfData, None)
        YfData.cache_get.cache_clear()
        yahoo_module._configured.clear()

    reset()
    try:
        yield fake
    finally:
        reset()
