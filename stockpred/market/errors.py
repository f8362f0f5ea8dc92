"""Why market data could not be had, told apart so callers can answer 404, 503 or retry."""

from __future__ import annotations

from stockpred.jobs.errors import ErrorKind


class MarketDataError(Exception):
    """Base of every market-data failure."""

    retryable = False


class UnknownSymbol(MarketDataError):
    """The source knows no such symbol (or it is delisted): a 404, never retried."""

    kind = ErrorKind.UNKNOWN_SYMBOL


class NoData(MarketDataError):
    """No source available here has data for the symbol: a 404."""

    kind = ErrorKind.NO_DATA


class RememberedNoData(NoData):
    """The symbol was found without data moments ago (the negative cache): not looked up again."""

    def __init__(self, message: str, kind: ErrorKind = ErrorKind.NO_DATA) -> None:
        super().__init__(message)
        self.kind = kind


class RateLimited(MarketDataError):
    """The source asked us to slow down: retried with backoff."""

    retryable = True
    kind = ErrorKind.SOURCE_UNAVAILABLE


class SourceUnavailable(MarketDataError):
    """The source could not be reached or did not answer in time: retried, then a 503."""

    retryable = True
    kind = ErrorKind.SOURCE_UNAVAILABLE


class RefreshBusy(SourceUnavailable):
    """Another process held the symbol's refresh lock for longer than a caller waits: retried."""


class BadData(MarketDataError):
    """The source answered with an empty or NaN-ridden frame."""


class CsvFormatError(MarketDataError):
    """An operator's CSV file is malformed; the message names the file and line."""
