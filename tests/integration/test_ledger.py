"""The forecast ledger on real databases: SQLite files and a real PostgreSQL server.

Every test runs on both. Covers migrations from empty, append-only recording, scores written
once, scoring from real bars (the embedded data through MarketData), and two processes
recording the same forecasts at once.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta, timezone

import pandas as pd
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect, text
from sqlalchemy.exc import IntegrityError

from stockpred.ledger import migrate
from stockpred.ledger.database import create_ledger_engine
from stockpred.ledger.entries import Forecast, Score
from stockpred.ledger.schema import metadata
from stockpred.ledger.service import score_due
from stockpred.ledger.store import ForecastLedger
from tests.integration.conftest import CountingBars

REQUESTED = datetime(2024, 3, 4, 22, 15, 30, 123456, tzinfo=UTC)
# The embedded AAPL and MSFT series end on 2013-03-01; 16:30 in New York on Friday 2013-02-22.
AFTER_CLOSE = datetime(2013, 2, 22, 21, 30, tzinfo=UTC)


def forecast(**change: object) -> Forecast:
    """A one-day AAPL forecast made after the close of 2024-03-04."""
    values: dict[str, object] = {
        "symbol": "AAPL",
        "as_of": date(2024, 3, 4),
        "target_date": date(2024, 3, 5),
        "horizon": 1,
        "forecaster": "lstm",
        "model_version": "20240301T120000Z",
        "point": 175.123456789,
        "naive": 175.1,
        "requested_at": REQUESTED,
        "lower": 171.5,
        "upper": 178.75,
        "level": 0.8,
        "origin": "daily",
    }
    values.update(change)
    return Forecast(**values)  # type: ignore[arg-type]


def test_migrations_take_an_empty_database_to_the_schema_of_the_code(
    empty_engine: Engine,
) -> None:
    assert migrate.current_revision(empty_engine) is None
    first = migrate.upgrade(empty_engine)
    assert (first.before, first.after) == (None, migrate.head_revision())
    assert first.changed
    again = migrate.upgrade(empty_engine)
    assert not again.changed
    with empty_engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), metadata) == []
    tables = set(inspect(empty_engine).get_table_names())
    assert {"forecasts", "scores", "alembic_version"} <= tables


def test_values_come_back_as_stored(ledger: ForecastLedger) -> None:
    new_york = timezone(timedelta(hours=-5))
    given = forecast(requested_at=REQUESTED.astimezone(new_york))
    stored = ledger.record(given)
    entry = ledger.get(stored.id)
    assert entry is not None and entry.score is None
    back = entry.stored.forecast
    assert back == given
    assert back.requested_at.utcoffset() == timedelta(0)
    assert back.requested_at == REQUESTED
    assert back.point == 175.123456789  # double precision, exactly
    assert type(back.as_of) is date


def test_a_second_record_of_the_same_forecast_returns_the_first_unchanged(
    ledger: ForecastLedger,
) -> None:
    first = ledger.record(forecast())
    rerun = ledger.record(forecast(point=180.0, naive=176.0, requested_at=REQUESTED + timedelta(1)))
    assert rerun == first
    assert rerun.forecast.point == 175.123456789
    assert ledger.counts().forecasts == 1
    other_version = ledger.record(forecast(model_version="20240302T120000Z"))
    baseline = ledger.record(forecast(forecaster="naive", model_version=""))
    assert len({first.id, other_version.id, baseline.id}) == 3
    assert ledger.counts().forecasts == 3


def test_the_database_itself_refuses_an_interval_without_a_level(engine: Engine) -> None:
    row = {**forecast().to_dict(), "level": None, "requested_at": REQUESTED}
    row["as_of"], row["target_date"] = date(2024, 3, 4), date(2024, 3, 5)
    with pytest.raises(IntegrityError), engine.begin() as connection:
        connection.execute(metadata.tables["forecasts"].insert().values(row))


def test_a_score_is_written_once(ledger: ForecastLedger) -> None:
    stored = ledger.record(forecast())
    score = Score(
        forecast_id=stored.id,
        actual=176.0,
        previous_close=175.1,
        abs_error=0.876543211,
        pct_error=0.498,
        direction_hit=True,
        inside=True,
        naive_abs_error=0.9,
        naive_pct_error=0.511,
        naive_direction_hit=False,
        scored_at=AFTER_CLOSE,
    )
    assert ledger.record_scores([score]) == 1
    assert ledger.record_scores([replace(score, actual=1.0, inside=False)]) == 0
    entry = ledger.get(stored.id)
    assert entry is not None
    assert entry.score == score
    assert ledger.unscored() == []


def closes(bars: CountingBars, symbol: str) -> pd.Series:
    frame = bars.market.bars(symbol)
    return frame["close"]


def test_scoring_fills_every_due_forecast_from_one_read_per_symbol_and_only_once(
    ledger: ForecastLedger, embedded_bars: CountingBars
) -> None:
    aapl = closes(embedded_bars, "AAPL")
    msft = closes(embedded_bars, "MSFT")
    day = [d.date() for d in aapl.loc["2013-02-19":"2013-02-22"].index]
    assert day[0] == date(2013, 2, 19) and day[-1] == date(2013, 2, 22)
    previous, actual = float(aapl[str(day[1])]), float(aapl[str(day[2])])
    up = ledger.record(
        forecast(
            as_of=day[1],
            target_date=day[2],
            point=previous + 1,
            lower=previous - 5,
            upper=previous + 0.5,
            naive=previous,
        )
    )
    down = ledger.record(
        forecast(
            as_of=day[1],
            target_date=day[2],
            forecaster="drift",
            model_version="",
            point=previous - 1,
            lower=actual,
            upper=actual + 1,
            naive=previous,
        )
    )
    two_day = ledger.record(
        forecast(
            symbol="MSFT",
            as_of=day[0],
            target_date=day[2],
            horizon=2,
            point=float(msft[str(day[0])]) * 1.01,
            naive=float(msft[str(day[0])]),
        )
    )
    future = ledger.record(forecast(as_of=day[-1], target_date=date(2013, 2, 25)))
    embedded_bars.reads.clear()

    report = score_due(ledger=ledger, market=embedded_bars, clock=lambda: AFTER_CLOSE)

    assert embedded_bars.reads == {"AAPL": 1, "MSFT": 1}
    assert (report.scored, report.already_scored, report.waiting, report.no_bar) == (3, 0, 0, 0)
    assert report.through == date(2013, 2, 22)
    went_up = actual > previous
    up_score = ledger.get(up.id).score  # type: ignore[union-attr]
    down_score = ledger.get(down.id).score  # type: ignore[union-attr]
    assert up_score is not None and down_score is not None
    assert (up_score.actual, up_score.previous_close) == (actual, previous)
    assert up_score.direction_hit is went_up
    assert down_score.direction_hit is (not went_up)
    assert up_score.inside is (previous - 5 <= actual <= previous + 0.5)
    assert down_score.inside is True  # the interval starts at the realised close
    assert up_score.abs_error == pytest.approx(abs(previous + 1 - actual))
    assert up_score.naive_abs_error == pytest.approx(abs(previous - actual))
    msft_score = ledger.get(two_day.id).score  # type: ignore[union-attr]
    assert msft_score is not None
    assert msft_score.previous_close == float(msft[str(day[0])])
    assert [s.id for s in ledger.unscored()] == [future.id]  # not due on 2013-02-22

    before = {e.id: ledger.get(e.id) for e in (up, down, two_day)}
    again = score_due(
        ledger=ledger, market=embedded_bars, clock=lambda: AFTER_CLOSE + timedelta(days=1)
    )
    assert again.scored == 0
    assert {e.id: ledger.get(e.id) for e in (up, down, two_day)} == before


def test_a_forecast_for_a_session_not_closed_yet_is_not_scored(
    ledger: ForecastLedger, embedded_bars: CountingBars
) -> None:
    stored = ledger.record(forecast(as_of=date(2013, 2, 21), target_date=date(2013, 2, 22)))
    during_session = datetime(2013, 2, 22, 18, 0, tzinfo=UTC)  # 13:00 in New York
    report = score_due(ledger=ledger, market=embedded_bars, clock=lambda: during_session)
    assert report.scored == 0
    assert embedded_bars.reads == {}
    assert [s.id for s in ledger.unscored()] == [stored.id]
    later = score_due(ledger=ledger, market=embedded_bars, clock=lambda: AFTER_CLOSE)
    assert later.scored == 1


def test_a_target_date_without_a_bar_is_told_apart_from_one_still_to_come(
    ledger: ForecastLedger, embedded_bars: CountingBars
) -> None:
    # 2013-02-23 is a Saturday: no bar will ever come, and later bars exist.
    ledger.record(forecast(as_of=date(2013, 2, 22), target_date=date(2013, 2, 23)))
    # 2013-03-04 is a trading day after the last embedded bar (2013-03-01).
    ledger.record(forecast(as_of=date(2013, 3, 1), target_date=date(2013, 3, 4)))
    after_close = datetime(2013, 3, 4, 21, 30, tzinfo=UTC)
    report = score_due(ledger=ledger, market=embedded_bars, clock=lambda: after_close)
    assert (report.scored, report.no_bar, report.waiting) == (0, 1, 1)
    assert len(ledger.unscored()) == 2


def in_two_children_at_once(url: str, work: Callable[[Engine], str]) -> list[str]:
    """Fork two children that each run `work` on an engine of their own, released together.

    Returns what each printed; fails unless both exited 0.
    """
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()
    out_r, out_w = os.pipe()
    children = []
    for _ in range(2):
        pid = os.fork()
        if pid == 0:
            status = 1
            try:
                engine = create_ledger_engine(url)
                os.write(ready_w, b"r")
                os.read(go_r, 1)
                os.write(out_w, (work(engine) + "\n").encode())
                engine.dispose()
                status = 0
            finally:
                os._exit(status)
        children.append(pid)
    for _ in children:
        os.read(ready_r, 1)
    os.write(go_w, b"gg")  # both start at once
    statuses = [os.waitpid(pid, 0)[1] for pid in children]
    os.close(out_w)
    with os.fdopen(out_r) as results:
        lines = results.read().split()
    for fd in (ready_r, ready_w, go_r, go_w):
        os.close(fd)
    assert statuses == [0, 0]
    return lines


def test_two_writers_recording_the_same_forecasts_leave_one_row_each(
    engine: Engine,
) -> None:
    url = engine.url.render_as_string(hide_password=False)
    engine.dispose()  # no pooled connection may cross the fork
    wanted = [
        forecast(as_of=date(2024, 1, 2) + timedelta(days=n), target_date=date(2024, 6, 1))
        for n in range(40)
    ]

    def record_all(child_engine: Engine) -> str:
        ledger = ForecastLedger(child_engine)
        return ",".join(str(ledger.record(f).id) for f in wanted)

    lines = in_two_children_at_once(url, record_all)
    assert len(lines) == 2 and lines[0] == lines[1]  # both got the same stored rows
    ledger = ForecastLedger(engine)
    assert ledger.counts().forecasts == len(wanted)
    with engine.connect() as connection:
        duplicates = connection.execute(
            text(
                "SELECT COUNT(*) FROM (SELECT symbol, as_of FROM forecasts "
                "GROUP BY symbol, as_of, target_date, horizon, forecaster, model_version "
                "HAVING COUNT(*) > 1) AS d"
            )
        ).scalar_one()
    assert duplicates == 0


def test_two_hosts_migrating_an_empty_database_at_once_both_succeed(
    empty_engine: Engine,
) -> None:
    url = empty_engine.url.render_as_string(hide_password=False)
    empty_engine.dispose()

    def upgrade(child_engine: Engine) -> str:
        migration = migrate.upgrade(child_engine)
        return f"{migration.before or 'empty'}>{migration.after}"

    head = migrate.head_revision()
    outcomes = sorted(in_two_children_at_once(url, upgrade))
    assert outcomes == sorted([f"empty>{head}", f"{head}>{head}"])  # one migrated, one waited
    assert migrate.current_revision(empty_engine) == head


def test_history_pages_a_symbols_forecasts_newest_first_with_filters(
    ledger: ForecastLedger,
) -> None:
    start = date(2013, 1, 2)
    made = [
        ledger.record(
            forecast(as_of=start + timedelta(days=n), target_date=start + timedelta(days=n + 1))
        )
        for n in range(5)
    ]
    drift = ledger.record(forecast(forecaster="drift", model_version=""))
    ledger.record(forecast(symbol="MSFT"))
    page = ledger.history("AAPL", forecaster="lstm", limit=2)
    assert [e.stored.id for e in page] == [made[4].id, made[3].id]
    assert all(e.score is None for e in page)
    assert [e.stored.id for e in ledger.history("AAPL", forecaster="lstm", limit=2, offset=4)] == [
        made[0].id
    ]
    window = ledger.history("AAPL", start=date(2013, 1, 4), end=date(2013, 1, 5))
    assert {e.stored.id for e in window} == {made[1].id, made[2].id}  # targets 4 and 5 Jan
    assert [e.stored.id for e in ledger.history("AAPL", forecaster="drift")] == [drift.id]
    assert ledger.history("AAPL", horizon=2) == []
    assert {s.forecast.symbol for s in ledger.unscored(symbols=["MSFT"])} == {"MSFT"}
    with pytest.raises(ValueError, match="limit"):
        ledger.history("AAPL", limit=0)
