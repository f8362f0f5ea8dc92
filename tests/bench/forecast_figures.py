"""Forecast figures: the served (champion) forecast vs naive, out of sample, on the embedded data.

For every embedded symbol with enough history: the last `EVAL` one-day forecasts are the
evaluated window E; the `CHOOSE` origins just before it are the first day's choice window. The
served forecasts are what `stockpred backtest` stores: the walk-forward replay
(`stockpred.ml.replay`), which chooses the champion among naive, drift and the LSTM and
calibrates its 80 % band anew each day on the `CHOOSE` origins whose targets are known by then.
The LSTM is trained once on bars up to the first origin of the first choice window (a short
training: few epochs, small net) and applied at every later origin through the serving path
(`stockpred.ml.replay_lstm`), no retraining. Every choice thus uses only data before each
evaluated `as_of`. The LSTM's own figures use its band calibrated once, on the first day's
choice window.

Pooled MASE = mean over all evaluated forecasts of |log error| / the symbol's in-sample scale
(mean |one-day log change| before E); relative MAE = served MAE / naive MAE on the same
origins. The DM test (HLN, absolute loss) of served vs naive runs on the pooled scaled errors.
Run: `.venv/bin/python -m tests.bench.forecast_figures` (prints a table, then JSON).
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np

from stockpred.market.embedded import EmbeddedSource, embedded_symbols
from stockpred.ml.backtest import actual_log_returns, naive_scale
from stockpred.ml.config import MLConfig
from stockpred.ml.diebold_mariano import compare_errors
from stockpred.ml.features import compute_features
from stockpred.ml.intervals import calibrate, covered, ewma_volatility
from stockpred.ml.replay import CHOOSE, replay
from tests.bench.stats import figure

EVAL = 250
MIN_TRAIN = 400
LSTM_CONFIG = MLConfig(lstm_units=(16,), sequence_length=30, max_horizon=1)
LSTM_EPOCHS = 5


@dataclass(frozen=True)
class SymbolRun:
    """One symbol's evaluated window: scaled errors and coverage of served, naive and LSTM."""

    symbol: str
    first: str
    last: str
    served_by: dict[str, int]
    served_scaled: np.ndarray
    naive_scaled: np.ndarray
    lstm_scaled: np.ndarray
    served_covered: np.ndarray
    lstm_covered: np.ndarray


def run_symbol(symbol: str, with_lstm: bool = True) -> SymbolRun | None:
    """Replay E and score it; None when the symbol's history is too short."""
    bars = EmbeddedSource().fetch(symbol).frame
    features = compute_features(bars)
    n = len(features)
    if n < EVAL + CHOOSE + MIN_TRAIN + 1:
        return None
    close = features["close"].to_numpy(dtype="float64")
    judged = np.arange(n - 1 - EVAL, n - 1)  # the last origin has its next bar
    chosen = np.arange(judged[0] - CHOOSE, judged[0])  # the first day's choice window
    lstm = None
    if with_lstm:
        from stockpred.ml.replay_lstm import replay_lstm

        lstm = replay_lstm(
            symbol,
            bars,
            features,
            np.arange(chosen[0], judged[-1] + 1),
            config=LSTM_CONFIG,
            band=0.01,
            epochs=LSTM_EPOCHS,
        ).forecasts
    days = replay(features, judged, 1, lstm=lstm, choose=CHOOSE)
    actual = close[judged + 1]
    scale = naive_scale(close, int(judged[0]))
    served = np.array([day.points[0] for day in days])
    bands = np.array([day.bands[0] for day in days])
    lstm_returns = (
        np.array([lstm[int(r)][0] for r in np.arange(chosen[0], judged[-1] + 1)])[:, np.newaxis]
        if lstm is not None
        else np.zeros((CHOOSE + EVAL, 1))
    )
    residual = actual_log_returns(close, np.arange(chosen[0], judged[-1] + 1), 1) - lstm_returns
    sigma = ewma_volatility(features["log_return"].to_numpy(dtype="float64"))
    lstm_band = calibrate(residual[:CHOOSE], sigma[chosen])
    dates = features.index[judged]
    naive_scaled = np.abs(np.log(actual / close[judged])) / scale
    return SymbolRun(
        symbol,
        dates[0].strftime("%Y-%m-%d"),
        dates[-1].strftime("%Y-%m-%d"),
        dict(Counter(day.forecaster for day in days)),
        np.abs(np.log(actual / served)) / scale,
        naive_scaled,
        np.abs(residual[CHOOSE:, 0]) / scale if lstm is not None else naive_scaled,
        (bands[:, 0] <= actual) & (actual <= bands[:, 1]),
        covered(residual[CHOOSE:], sigma[judged], lstm_band)[:, 0],
    )


def _dm_p(errors: np.ndarray, naive: np.ndarray) -> float:
    result = compare_errors(errors.tolist(), naive.tolist())
    return 1.0 if result is None else result.p_value  # None: the same errors, no difference


def summarise(runs: list[SymbolRun]) -> dict[str, Any]:
    """Per symbol and pooled figures."""
    rows = []
    for run in runs:
        rows.append(
            {
                "symbol": run.symbol,
                "window": f"{run.first}..{run.last}",
                "n": len(run.served_scaled),
                "served_by": run.served_by,
                "served_mase": float(run.served_scaled.mean()),
                "naive_mase": float(run.naive_scaled.mean()),
                "served_relative_mae": float(run.served_scaled.mean() / run.naive_scaled.mean()),
                "served_dm_p": _dm_p(run.served_scaled, run.naive_scaled),
                "served_coverage_80": float(run.served_covered.mean()),
                "lstm_mase": float(run.lstm_scaled.mean()),
                "lstm_relative_mae": float(run.lstm_scaled.mean() / run.naive_scaled.mean()),
                "lstm_dm_p": _dm_p(run.lstm_scaled, run.naive_scaled),
                "lstm_coverage_80": float(run.lstm_covered.mean()),
            }
        )
    served = np.concatenate([r.served_scaled for r in runs])
    naive = np.concatenate([r.naive_scaled for r in runs])
    lstm = np.concatenate([r.lstm_scaled for r in runs])
    pooled = {
        "n": len(served),
        "served_mase": float(served.mean()),
        "naive_mase": float(naive.mean()),
        "served_relative_mae": float(served.mean() / naive.mean()),
        "served_dm_p": _dm_p(served, naive),
        "served_coverage_80": float(np.concatenate([r.served_covered for r in runs]).mean()),
        "lstm_mase": float(lstm.mean()),
        "lstm_relative_mae": float(lstm.mean() / naive.mean()),
        "lstm_dm_p": _dm_p(lstm, naive),
        "lstm_coverage_80": float(np.concatenate([r.lstm_covered for r in runs]).mean()),
    }
    return {"symbols": rows, "pooled": pooled}


def forecast_figures(with_lstm: bool = True) -> list[dict[str, Any]]:
    """The benchmark entries: served relative MASE, pooled and worst per-symbol coverage."""
    runs = [r for s in embedded_symbols() if (r := run_symbol(s, with_lstm)) is not None]
    summary = summarise(runs)
    pooled = summary["pooled"]
    worst = max(summary["symbols"], key=lambda r: abs(r["served_coverage_80"] - 0.8))
    return [
        figure("served pooled MASE vs naive", pooled["served_relative_mae"], "<= 1.01", summary),
        # coverage targets as distance from the nominal 0.8: pooled within 0.76-0.84 ...
        figure(
            "served 80% coverage pooled, |coverage - 0.8|",
            abs(pooled["served_coverage_80"] - 0.8),
            "<= 0.04",
            {"coverage": pooled["served_coverage_80"]},
        ),
        # ... and every symbol within 0.70-0.90
        figure(
            "served 80% coverage of the symbol farthest from 0.8, |coverage - 0.8|",
            abs(worst["served_coverage_80"] - 0.8),
            "<= 0.10",
            {"symbol": worst["symbol"], "coverage": worst["served_coverage_80"]},
        ),
    ]


def _served_by(counts: dict[str, int]) -> str:
    return ", ".join(f"{name} {n}" for name, n in sorted(counts.items(), key=lambda kv: -kv[1]))


def table(summary: dict[str, Any]) -> str:
    """The figures as a fixed-width text table."""
    head = (
        f"{'symbol':8} {'window':23} {'n':>4} {'served by':28} {'MASE':>6} {'naive':>6} "
        f"{'rel':>6} {'DM p':>6} {'cov80':>6} | {'LSTM':>6} {'rel':>6} {'DM p':>6} {'cov80':>6}"
    )
    lines = [head, "-" * len(head)]
    for r in [
        *summary["symbols"],
        {"symbol": "pooled", "window": "", "served_by": {}, **summary["pooled"]},
    ]:
        lines.append(
            f"{r['symbol']:8} {r['window']:23} {r['n']:>4} {_served_by(r['served_by']):28} "
            f"{r['served_mase']:6.3f} {r['naive_mase']:6.3f} {r['served_relative_mae']:6.3f} "
            f"{r['served_dm_p']:6.3f} {r['served_coverage_80']:6.3f} | {r['lstm_mase']:6.3f} "
            f"{r['lstm_relative_mae']:6.3f} {r['lstm_dm_p']:6.3f} {r['lstm_coverage_80']:6.3f}"
        )
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    """Print the table and the figures' JSON."""
    entries = forecast_figures(with_lstm="--no-lstm" not in argv)
    print(table(entries[0]["detail"]), file=sys.stderr)
    print(json.dumps(entries, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
