"""`stockpred train` and `stockpred predict`: through the running service, or in this process.

`--local` runs the very code a worker runs: `train_and_publish` for training, and the inference
worker's `InferenceService` for a prediction (journaled like any other; not put in the Redis
cache, so no Redis is needed).
"""

from __future__ import annotations

import json
import logging
import sys
from typing import TYPE_CHECKING, Any

import click

from stockpred.infra.background import BackgroundWriter
from stockpred.ml.config import load_ml_config
from stockpred.ml.prediction_store import PredictionCache, PredictionJournal
from stockpred.ops.api_client import ApiClient, ApiUnavailable
from stockpred.ops.cli.common import (
    cli_settings,
    follow_job,
    local_market,
    model_registry,
    parse_symbol,
)
from stockpred.paths import DataTree
from stockpred.settings import Settings

if TYPE_CHECKING:
    from stockpred.ml.predict import InferenceService

log = logging.getLogger(__name__)


@click.command()
@click.argument("symbol")
@click.option(
    "--epochs", type=click.IntRange(1, 1000), default=None, help="Default: ml_config.json."
)
@click.option("--force", is_flag=True, help="Publish even if worse than the current version.")
@click.option("--local", is_flag=True, help="Train in this process instead of through the queue.")
@click.option("--no-wait", is_flag=True, help="Queue the job and print its id.")
def train(symbol: str, epochs: int | None, force: bool, local: bool, no_wait: bool) -> None:
    """Train SYMBOL's model (through the running service by default) and show progress."""
    sym = parse_symbol(symbol)
    settings = cli_settings()
    if local:
        _train_here(settings, sym, epochs=epochs, force=force)
        return

    client = ApiClient(settings)
    body: dict[str, object] = {"force": force}
    if epochs is not None:
        body["epochs"] = epochs
    try:
        status, answer = client.call("POST", f"/api/v1/train/{sym}", body)
        if status != 202:
            raise click.ClickException(
                f"HTTP {status}: {answer.get('error')}: {answer.get('detail')}"
            )
        job_id = str(answer["task_id"])
        click.echo(f"queued training job {job_id}")
        if no_wait:
            return
        job = follow_job(client, job_id)
    except ApiUnavailable as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(json.dumps(job.get("result") or job.get("error"), indent=2))
    if job.get("state") != "succeeded":
        sys.exit(1)


def _train_here(settings: Settings, sym: str, *, epochs: int | None, force: bool) -> None:
    """Train and publish in this process, with a progress bar of epochs."""
    # Deferred: pandas, scikit-learn and TensorFlow load only for a local training.
    from stockpred.ml.training import train_and_publish

    market = local_market(settings)
    config = load_ml_config(DataTree.from_settings(settings).ml_config)
    bar = click.progressbar(length=epochs or config.epochs, label=f"training {sym}")
    with bar:
        result = train_and_publish(
            sym,
            market.bars(sym),
            config=config,
            registry=model_registry(settings),
            band=settings.buy_threshold - 1,
            epochs=epochs,
            force=force,
            progress=lambda epoch, total, logs: bar.update(1),
        )
    click.echo(json.dumps(result.to_dict(), indent=2))


@click.command()
@click.argument("symbol")
@click.option("--horizon", type=click.IntRange(1, 30), default=1, show_default=True)
@click.option("--local", is_flag=True, help="Predict in this process (loads TensorFlow).")
def predict(symbol: str, horizon: int, local: bool) -> None:
    """Predict SYMBOL HORIZON trading days ahead with its current model."""
    sym = parse_symbol(symbol)
    settings = cli_settings()
    if local:
        click.echo(json.dumps(_predict_here(settings, sym, horizon), indent=2))
        return

    try:
        status, answer = ApiClient(settings).call("GET", f"/api/v1/predict/{sym}?horizon={horizon}")
    except ApiUnavailable as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(json.dumps(answer, indent=2))
    if status not in (200, 202):
        sys.exit(1)


def _predict_here(settings: Settings, sym: str, horizon: int) -> dict[str, Any]:
    """The inference worker's answer, computed in this process."""
    # Deferred: pandas, scikit-learn and TensorFlow load only for a local prediction.
    from stockpred.ml.predict import HorizonUnsupported, NoModel

    service = local_inference(settings)
    try:
        result = service.predict(sym, horizon)
    except (NoModel, HorizonUnsupported) as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        service.flush()
    _record_here(settings, result)
    return result


def _record_here(settings: Settings, result: dict[str, Any]) -> None:
    """Keep the computed forecast in the ledger, as a worker would; say so when it cannot."""
    from sqlalchemy.exc import SQLAlchemyError

    from stockpred.ledger.database import engine_from_settings
    from stockpred.ledger.recording import forecasts_of
    from stockpred.ledger.store import ForecastLedger

    engine = engine_from_settings(settings)
    try:
        stored = ForecastLedger(engine).record_many(forecasts_of(result))
    except SQLAlchemyError as exc:
        log.error("the forecast of %s was not recorded in the ledger: %s", result["symbol"], exc)
        click.echo(f"warning: not recorded in the ledger: {exc}", err=True)
        return
    finally:
        engine.dispose()
    click.echo(f"recorded {stored} new forecast(s) in the ledger", err=True)


def local_inference(settings: Settings) -> InferenceService:
    """The inference service as `tasks.inference` builds it, minus the shared Redis cache."""
    # Deferred: pandas, scikit-learn and TensorFlow load only for a local prediction.
    from stockpred.ml.predict import InferenceService, ModelCache

    class _Uncached(PredictionCache):
        """Keeps nothing: a prediction made here is for this command's output only."""

        def __init__(self) -> None:
            """Hold no Redis client."""

        def put(self, key: str, encoded: str) -> None:
            """Drop the result."""

        def flush(self) -> None:
            """Nothing is pending."""

    market = local_market(settings)
    return InferenceService(
        models=ModelCache(model_registry(settings), max_models=settings.model_cache_size),
        refresh=market.refresh,
        history=market.history_frame,
        cache=_Uncached(),
        journal=PredictionJournal(DataTree.from_settings(settings).predictions_daily),
        writer=BackgroundWriter("prediction-journal"),
        buy_threshold=settings.buy_threshold,
        sell_threshold=settings.sell_threshold,
    )
