"""Backfill on real databases and real embedded prices; the replayed LSTM on real TensorFlow.

Covers: every replayed day stored once with origin "backfill" and scored from the bars, a second
run changing nothing (SQLite and PostgreSQL), `stockpred backtest` as an operator runs it, and
the replayed LSTM seeing no bar after the day it forecasts from.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Engine, select

from stockpred.ledger.backfill import backfill
from stockpred.ledger.schema import forecasts, scores
from stockpred.ledger.store import ForecastLedger
from stockpred.market.embedded import EmbeddedSource
from stockpred.ml.config import MLConfig
from stockpred.ml.features import compute_features
from stockpred.ml.replay_lstm import replay_lstm
from stockpred.paths import DataTree
from stockpred.settings import load_settings
from tests.integration.conftest import CountingBars
from tests.support import BIN

TINY = {"lstm_units": [8], "sequence_length": 20, "max_horizon": 2, "epochs": 1}


def rows_of(engine: Engine) -> tuple[list[Any], list[Any]]:
    with engine.connect() as connection:
        stored = connection.execute(select(forecasts).order_by(forecasts.c.id)).all()
        scored = connection.execute(select(scores).order_by(scores.c.forecast_id)).all()
    return stored, scored


def test_a_backfill_stores_each_day_once_scores_it_and_a_rerun_changes_nothing(
    ledger: ForecastLedger, embedded_bars: CountingBars
) -> None:
    bars = embedded_bars.market.bars("AAPL")
    report = backfill(
        "AAPL",
        bars,
        start=None,
        end=None,
        horizon=2,
        days=60,
        ledger=ledger,
        market=embedded_bars,
    )
    assert (report.days, report.horizon, report.stored, report.already_stored) == (60, 2, 120, 0)
    assert report.last == "2013-03-01" and report.lstm_version is None
    assert sum(report.served_by.values()) == 60
    # The last day's two targets and the day before's second one have no bar yet.
    assert report.scoring is not None
    assert (report.scoring.scored, report.scoring.waiting, report.scoring.no_bar) == (117, 3, 0)
    entries = ledger.history("AAPL", limit=1000)
    assert len(entries) == 120
    closes = {stamp.date(): float(c) for stamp, c in bars["close"].items()}
    for entry in entries:
        made = entry.stored.forecast
        assert made.origin == "backfill" and made.model_version == ""
        assert made.naive == round(closes[made.as_of], 4)
        if entry.score is not None:
            assert entry.score.actual == closes[made.target_date]
            assert entry.score.inside == (made.lower <= entry.score.actual <= made.upper)
    before = rows_of(ledger.engine)
    again = backfill(
        "AAPL", bars, start=None, end=None, horizon=2, days=60, ledger=ledger, market=embedded_bars
    )
    assert (again.stored, again.already_stored) == (0, 120)
    assert again.scoring is not None and again.scoring.scored == 0
    assert rows_of(ledger.engine) == before


def test_the_replayed_lstm_sees_no_bar_after_the_day_it_forecasts_from() -> None:
    bars = EmbeddedSource().fetch("^GSPC").frame.loc["2015":]
    features = compute_features(bars)
    rows = np.arange(len(features) - 300, len(features))
    config = MLConfig(lstm_units=(8,), sequence_length=20, max_horizon=1, epochs=1)
    real = replay_lstm("^GSPC", bars, features, rows, config=config, band=0.01)
    cut = features.index[rows[100]]
    changed = bars.copy()
    changed.loc[changed.index > cut, "close"] *= 1.5
    other = replay_lstm("^GSPC", changed, compute_features(changed), rows, config=config, band=0.01)
    assert real.trained_through == features.index[rows[0]].strftime("%Y-%m-%d")
    assert real.version == other.version and real.version.startswith("replay-")

    def values(made: Any, chosen: np.ndarray) -> np.ndarray:
        return np.array([made.forecasts[int(r)] for r in chosen])

    np.testing.assert_array_equal(values(real, rows[:101]), values(other, rows[:101]))
    # The changed bars reached the later days: the equality above could have failed.
    assert np.abs(values(real, rows[101:]) - values(other, rows[101:])).max() > 1e-4


def backtest(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "stockpred"), "backtest", *args],
        env={**env, "STOCK_DATA_SOURCE": "embedded"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_the_command_backfills_the_tracked_symbols_and_names_the_ones_it_cannot(
    data_env: dict[str, str],
) -> None:
    done = backtest("--no-lstm", "--days", "20", env=data_env)
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout[done.stdout.index("{\n") :])
    assert {r["symbol"] for r in out["backfilled"]} == {
        "AAPL", "AMZN", "GOOG", "IBM", "MSFT", "NFLX", "NVDA", "^GSPC", "^IXIC"
    }  # fmt: skip
    assert all(r["days"] == 20 and r["stored"] == 20 for r in out["backfilled"])
    assert set(out["skipped"]) == {"META", "TSLA"}
    assert "a replay needs more than" in out["skipped"]["META"]
    named = backtest("META", "--no-lstm", env=data_env)
    assert named.returncode == 1 and "not backfilled: META:" in named.stderr
    too_early = backtest("AAPL", "--no-lstm", "--from", "2000-06-01", env=data_env)
    assert too_early.returncode == 1
    assert "the first day that can be replayed is 2001-" in too_early.stderr
    bad = backtest("AAPL", "--from", "June", env=data_env)
    assert bad.returncode == 2 and "YYYY-MM-DD" in bad.stderr
    config = DataTree.from_settings(load_settings(data_env)).ml_config
    config.write_text(json.dumps(TINY), encoding="utf-8")  # max_horizon 2
    too_far = backtest("AAPL", "--horizon", "3", env=data_env)
    assert too_far.returncode == 2 and "at most 2 days ahead" in too_far.stderr


def test_the_command_lets_a_replayed_lstm_compete_and_names_its_version(
    data_env: dict[str, str],
) -> None:
    settings = load_settings(data_env)
    config = DataTree.from_settings(settings).ml_config
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(json.dumps(TINY), encoding="utf-8")
    done = backtest("^GSPC", "--from", "2020-02-03", "--to", "2020-02-14", env=data_env)
    assert done.returncode == 0, done.stderr[-2000:]
    # Trained on bars up to the first origin of the first day's choice window, 250 sessions back.
    index = compute_features(EmbeddedSource().fetch("^GSPC").frame).index
    through = index[index.get_loc(pd.Timestamp("2020-02-03")) - 250].date()
    assert f"training the replay's LSTM on bars up to {through}" in done.stdout
    (report,) = json.loads(done.stdout[done.stdout.index("{\n") :])["backfilled"]
    assert report["lstm_version"].startswith(f"replay-{through}-")
    assert (report["first"], report["last"], report["days"]) == ("2020-02-03", "2020-02-14", 10)
    assert report["scoring"]["scored"] == 10
