"""Scoring one forecast: hand-computed errors, direction hits without a hold band, intervals."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from stockpred.ledger import scoring
from stockpred.ledger.entries import Forecast, StoredForecast

SCORED_AT = datetime(2024, 3, 6, 21, 30, tzinfo=UTC)


def stored(
    point: float,
    naive: float = 100.0,
    interval: tuple[float, float] | None = None,
) -> StoredForecast:
    """A stored one-day NVDA forecast made on 2024-03-04 for 2024-03-05."""
    lower, upper = interval if interval else (None, None)
    return StoredForecast(
        id=7,
        forecast=Forecast(
            symbol="NVDA",
            as_of=date(2024, 3, 4),
            target_date=date(2024, 3, 5),
            horizon=1,
            forecaster="lstm",
            model_version="20240301T000000Z",
            point=point,
            naive=naive,
            requested_at=datetime(2024, 3, 4, 22, 0, tzinfo=UTC),
            lower=lower,
            upper=upper,
            level=None if interval is None else 0.8,
        ),
    )


def test_errors_of_a_forecast_and_of_the_naive_one_by_hand() -> None:
    # Previous close 100, realised 104; forecast 103, naive 100.
    score = scoring.score(stored(103.0), actual=104.0, previous_close=100.0, scored_at=SCORED_AT)
    assert score.forecast_id == 7
    assert score.actual == 104.0
    assert score.previous_close == 100.0
    assert score.abs_error == pytest.approx(1.0)
    assert score.pct_error == pytest.approx(100 / 104)  # 1 / 104 in percent: 0.9615…
    assert score.naive_abs_error == pytest.approx(4.0)
    assert score.naive_pct_error == pytest.approx(400 / 104)  # 3.846…
    assert score.scored_at == SCORED_AT


@pytest.mark.parametrize(
    ("point", "actual", "hit"),
    [
        (101.0, 104.0, True),  # up, and it went up
        (99.0, 96.0, True),  # down, and it went down
        (101.0, 96.0, False),  # up, but it went down
        (99.0, 104.0, False),  # down, but it went up
        (100.01, 100.02, True),  # the smallest predicted move still calls a direction: no band
        (100.0, 100.5, False),  # no move predicted, a move happened
        (100.0, 100.0, True),  # no move predicted, none happened
        (100.5, 100.0, False),  # a move predicted, none happened
    ],
)
def test_direction_hit_is_the_sign_of_the_move_from_the_previous_close(
    point: float, actual: float, hit: bool
) -> None:
    score = scoring.score(stored(point), actual=actual, previous_close=100.0, scored_at=SCORED_AT)
    assert score.direction_hit is hit


def test_the_naive_forecast_is_judged_by_the_same_rule() -> None:
    # The random-walk naive forecast repeats the previous close: it calls no move.
    moved = scoring.score(stored(101.0), actual=101.0, previous_close=100.0, scored_at=SCORED_AT)
    flat = scoring.score(stored(101.0), actual=100.0, previous_close=100.0, scored_at=SCORED_AT)
    assert moved.naive_direction_hit is False
    assert flat.naive_direction_hit is True
    drifted = scoring.score(
        stored(101.0, naive=100.2), actual=101.0, previous_close=100.0, scored_at=SCORED_AT
    )
    assert drifted.naive_direction_hit is True


@pytest.mark.parametrize(
    ("actual", "inside"),
    [(98.0, True), (95.0, True), (105.0, True), (94.99, False), (105.01, False)],
)
def test_inside_the_interval_includes_its_bounds(actual: float, inside: bool) -> None:
    score = scoring.score(
        stored(100.0, interval=(95.0, 105.0)),
        actual=actual,
        previous_close=100.0,
        scored_at=SCORED_AT,
    )
    assert score.inside is inside


def test_a_forecast_without_an_interval_has_no_coverage_answer() -> None:
    score = scoring.score(stored(100.0), actual=98.0, previous_close=100.0, scored_at=SCORED_AT)
    assert score.inside is None
