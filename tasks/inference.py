"""Tasks of the `inference` queue: predictions from the current model of a symbol."""

from __future__ import annotations

from typing import Any

from celery import current_app, shared_task

from stockpred.infra.background import BackgroundWriter
from stockpred.infra.redis_client import process_client
from stockpred.ledger.entries import ORIGINS
from stockpred.ledger.recorder import ForecastRecorder
from stockpred.market.symbols import normalize_symbol
from stockpred.ml.predict import InferenceService, ModelCache
from stockpred.ml.prediction_store import PredictionCache, PredictionJournal
from stockpred.telemetry.worker_metrics import worker_metrics
from tasks import context


def service() -> InferenceService:
    """This process's inference service (models load lazily, after fork)."""

    def build() -> InferenceService:
        settings = context.settings()
        models = ModelCache(
            context.registry(),
            on_load=lambda _: context.report_loaded(models.loaded()),
            max_models=settings.model_cache_size,
        )
        return InferenceService(
            models=models,
            refresh=context.market().refresh,
            history=context.market().history_frame,
            cache=PredictionCache(
                process_client(settings), settings.ml_prediction_ttl, context.deferred_writes()
            ),
            journal=PredictionJournal(context.data_tree().predictions_daily),
            writer=BackgroundWriter("prediction-journal"),
            buy_threshold=settings.buy_threshold,
            sell_threshold=settings.sell_threshold,
        )

    return context._memo("inference", build)


def recorder() -> ForecastRecorder:
    """This process's ledger recorder; a failed write becomes a `maintenance.record_forecasts`.

    Built on the task's thread: Celery's current app is per thread, the writer thread has none.
    """
    app = current_app._get_current_object()

    def defer(forecasts: list[dict[str, Any]]) -> None:
        app.send_task("maintenance.record_forecasts", kwargs={"forecasts": forecasts})

    return context._memo(
        "forecast-recorder",
        lambda: ForecastRecorder(context.ledger, defer, worker_metrics().ledger_writes),
    )


def ledger_writer() -> BackgroundWriter:
    """The thread that writes forecasts into the ledger, off the prediction's path."""
    return context._memo("ledger-writer", lambda: BackgroundWriter("forecast-ledger"))


def flush() -> None:
    """Finish this process's pending journal, log lines and ledger writes (a child exiting)."""
    built = context.built("inference")
    if built is not None:
        built.flush()
    writer = context.built("ledger-writer")
    if writer is not None:
        writer.flush()


# Celery reprs every result for its "succeeded" log line whether or not it logs it; a full
# prediction's repr is a visible part of the task, cut to this size it is not (the whole result
# is in the job record and prediction.log).
RESULT_REPR_CHARS = 120


@shared_task(
    name="inference.predict",
    acks_late=True,
    resultrepr_maxsize=RESULT_REPR_CHARS,
    # A prediction takes milliseconds: its job record goes from queued to its outcome, with
    # started_at written then (workers.task_base); no separate write on the task's path.
    # Time limits: the inference queue's (celeryconfig.QueueTimeLimits).
    track_started=False,
)
def predict(symbol: str, horizon: int = 1, origin: str = "request") -> dict[str, Any]:
    """Predict `symbol` `horizon` trading days ahead with its current model; ledger it.

    `origin` says why (request, daily, backfill); the forecasts are written to the ledger on a
    background thread, so a slow or failing database never delays or fails the prediction.
    """
    if origin not in ORIGINS:
        raise ValueError(f"origin must be one of {', '.join(ORIGINS)}, not {origin!r}")
    result = service().predict(normalize_symbol(symbol), int(horizon))
    record = recorder().record_result
    ledger_writer().submit(lambda: record(result, origin=origin))
    return result
