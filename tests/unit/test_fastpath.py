"""The WSGI fast path for cached predictions: what it answers itself and what it leaves to Flask."""

from __future__ import annotations

import json
import logging
from typing import Any, cast

import pytest

from stockpred.infra.logs import API_LOGGER
from web.fastpath import CachedPredictionFastPath
from web.metrics import web_metrics
from web.prediction_lookup import (
    LOOKUP_ENVIRON_KEY,
    Lookup,
    PredictionLookup,
    PredictQuery,
    answer_from_cache,
    recorded_lookup,
)

STORED = '{"symbol":"NVDA","predicted_price":1.5}'


class FakeLookup:
    """A model at v1 for NVDA and ^GSPC, data as of 2024-01-02; one answer per (symbol, horizon)."""

    def __init__(self, stored: dict[tuple[str, int], str], broken: bool = False) -> None:
        self.stored = stored
        self.broken = broken
        self.queries: list[PredictQuery] = []

    def find(self, query: PredictQuery) -> Lookup:
        if self.broken:
            raise ConnectionError("Redis is down")
        self.queries.append(query)
        if query.symbol not in {"NVDA", "^GSPC"}:
            return Lookup(version=None, as_of=None, body=None, counted=False)
        if query.run_async:
            return Lookup(version="v1", as_of="2024-01-02", body=None, counted=False)
        raw = self.stored.get((query.symbol, query.horizon))
        body = None if raw is None else answer_from_cache(json.loads(raw))
        return Lookup(version="v1", as_of="2024-01-02", body=body, counted=True)


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
    requests = web_metrics().requests.labels("GET", "/api/v1/predict/<path:symbol>", "200")
    before = hits._value.get(), requests._value.get()
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
    assert lookup.queries == [PredictQuery("NVDA", 5, run_async=False)]
    assert (hits._value.get(), requests._value.get()) == (before[0] + 1, before[1] + 1)
    line = caplog.records[-1].getMessage()
    assert line.startswith("GET /api/v1/predict/nvda?horizon=5&days=30 200 ")
    assert "client=10.0.0.7 request_id=req-1" in line


def test_a_head_hit_has_the_get_headers_and_no_body(stored: dict[tuple[str, int], str]) -> None:
    inner = Inner()
    _, got, _ = call(fast(inner, FakeLookup(stored)), "/api/v1/predict/NVDA")
    status, headers, body = call(
        fast(inner, FakeLookup(stored)), "/api/v1/predict/NVDA", "", "HEAD"
    )
    assert (status, body, inner.environs) == ("200 OK", b"", [])
    assert headers == got


@pytest.mark.parametrize(
    ("query", "horizon"),
    [
        ("async=false", 1),
        ("async=no&horizon=5", 5),
        ("horizon=5&horizon=2", 5),  # Flask reads the first value: so does the fast path
        ("horizon=%35", 5),  # percent-encoded as any client may send it
    ],
)
def test_any_synchronous_spelling_the_route_accepts_is_answered_here(
    stored: dict[tuple[str, int], str], query: str, horizon: int
) -> None:
    inner = Inner()
    status, _, body = call(fast(inner, FakeLookup(stored)), "/api/v1/predict/NVDA", query)
    assert (status, inner.environs) == ("200 OK", [])
    assert body == answer_from_cache(json.loads(stored[("NVDA", horizon)]))


def test_the_symbol_is_read_from_the_paths_utf8_bytes_as_flask_reads_it(
    stored: dict[tuple[str, int], str],
) -> None:
    inner, lookup = Inner(), FakeLookup(stored)
    # "NVDA" and an ideographic space (U+3000), which str.strip removes: the route serves NVDA.
    path = "/api/v1/predict/NVDA" + "\u3000".encode().decode("latin-1")
    assert call(fast(inner, lookup), path)[0] == "200 OK"
    assert lookup.queries == [PredictQuery("NVDA", 1, run_async=False)]


def test_a_miss_goes_to_flask_with_its_counted_lookup(stored: dict[tuple[str, int], str]) -> None:
    inner, lookup = Inner(), FakeLookup(stored)
    status, _, body = call(fast(inner, lookup), "/api/v1/predict/NVDA", "horizon=2")
    assert (status, body) == ("418 I'm a teapot", b"flask")
    found = recorded_lookup(inner.environs[0])
    assert found == Lookup(version="v1", as_of="2024-01-02", body=None, counted=True)
    assert lookup.queries == [PredictQuery("NVDA", 2, run_async=False)]


@pytest.mark.parametrize(
    ("path", "query", "version"),
    [
        ("/api/v1/predict/NVDA", "async=true", "v1"),  # always 202: the cache is not read
        ("/api/v1/predict/AAPL", "", None),  # no model: the route says how to train one
    ],
)
def test_async_and_unknown_symbols_go_to_flask_with_an_uncounted_lookup(
    stored: dict[tuple[str, int], str], path: str, query: str, version: str | None
) -> None:
    inner = Inner()
    assert call(fast(inner, FakeLookup(stored)), path, query)[2] == b"flask"
    found = recorded_lookup(inner.environs[0])
    assert (found.version, found.body, found.counted) == (version, None, False)


@pytest.mark.parametrize(
    ("method", "path", "query"),
    [
        ("POST", "/api/v1/predict/NVDA", ""),
        ("OPTIONS", "/api/v1/predict/NVDA", ""),
        ("GET", "/api/v1/historical/NVDA", ""),
        ("GET", "/api/v1/predict/NVDA", "async=maybe"),
        ("GET", "/api/v1/predict/NVDA", "horizon=0"),
        ("GET", "/api/v1/predict/NVDA", "horizon=31"),
        ("GET", "/api/v1/predict/NVDA", "horizon=x"),
        ("GET", "/api/v1/predict/NVDA", "days=366"),
        ("GET", "/api/v1/predict/NVDA", "horizon=%C2%B2"),  # '²' is a digit to str.isdigit
        ("GET", "/api/v1/predict/BAD!!", ""),
        ("GET", "/api/v1/predict/NVDA/extra", ""),
    ],
)
def test_other_routes_and_bad_input_go_to_flask_untouched(
    stored: dict[tuple[str, int], str], method: str, path: str, query: str
) -> None:
    inner, lookup = Inner(), FakeLookup(stored)
    assert call(fast(inner, lookup), path, query, method)[2] == b"flask"
    assert len(inner.environs) == 1 and LOOKUP_ENVIRON_KEY not in inner.environs[0]
    assert lookup.queries == []


def test_a_failed_lookup_is_raised_in_the_route_not_repeated(
    stored: dict[tuple[str, int], str],
) -> None:
    inner = Inner()
    assert call(fast(inner, FakeLookup(stored, broken=True)), "/api/v1/predict/NVDA")[2] == b"flask"
    with pytest.raises(ConnectionError, match="Redis is down"):
        recorded_lookup(inner.environs[0])
