"""`GET /api/v1/predict/<symbol>`'s lookup, and its cache hits answered below Flask.

The hot read of the service: one stat of the model pointer, one of the cache sidecar, one Redis
round trip. Routing, request context and response objects cost more than that, so this WSGI
middleware parses the request with the route's rules, makes the request's one lookup
(web.prediction_lookup) and answers a hit itself, with the headers, request metrics and api.log
line every answer gets (web.middleware). Everything else goes on to Flask: a request refused by
web.admission (the layer in front of this one) before any lookup, bad input untouched
(the route answers the 400), a miss, an async request or a failed lookup with the lookup (or
its error) in the environ for the route. As in the route, the api.log line and request metrics
are written once the server has sent the answer.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qsl

from web.admission import REFUSAL_ENVIRON_KEY
from web.api.predictions import PREDICT_RULE, PREFIX
from web.errors import ApiError
from web.metrics import record_prediction
from web.middleware import answer_headers, record_request, request_id_for
from web.prediction_lookup import LOOKUP_ENVIRON_KEY, PredictionLookup, parse_query

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
METHODS = frozenset({"GET", "HEAD"})  # Flask answers HEAD with the GET view


def _args(query: str) -> dict[str, str]:
    """The query string's parameters as Flask's `request.args.get` reads them (first value)."""
    args: dict[str, str] = {}
    if query:
        text = query.encode("latin-1").decode()
        for name, value in parse_qsl(text, keep_blank_values=True, errors="werkzeug.url_quote"):
            args.setdefault(name, value)
    return args


class CachedPredictionFastPath:
    """WSGI middleware in front of the Flask app for `GET /api/v1/predict/<symbol>`."""

    def __init__(self, inner: WsgiApp, lookup: Callable[[], PredictionLookup]) -> None:
        self.inner = inner
        self._lookup = lookup

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "")
        if method not in METHODS or not path.startswith(PREFIX) or REFUSAL_ENVIRON_KEY in environ:
            return self.inner(environ, start_response)
        started = time.perf_counter()
        query = environ.get("QUERY_STRING", "")
        try:
            # PATH_INFO holds the path's bytes as latin-1; Flask routes on their UTF-8 reading.
            symbol = path[len(PREFIX) :].encode("latin-1").decode(errors="replace")
            parsed = parse_query(symbol, _args(query))
        except (ApiError, UnicodeError):
            return self.inner(environ, start_response)  # the route answers it as it does
        try:
            found = self._lookup().find(parsed)
        except Exception as exc:  # Redis trouble, a damaged pointer: the route raises it
            environ[LOOKUP_ENVIRON_KEY] = exc
            return self.inner(environ, start_response)
        if found.body is None:
            environ[LOOKUP_ENVIRON_KEY] = found
            return self.inner(environ, start_response)
        body = found.body
        request_id = request_id_for(environ.get("HTTP_X_REQUEST_ID", ""))
        start_response(
            "200 OK",
            [
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(body))),
                ("X-Cache", "hit"),
                *answer_headers(method, path, request_id),
            ],
        )
        elapsed = time.perf_counter() - started
        if method == "GET":  # a HEAD answers no prediction
            record_prediction(cached=True, elapsed=elapsed)

        def record() -> None:
            """Request metrics and the api.log line, once the server has sent the answer."""
            record_request(
                method,
                PREDICT_RULE,
                200,
                elapsed,
                path=f"{path}?{query}" if query else path,
                client=environ.get("REMOTE_ADDR") or "-",
                request_id=request_id,
                agent=environ.get("HTTP_USER_AGENT") or "-",
            )

        return _ThenOnClose(b"" if method == "HEAD" else body, record)


class _ThenOnClose(list[bytes]):
    """A one-chunk WSGI body that runs `after` when the server closes it (after sending)."""

    def __init__(self, body: bytes, after: Callable[[], None]) -> None:
        super().__init__([body])
        self._after = after

    def close(self) -> None:
        self._after()
