"""The WSGI fast path for cached predictions: what it answers itself and what it leaves to Flask."""

from __future__ import annotations

import logging
from typing import Any, cast

import pytest

from stockpred.infra.logs import API_LOGGER
from web.fastpath import CachedPredictionFastPath
from web.metrics import web_metrics
from web.prediction_lookup import LOOKED_UP_ENVIRON_KEY, PredictionLookup

STORED = '{"symbol":"NVDA","predicted_price":1.5}'


class FakeLookup:
    """A model at v1 with data as of 2024-01-02; one stored answer per (symbol, horizon)."""

    def __init__(self, stored: dict[tuple[str, int], str], broken: bool = False) -> None:
        self.stored = stored
        self.broken = broken
        self.reads: list[tuple[str, int, str, str]] = []

    def version(self, symbol: str) -> str | None:
        return "v1" if symbol in {"NVDA", "^GSPC"} else None

    def as_of(self, symbol: str) -> str | None:
        return "2024-01-02"

    def read(self, symbol: str, horizon: int, version: str, as_of: str) -> str | None:
        if self.broken:
            raise ConnectionError("Redis is down")
        self.reads.append((symbol, horizon, version, as_of))
        return self.stored.get((symbol, horizon))


def fast(inner: Inner, lookup: FakeLookup) -> CachedPredictionFastPath:
    """The middleware over `inner`, reading through `lookup`."""
    return CachedPredictionFastPath(inner, lambda: cast(PredictionLookup, lookup))


class Inner:
    """Stands in for the Flask app and records what reached it."""

    def __init__(self) -> None:
        self.environs: list[dict[str, Any]] = []

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        self.environs.append(environ)
        start_response("418 I'm a teapot", [])
        return [b"flask"]


def call(
    app: CachedPredictionFastPath, path: str, query: str = "", method: str = "GET"
) -> tuple[str, dict[str, str], bytes]:
    """Run one request through the middleware; (status, headers, body)."""
    seen: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        seen["status"], seen["headers"] = status, dict(headers)

    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "REMOTE_ADDR": "10.0.0.7",
        "HTTP_USER_AGENT": "unit",
        "HTTP_X_REQUEST_ID": "req-1",
    }
    result = app(environ, start_response)
    body = b"".join(result)
    if hasattr(result, "close"):
        result.close()  # as a WSGI server does once the body is sent
    return seen["status"], seen["headers"], body


@pytest.fixture
def stored() -> dict[tuple[str, int], str]:
    return {("NVDA", 1): STORED, ("NVDA", 5): STORED.replace("1.5", "2.5")}


def test_a_hit_is_answered_without_flask_with_the_routes_headers(
    stored: dict[tuple[str, int], str], caplog: pytest.LogCaptureFixture
) -> None:
    inner, lookup = Inner(), FakeLookup(stored)
    app = fast(inner, lookup)
    hits = web_metrics().predictions.labels("true")
    before = hits._value.get()
    with caplog.at_level(logging.INFO, logger=API_LOGGER):
        status, headers, body = call(app, "/api/v1/predict/nvda", "horizon=5&days=30")
    assert inner.environs == []
    assert status == "200 OK"
    assert body == b'{"symbol":"NVDA","predicted_price":2.5,"cached":true}'
    assert headers == {
        "Content-Type": "application/json",
        "Content-Length": str(len(body)),
        "X-Cache": "hit",
        "Access-Control-Allow-Origin": "*",
        "X-Request-ID": "req-1",
    }
    assert lookup.reads == [("NVDA", 5, "v1", "2024-01-02")]
    assert hits._value.get() == before + 1
    line = caplog.records[-1].getMessage()
    assert line.startswith("GET /api/v1/predict/nvda?horizon=5&days=30 200 ")
    assert "client=10.0.0.7 request_id=req-1" in line


def test_a_miss_goes_to_flask_flagged_so_the_lookup_is_not_repeated(
    stored: dict[tuple[str, int], str],
) -> None:
    inner, lookup = Inner(), FakeLookup(stored)
    app = fast(inner, lookup)
    status, _, body = call(app, "/api/v1/predict/NVDA", "horizon=2")
    assert (status, body) == ("418 I'm a teapot", b"flask")
    assert inner.environs[0][LOOKED_UP_ENVIRON_KEY] is True
    assert lookup.reads == [("NVDA", 2, "v1", "2024-01-02")]


@pytest.mark.parametrize(
    ("method", "path", "query"),
    [
        ("POST", "/api/v1/predict/NVDA", ""),
        ("HEAD", "/api/v1/predict/NVDA", ""),
        ("GET", "/api/v1/historical/NVDA", ""),
        ("GET", "/api/v1/predict/NVDA", "async=true"),
        ("GET", "/api/v1/predict/NVDA", "async=false"),
        ("GET", "/api/v1/predict/NVDA", "horizon=0"),
        ("GET", "/api/v1/predict/NVDA", "horizon=31"),
        ("GET", "/api/v1/predict/NVDA", "horizon=x"),
        ("GET", "/api/v1/predict/NVDA", "days=366"),
        ("GET", "/api/v1/predict/NVDA", "horizon=%C2%B2"),  # '²' is a digit to str.isdigit
        ("GET", "/api/v1/predict/NVDA", "horizon=2&horizon=3"),  # which one: the route decides
        ("GET", "/api/v1/predict/BAD!!", ""),
        ("GET", "/api/v1/predict/NVDA/extra", ""),
        ("GET", "/api/v1/predict/AAPL", ""),  # no model: the route says how to train one
    ],
)
def test_everything_else_goes_to_flask_unflagged(
    stored: dict[tuple[str, int], str], method: str, path: str, query: str
) -> None:
    inner, lookup = Inner(), FakeLookup(stored)
    app = fast(inner, lookup)
    assert call(app, path, query, method)[2] == b"flask"
    assert len(inner.environs) == 1 and LOOKED_UP_ENVIRON_KEY not in inner.environs[0]
    assert lookup.reads == []


def test_redis_trouble_is_left_to_the_route(stored: dict[tuple[str, int], str]) -> None:
    inner = Inner()
    app = fast(inner, FakeLookup(stored, broken=True))
    assert call(app, "/api/v1/predict/NVDA")[2] == b"flask"
    assert LOOKED_UP_ENVIRON_KEY not in inner.environs[0]
