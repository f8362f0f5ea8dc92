"""Forecast figures: the served (champion) forecast vs naive, out of sample, on the embedded data.

For every embedded symbol with enough history: the last `EVAL` one-day forecasts are the
evaluated window E; the `CHOOSE` origins just before it are the choice window C. The LSTM is
trained once on bars up to the first origin of C (a short training: few epochs, small net) and
applied at every origin of C and E through the serving path (`LoadedModel.forecast`), no
retraining. On C only, the champion among naive, drift and the LSTM is chosen with the
training rule (`stockpred.ml.champion`) and its 80 % band is calibrated (standardised residuals
by EWMA volatility); on E the champion's forecast and band are scored, sigma at each origin
using returns up to it. Every choice thus uses only data before each evaluated `as_of`.

Pooled MASE = mean over all evaluated forecasts of |log error| / the symbol's in-sample scale
(mean |one-day log change| before E); relative MAE = served MAE / naive MAE on the same
origins. The DM test (HLN, absolute loss) of served vs naive runs on the pooled scaled errors.
Run: `.venv/bin/python -m tests.bench.forecast_figures` (prints a table, then JSON).
"""

from __future__ import annotations

import json
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from stockpred.market.embedded import EmbeddedSource, embedded_symbols
from stockpred.ml.backtest import actual_log_returns, naive_scale, run_backtest
from stockpred.ml.baselines import BASELINES, baseline_log_returns
from stockpred.ml.champion import choose_champion
from stockpred.ml.config import MLConfig
from stockpred.ml.diebold_mariano import compare_errors
from stockpred.ml.features import compute_features
from stockpred.ml.intervals import calibrate, covered, ewma_volatility
from tests.bench.stats import figure

EVAL = 250
CHOOSE = 250
MIN_TRAIN = 400
LSTM_CONFIG = MLConfig(lstm_units=(16,), sequence_length=30, max_horizon=1)
LSTM_EPOCHS = 5


@dataclass(frozen=True)
class SymbolRun:
    """One symbol's evaluated window: scaled errors and coverage of served, naive and LSTM."""

    symbol: str
    first: str
    last: str
    champion: str
    why: str
    served_scaled: np.ndarray
    naive_scaled: np.ndarray
    lstm_scaled: np.ndarray
    served_covered: np.ndarray
    lstm_covered: np.ndarray


def lstm_forecasts(
    symbol: str, bars: pd.DataFrame, features: pd.DataFrame, origins: np.ndarray
) -> np.ndarray:
    """Train once on bars up to origins[0], forecast one day ahead at every origin."""
    from stockpred.ml.forecast import LoadedModel
    from stockpred.ml.registry import ModelRegistry
    from stockpred.ml.training import train_and_publish

    cutoff = features.index[origins[0]]
    with tempfile.TemporaryDirectory(prefix="sp-forecast-bench-") as folder:
        registry = ModelRegistry(Path(folder) / "ml_models", Path(folder) / "scalers")
        train_and_publish(
            symbol,
            bars.loc[:cutoff],
            config=LSTM_CONFIG,
            registry=registry,
            band=0.01,
            epochs=LSTM_EPOCHS,
            force=True,
            data_source="embedded",
        )
        info = registry.current(symbol)
        assert info is not None
        return LoadedModel.load(info).forecast(features, origins)


def run_symbol(symbol: str, with_lstm: bool = True) -> SymbolRun | None:
    """Choose on C, score on E; None when the symbol's history is too short."""
    bars = EmbeddedSource().fetch(symbol).frame
    features = compute_features(bars)
    n = len(features)
    if n < EVAL + CHOOSE + MIN_TRAIN + 1:
        return None
    close = features["close"].to_numpy(dtype="float64")
    origins = np.arange(n - 1 - EVAL - CHOOSE, n - 1)  # the last origin has its next bar
    forecasts = {name: baseline_log_returns(name, close, origins, 1) for name in BASELINES}
    forecasts["lstm"] = (
        lstm_forecasts(symbol, bars, features, origins)[:, :1] if with_lstm else forecasts["naive"]
    )
    choose, judge = slice(0, CHOOSE), slice(CHOOSE, None)
    sigma = ewma_volatility(features["log_return"].to_numpy(dtype="float64"))[origins]
    chosen = run_backtest(
        close, features.index, origins[choose], {k: v[choose] for k, v in forecasts.items()}, 1
    )
    champion = choose_champion(chosen)
    residual = actual_log_returns(close, origins, 1)
    bands = {
        name: calibrate(chosen.forecasters[name].log_errors, sigma[choose])
        for name in ("lstm", champion.forecaster)
    }
    scale = naive_scale(close, int(origins[CHOOSE]))

    def scaled(name: str) -> np.ndarray:
        return np.asarray(np.abs(residual[judge] - forecasts[name][judge])[:, 0] / scale)

    def cover(name: str) -> np.ndarray:
        errors = residual[judge] - forecasts[name][judge]
        return covered(errors, sigma[judge], bands[name])[:, 0]

    dates = features.index[origins[judge]]
    return SymbolRun(
        symbol,
        dates[0].strftime("%Y-%m-%d"),
        dates[-1].strftime("%Y-%m-%d"),
        champion.forecaster,
        champion.why,
        scaled(champion.forecaster),
        scaled("naive"),
        scaled("lstm"),
        cover(champion.forecaster),
        cover("lstm"),
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
                "champion": run.champion,
                "why": run.why,
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


def table(summary: dict[str, Any]) -> str:
    """The figures as a fixed-width text table."""
    head = (
        f"{'symbol':8} {'window':23} {'n':>4} {'champion':8} {'MASE':>6} {'naive':>6} "
        f"{'rel':>6} {'DM p':>6} {'cov80':>6} | {'LSTM':>6} {'rel':>6} {'DM p':>6} {'cov80':>6}"
    )
    lines = [head, "-" * len(head)]
    for r in [
        *summary["symbols"],
        {"symbol": "pooled", "window": "", "champion": "", **summary["pooled"]},
    ]:
        lines.append(
            f"{r['symbol']:8} {r['window']:23} {r['n']:>4} {r['champion']:8} "
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
