"""The accuracy math on hand-computed cases (and scipy as a second opinion on Student's t)."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta

import pytest
from scipy import stats

from stockpred.ledger.accuracy import accuracy
from stockpred.ledger.entries import Forecast, LedgerEntry, StoredForecast
from stockpred.ledger.scoring import score
from stockpred.ml.diebold_mariano import diebold_mariano, student_t_two_sided_p

START = date(2024, 3, 4)


def entry(
    day: int,
    point: float,
    naive: float,
    actual: float,
    symbol: str = "AAPL",
    interval: tuple[float, float] | None = None,
) -> LedgerEntry:
    """A scored one-day forecast whose previous close (at as_of) is the naive forecast."""
    as_of = START + timedelta(days=day)
    lower, upper = interval if interval else (None, None)
    forecast = Forecast(
        symbol=symbol,
        as_of=as_of,
        target_date=as_of + timedelta(days=1),
        horizon=1,
        forecaster="lstm",
        model_version="v1",
        point=point,
        naive=naive,
        requested_at=datetime(2024, 3, 4, tzinfo=UTC),
        lower=lower,
        upper=upper,
        level=0.8 if interval else None,
    )
    stored = StoredForecast(day + 1, forecast)
    scored = score(
        stored, actual=actual, previous_close=naive, scored_at=datetime(2024, 4, 1, tzinfo=UTC)
    )
    return LedgerEntry(stored, scored)


def test_students_t_matches_closed_forms_and_scipy() -> None:
    assert student_t_two_sided_p(1.0, 1) == pytest.approx(0.5)  # Cauchy: 1 - 2 atan(1) / pi
    assert student_t_two_sided_p(1.0, 2) == pytest.approx(1 - 1 / math.sqrt(3))  # 1 - t/√(2+t²)
    assert student_t_two_sided_p(0.0, 7) == pytest.approx(1.0)
    for t, df in [(3.873, 3), (-1.7, 30), (2.5, 250), (0.01, 4)]:
        assert student_t_two_sided_p(t, df) == pytest.approx(2 * stats.t.sf(abs(t), df), rel=1e-9)


def test_diebold_mariano_on_a_hand_computed_series() -> None:
    # d = 1,2,3,4: mean 2.5, g0 = (2.25+0.25+0.25+2.25)/4 = 1.25, DM = 2.5/√(1.25/4) = √20;
    # HLN for h=1, n=4: times √((4+1-2)/4) = √0.75, so √15; p from t with 3 df.
    dm = diebold_mariano([1.0, 2.0, 3.0, 4.0], horizon=1)
    assert dm is not None
    assert dm.statistic == pytest.approx(math.sqrt(15))
    assert dm.p_value == pytest.approx(2 * stats.t.sf(math.sqrt(15), 3))
    # h=2 adds 2*g1: g1 = (-0.5*-1.5 + 0.5*-0.5 + 1.5*0.5)/4 = 0.3125, V = 1.875;
    # DM = 2.5/√(1.875/4); HLN times √((4+1-4+2/4)/4) = √0.375.
    two = diebold_mariano([1.0, 2.0, 3.0, 4.0], horizon=2)
    assert two is not None
    assert two.statistic == pytest.approx(2.5 / math.sqrt(1.875 / 4) * math.sqrt(0.375))
    assert diebold_mariano([1.0, 1.0, 1.0]) is None  # no variance: undefined
    assert diebold_mariano([1.0]) is None


def test_figures_beside_the_naive_ones_on_a_hand_computed_set() -> None:
    entries = [
        entry(0, point=101.0, naive=100.0, actual=102.0, interval=(99.0, 103.0)),  # up, hit
        entry(1, point=103.0, naive=102.0, actual=101.0, interval=(101.5, 104.0)),  # down, miss
        entry(2, point=100.0, naive=101.0, actual=99.0),  # down, hit; no interval
    ]
    figures = accuracy(entries)
    assert figures.n == 3
    # model errors 1, 2, 1; naive errors 2, 1, 2
    assert figures.model.mae == pytest.approx(4 / 3)
    assert figures.naive.mae == pytest.approx(5 / 3)
    assert figures.model.rmse == pytest.approx(math.sqrt(6 / 3))
    assert figures.naive.rmse == pytest.approx(math.sqrt(9 / 3))
    assert figures.model.mase == pytest.approx(4 / 5)
    assert figures.naive.mase == pytest.approx(1.0)
    assert figures.model.mape == pytest.approx((1 / 102 + 2 / 101 + 1 / 99) * 100 / 3)
    assert figures.model.direction_accuracy == pytest.approx(2 / 3)
    assert figures.naive.direction_accuracy == 0.0  # no move predicted, a move every day
    assert figures.up_share == pytest.approx(1 / 3)
    assert figures.majority_share == pytest.approx(2 / 3)
    assert (figures.coverage, figures.coverage_n, figures.level) == (0.5, 2, 0.8)
    dm = figures.diebold_mariano
    assert dm is not None  # d = 1-4, 4-1, 1-4 = -3, 3, -3
    mean, gamma0 = -1.0, (4 + 16 + 4) / 3
    assert dm.statistic == pytest.approx(mean / math.sqrt(gamma0 / 3) * math.sqrt(2 / 3))


def test_pooled_differences_are_averaged_per_day_and_unscored_entries_ignored() -> None:
    same_day = [entry(0, 101.0, 100.0, 102.0, "AAPL"), entry(0, 50.0, 50.0, 52.0, "MSFT")]
    later = [entry(1, 101.0, 100.0, 100.0), entry(2, 99.0, 100.0, 101.0)]
    unscored = LedgerEntry(later[0].stored, None)
    figures = accuracy([*same_day, *later, unscored])
    assert figures.n == 4
    dm = figures.diebold_mariano
    assert dm is not None and dm.n == 3  # three trading days
    empty = accuracy([unscored])
    assert empty.n == 0 and empty.model.mae is None and empty.diebold_mariano is None
