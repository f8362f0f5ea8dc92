"""`stockpred backtest`: backfill the ledger with the forecasts each past day would have had."""

from __future__ import annotations

import json
import logging
from datetime import date
from typing import TYPE_CHECKING, Any

import click

from stockpred.ledger.errors import LedgerUnavailable
from stockpred.ops.cli.common import cli_settings, local_market, parse_symbol
from stockpred.paths import DataTree
from stockpred.settings import Settings

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

log = logging.getLogger(__name__)
DEFAULT_DAYS = 250


def _day(raw: str | None, name: str) -> date | None:
    if raw is None:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise click.BadParameter("a date as YYYY-MM-DD", param_hint=name) from None


def _lstm_replay(
    settings: Settings, symbol: str, bars: pd.DataFrame, epochs: int | None, horizon: int
) -> Any:
    """The LSTM trainer the backfill calls (loads TensorFlow)."""
    from stockpred.ml.config import MLConfigError, load_ml_config
    from stockpred.ml.replay_lstm import replay_lstm

    try:
        config = load_ml_config(DataTree.from_settings(settings).ml_config)
    except MLConfigError as exc:
        raise click.ClickException(f"the LSTM's configuration: {exc}") from None
    if horizon > config.max_horizon:
        raise click.BadParameter(
            f"the LSTM forecasts at most {config.max_horizon} days ahead (max_horizon in "
            "ml_config.json): ask for fewer, or leave the LSTM out with --no-lstm",
            param_hint="--horizon",
        )

    def train(features: pd.DataFrame, rows: np.ndarray) -> tuple[str, dict[int, np.ndarray]]:
        click.echo(
            f"{symbol}: training the replay's LSTM on bars up to {features.index[rows[0]].date()}"
        )
        made = replay_lstm(
            symbol,
            bars,
            features,
            rows,
            config=config,
            band=settings.buy_threshold - 1,
            epochs=epochs,
        )
        return made.version, made.forecasts

    return train


@click.command()
@click.argument("symbols", nargs=-1)
@click.option("--from", "start", help="First day to replay (YYYY-MM-DD); default: the last --days.")
@click.option("--to", "end", help="Last day to replay (YYYY-MM-DD); default: the last bar.")
@click.option(
    "--days",
    type=click.IntRange(1, 10_000),
    default=DEFAULT_DAYS,
    show_default=True,
    help="Without --from: replay this many trading days up to --to.",
)
@click.option("--horizon", type=click.IntRange(1, 30), default=1, show_default=True)
@click.option(
    "--lstm/--no-lstm",
    default=True,
    show_default=True,
    help="Train an LSTM before the first choice window and let it compete (loads TensorFlow).",
)
@click.option("--epochs", type=click.IntRange(1, 1000), help="The LSTM's epochs (default: config).")
def backtest(
    symbols: tuple[str, ...],
    *,
    start: str | None,
    end: str | None,
    days: int,
    horizon: int,
    lstm: bool,
    epochs: int | None,
) -> None:
    """Backfill the ledger: replay SYMBOLS (default: every tracked one) day by day, no look-ahead.

    Each day gets the forecast the service would have served, from bars up to that day only;
    forecasts are stored with origin "backfill" (never over a stored one) and scored.
    """
    # Deferred: pandas, SQLAlchemy and (for --lstm) TensorFlow load only for this command.
    from stockpred.ledger.backfill import backfill
    from stockpred.ledger.database import engine_from_settings
    from stockpred.ledger.migrate import upgrade_database
    from stockpred.ledger.store import ForecastLedger
    from stockpred.ledger.tracking import TrackedSymbols, default_symbols
    from stockpred.market.errors import MarketDataError
    from stockpred.ml.dataset import NotEnoughData
    from stockpred.ml.replay import NotEnoughHistory

    first, last = _day(start, "--from"), _day(end, "--to")
    settings = cli_settings()
    try:
        upgrade_database(settings)
    except LedgerUnavailable as exc:
        raise click.ClickException(str(exc)) from None
    engine = engine_from_settings(settings)
    market = local_market(settings)
    named = [parse_symbol(s) for s in symbols]
    wanted = named or TrackedSymbols(engine, default_symbols(settings)).symbols()
    reports, failures = [], {}
    try:
        for symbol in wanted:
            try:
                bars = market.bars(symbol)
                trainer = _lstm_replay(settings, symbol, bars, epochs, horizon) if lstm else None
                report = backfill(
                    symbol,
                    bars,
                    start=first,
                    end=last,
                    days=days,
                    horizon=horizon,
                    ledger=ForecastLedger(engine),
                    market=market,
                    lstm=trainer,
                )
            except (NotEnoughHistory, NotEnoughData, MarketDataError) as exc:
                log.warning("backfill of %s skipped: %s", symbol, exc)
                failures[symbol] = str(exc)
                continue
            reports.append(report.to_dict())
            click.echo(
                f"{symbol}: {report.days} days {report.first}..{report.last}, "
                f"{report.stored} forecasts stored ({report.already_stored} were already), "
                f"served by {report.served_by}"
            )
    finally:
        engine.dispose()
    click.echo(json.dumps({"backfilled": reports, "skipped": failures}, indent=2))
    if failures and (named or not reports):
        raise click.ClickException(
            "not backfilled: " + "; ".join(f"{s}: {why}" for s, why in failures.items())
        )
