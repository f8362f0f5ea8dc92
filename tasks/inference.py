"""Tasks of the `inference` queue: predictions from the current model of a symbol."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from stockpred.infra.background import BackgroundWriter
from stockpred.infra.redis_client import process_client
from stockpred.market.symbols import normalize_symbol
from stockpred.ml.predict import InferenceService, ModelCache
from stockpred.ml.prediction_store import PredictionCache, PredictionJournal
from tasks import context


def service() -> InferenceService:
    """This process's inference service (models load lazily, after fork)."""

    def build() -> InferenceService:
        settings = context.settings()
        models = ModelCache(
            context.registry(), on_load=lambda _: context.report_loaded(models.loaded())
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


def flush() -> None:
    """Finish this process's pending journal and log lines (a pool child about to exit)."""
    built = context.built("inference")
    if built is not None:
        built.flush()


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
def predict(symbol: str, horizon: int = 1) -> dict[str, Any]:
    """Predict `symbol` `horizon` trading days ahead with its current model."""
    return service().predict(normalize_symbol(symbol), int(horizon))
