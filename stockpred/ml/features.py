"""Model inputs computed from daily bars, each from past and current values only (causal).

close, log_return (ln close_t/close_t-1), log_volume (ln 1+volume), rsi_14 (Wilder's RSI),
macd (EMA12 - EMA26 of close, relative to close) and macd_signal (EMA9 of macd). Rows before
every indicator is defined are dropped.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

WARMUP_ROWS = 35  # MACD's signal line needs 26 + 9 rows


def rsi(close: pd.Series, period: int = 14) -> pd.Series:
    """Wilder's relative strength index, 0..100."""
    change = close.diff()
    gain = change.clip(lower=0).ewm(alpha=1 / period, adjust=False, min_periods=period).mean()
    loss = (-change.clip(upper=0)).ewm(alpha=1 / period, adjust=False, min_periods=period).mean()
    strength = gain / loss.replace(0, np.nan)
    return (100 - 100 / (1 + strength)).fillna(100.0).where(loss.notna())


def compute_features(bars: pd.DataFrame) -> pd.DataFrame:
    """Feature frame indexed like `bars`, warm-up rows dropped."""
    close = bars["close"].astype("float64")
    ema12 = close.ewm(span=12, adjust=False, min_periods=12).mean()
    ema26 = close.ewm(span=26, adjust=False, min_periods=26).mean()
    macd = (ema12 - ema26) / close
    frame = pd.DataFrame(
        {
            "close": close,
            "log_return": np.log(close / close.shift(1)),
            "log_volume": np.log1p(bars["volume"].astype("float64")),
            "rsi_14": rsi(close),
            "macd": macd,
            "macd_signal": macd.ewm(span=9, adjust=False, min_periods=9).mean(),
        },
        index=bars.index,
    )
    return frame.iloc[WARMUP_ROWS:].dropna()
