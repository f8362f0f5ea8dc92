"""`stockpred models ...`: list, show, roll back, import the original service's files."""

from __future__ import annotations

import json
from pathlib import Path

import click

from stockpred.infra.redis_client import connect
from stockpred.ml.prediction_store import PredictionCache
from stockpred.ml.registry import RegistryError
from stockpred.ops.cli.common import cli_settings, local_market, model_registry, parse_symbol
from stockpred.settings import Settings


@click.group()
def models() -> None:
    """The model registry: list, show, roll back, import the original's files."""


@models.command("list")
def models_list() -> None:
    """Every symbol with a model and its current version."""
    registry = model_registry(cli_settings())
    symbols = registry.symbols()
    if not symbols:
        click.echo("no models yet: train one with `make train SYMBOL=NVDA`")
    for sym in symbols:
        try:
            info = registry.current(sym)
        except RegistryError as exc:
            click.echo(f"{sym:10} unreadable: {exc}")
            continue
        summary = ((info.metadata.get("evaluation") or {}).get("summary") or {}) if info else {}
        skill = summary.get("skill")
        click.echo(
            f"{sym:10} {registry.current_version(sym)}  versions={len(registry.versions(sym))}"
            f"  skill={'n/a' if skill is None else f'{skill:+.3f}'}"
        )


@models.command("show")
@click.argument("symbol")
def models_show(symbol: str) -> None:
    """A symbol's versions with their hold-out metrics."""
    registry = model_registry(cli_settings())
    click.echo(json.dumps(registry.describe(parse_symbol(symbol)), indent=2))


@models.command("rollback")
@click.argument("symbol")
@click.option("--to", "version", default=None, help="Version to publish (default: the previous).")
def models_rollback(symbol: str, version: str | None) -> None:
    """Publish an earlier version of SYMBOL's model (workers pick it up without restart)."""
    settings = cli_settings()
    registry = model_registry(settings)
    sym = parse_symbol(symbol)
    try:
        current = registry.rollback(sym, version)
    except RegistryError as exc:
        raise click.ClickException(str(exc)) from None
    _clear_prediction_cache(settings, sym)
    click.echo(f"{sym}: current version is now {current}")


def _clear_prediction_cache(settings: Settings, symbol: str) -> None:
    """Drop a symbol's cached predictions, if Redis is reachable (best effort)."""
    try:
        client = connect(settings)
        PredictionCache(client, settings.ml_prediction_ttl).clear(symbol)
        client.close()
    except Exception as exc:
        click.echo(
            f"note: cached predictions not cleared ({exc}); they expire by themselves", err=True
        )


@models.command("import")
@click.argument("symbol")
@click.option(
    "--model",
    "model_file",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    default=None,
    help="Default: ml_models/<symbol>_lstm_model.h5 (the original's name).",
)
@click.option(
    "--scaler",
    "scaler_file",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    default=None,
    help="Default: scalers/<symbol>_scaler.pkl.",
)
@click.option(
    "--publish/--no-publish",
    default=None,
    help="Make it current (default: only when the symbol has no model yet).",
)
def models_import(
    symbol: str, model_file: Path | None, scaler_file: Path | None, publish: bool | None
) -> None:
    """Import the original service's .h5 model and .pkl scaler as a new version."""
    # Deferred: pandas, scikit-learn and TensorFlow load only for this command.
    from stockpred.ml.legacy_import import LegacyImportError, import_legacy

    settings = cli_settings()
    sym = parse_symbol(symbol)
    model_file = model_file or settings.ml_model_path / f"{sym.lower()}_lstm_model.h5"
    scaler_file = scaler_file or settings.scalers_path / f"{sym.lower()}_scaler.pkl"
    for path in (model_file, scaler_file):
        if not path.is_file():
            raise click.ClickException(f"{path} does not exist")
    market = local_market(settings)
    try:
        result = import_legacy(
            sym,
            model_file=model_file,
            scaler_file=scaler_file,
            bars=market.bars(sym),
            registry=model_registry(settings),
            band=settings.buy_threshold - 1,
            publish=publish,
        )
    except LegacyImportError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(json.dumps(result, indent=2))
