"""Train a challenger, evaluate it honestly, and publish it only if it is not worse.

The challenger and the current version are scored on the same chronological hold-out; the
challenger is published when its hold-out RMSE (1-day horizon) is not above the current one's,
or when forced. The hold-out is also a walk-forward backtest of the LSTM beside naive and drift
(`selection`): the version stores which of them serves (the champion) and its calibrated band,
so an LSTM that does not beat naive is kept and reported but does not answer.

Progress is reported after every epoch and a stop request is honoured between epochs. Nothing
is written before the end, so an interrupted run leaves the registry as it was.
"""

from __future__ import annotations

import contextlib
import logging
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from importlib.metadata import version as dist_version
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd

from stockpred.infra.clock import utcnow
from stockpred.infra.tf_runtime import tensorflow
from stockpred.jobs.errors import ErrorKind, disk_full
from stockpred.ml.config import MLConfig
from stockpred.ml.dataset import (
    NotEnoughData,
    Scalers,
    Split,
    chronological_split,
    make_windows,
)
from stockpred.ml.evaluation import evaluate
from stockpred.ml.features import compute_features
from stockpred.ml.forecast import LSTM_KIND, LoadedModel
from stockpred.ml.model import build_model, seed_everything
from stockpred.ml.registry import ModelRegistry, RegistryError, new_version
from stockpred.ml.selection import select

log = logging.getLogger(__name__)
Progress = Callable[[int, int, dict[str, float]], None]


class TrainingCancelled(Exception):
    """A stop was requested between epochs."""


class ModelDiskFull(RuntimeError):
    """The disk holding the models filled while a version was written: nothing was published."""

    kind = ErrorKind.DISK_FULL


@dataclass(frozen=True)
class TrainingResult:
    """What a training run did and why."""

    symbol: str
    version: str
    published: bool
    reason: str
    current_version: str | None
    previous_version: str | None
    epochs_run: int
    seconds: float
    evaluation: dict[str, Any]
    champion_evaluation: dict[str, Any] | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _libraries() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in ("tensorflow-cpu", "keras", "scikit-learn", "numpy", "pandas", "joblib"):
        with contextlib.suppress(Exception):
            found[name] = dist_version(name)
    return found


def _progress_callback(
    epochs: int, progress: Progress | None, should_stop: Callable[[], bool] | None
) -> Any:
    keras = tensorflow().keras

    class Report(keras.callbacks.Callback):  # type: ignore[misc,name-defined]
        """Reports each epoch and stops training when asked to."""

        cancelled = False

        def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
            if progress is not None:
                progress(epoch + 1, epochs, {k: float(v) for k, v in (logs or {}).items()})
            if should_stop is not None and should_stop():
                Report.cancelled = True
                self.model.stop_training = True

    return Report()


@dataclass(frozen=True)
class TrainingData:
    """Features, the purged chronological split and scalers fitted on its training part."""

    features: pd.DataFrame
    split: Split
    scalers: Scalers


def prepare_training_data(bars: pd.DataFrame, config: MLConfig) -> TrainingData:
    """Everything a training run feeds the model, computed from daily bars."""
    features = compute_features(bars)
    windows = make_windows(features, config.features, config.sequence_length, config.max_horizon)
    split = chronological_split(
        windows, config.holdout_fraction, config.validation_fraction, purge=config.max_horizon
    )
    return TrainingData(features, split, Scalers.fit(split.train, config.features))


def new_model(config: MLConfig) -> Any:
    """A freshly seeded, compiled model for `config`."""
    seed_everything(config.seed)
    return build_model(
        window=config.sequence_length,
        n_features=len(config.features),
        horizon=config.max_horizon,
        units=config.lstm_units,
        dropout=config.dropout,
        learning_rate=config.learning_rate,
    )


def _write_and_publish(
    registry: ModelRegistry,
    symbol: str,
    version: str,
    metadata: dict[str, Any],
    write_files: Callable[[Path, Path], None],
    *,
    keep: int,
    should_stop: Callable[[], bool] | None,
) -> None:
    """Write the version and make it current, unless the job was cancelled meanwhile."""
    if should_stop is not None and should_stop():
        # The cancel came during the last epoch or the evaluation: write and publish nothing.
        raise TrainingCancelled(f"training of {symbol} was cancelled after its last epoch")
    try:
        registry.write_version(symbol, version, metadata, write_files)
    except Exception as exc:
        _raise_if_disk_full(exc, registry, symbol, version)
        raise
    try:
        registry.publish(symbol, version)
    except Exception as exc:
        registry.discard(symbol, version)  # written, never current: it would only take space
        _raise_if_disk_full(exc, registry, symbol, version)
        raise
    registry.prune(symbol, keep)


def _raise_if_disk_full(exc: Exception, registry: ModelRegistry, symbol: str, version: str) -> None:
    if disk_full(exc):
        current = registry.current_version(symbol)
        raise ModelDiskFull(
            f"no space left on the disk holding {registry.models_dir} while version {version} "
            f"of {symbol} was written; its partial files were removed and nothing was "
            f"published (the current version, {current or 'none'}, is still served)"
        ) from exc


def train_and_publish(
    symbol: str,
    bars: pd.DataFrame,
    *,
    config: MLConfig,
    registry: ModelRegistry,
    band: float,
    epochs: int | None = None,
    force: bool = False,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
    data_source: str = "",
) -> TrainingResult:
    """Train on `bars`, compare with the current version, publish if not worse (or forced)."""
    started = time.perf_counter()
    epochs = epochs or config.epochs
    data = prepare_training_data(bars, config)
    features, split, scalers = data.features, data.split, data.scalers
    model = new_model(config)
    keras = tensorflow().keras
    report = _progress_callback(epochs, progress, should_stop)
    history = model.fit(
        scalers.transform_x(split.train.x),
        scalers.transform_y(split.train.y),
        validation_data=(
            scalers.transform_x(split.validation.x),
            scalers.transform_y(split.validation.y),
        ),
        epochs=epochs,
        batch_size=config.batch_size,
        shuffle=True,
        verbose=0,
        callbacks=[
            report,
            keras.callbacks.EarlyStopping(
                monitor="val_loss", patience=max(3, epochs // 5), restore_best_weights=True
            ),
        ],
    )
    if type(report).cancelled:
        raise TrainingCancelled(f"training of {symbol} was cancelled between epochs")
    holdout = split.holdout
    predicted = scalers.inverse_y(
        np.asarray(model.predict_on_batch(scalers.transform_x(holdout.x)))
    )
    challenger = evaluate(predicted, holdout.y, holdout.anchor_close, holdout.previous_return, band)
    origins = features.index.get_indexer(holdout.anchor_dates)
    selection = select(features, origins, predicted, config.max_horizon, band=band)

    champion_eval = None
    try:
        champion_info = registry.current(symbol)
    except RegistryError as exc:  # a current version that cannot be read is replaced
        log.warning("current %s version unreadable: %s", symbol, exc)
        champion_info, damaged_champion = None, True
    else:
        damaged_champion = False
    if champion_info is not None:
        try:
            champion = LoadedModel.load(champion_info)
            champion_pred = champion.forecast(features, origins)
            h = min(champion_pred.shape[1], holdout.y.shape[1])
            champion_eval = evaluate(
                champion_pred[:, :h],
                holdout.y[:, :h],
                holdout.anchor_close,
                holdout.previous_return,
                band,
            )
        except Exception as exc:  # a champion that cannot be scored does not block a retrain
            log.warning("could not score current %s %s: %s", symbol, champion_info.version, exc)
    if force:
        publish, reason = True, "forced"
    elif champion_eval is None:
        publish, reason = (
            True,
            "no current version to compare with"
            if champion_info is None and not damaged_champion
            else "the current version could not be scored on this hold-out",
        )
    elif challenger.model.rmse <= champion_eval.model.rmse:
        publish, reason = (
            True,
            (
                f"hold-out RMSE {challenger.model.rmse:.4f} is not worse than "
                f"the current {champion_eval.model.rmse:.4f}"
            ),
        )
    else:
        publish, reason = (
            False,
            (
                f"hold-out RMSE {challenger.model.rmse:.4f} is worse than the "
                f"current {champion_eval.model.rmse:.4f}; kept the current"
            ),
        )

    version = new_version()
    previous = registry.current_version(symbol)
    if publish:
        metadata = {
            "version": version,
            "symbol": symbol,
            "kind": LSTM_KIND,
            "trained_at": utcnow().isoformat(),
            "data": {
                "first": bars.index[0].strftime("%Y-%m-%d"),
                "last": bars.index[-1].strftime("%Y-%m-%d"),
                "rows": len(bars),
                "source": data_source,
            },
            "features": list(config.features),
            "sequence_length": config.sequence_length,
            "max_horizon": config.max_horizon,
            "forecast": "direct multi-horizon",
            "hyperparameters": {
                **config.to_dict(),
                "epochs": epochs,
                "epochs_run": len(history.history.get("loss", [])),
            },
            "split": {
                "train": len(split.train),
                "validation": len(split.validation),
                "holdout": len(holdout),
                "purge": config.max_horizon,
                "holdout_first": holdout.anchor_dates[0].strftime("%Y-%m-%d"),
                "holdout_last": holdout.anchor_dates[-1].strftime("%Y-%m-%d"),
            },
            "evaluation": {"summary": challenger.summary(), "full": challenger.to_dict()},
            **selection.metadata(),
            "libraries": _libraries(),
            "seed": config.seed,
        }

        def write_files(model_path: Path, scaler_path: Path) -> None:
            model.save(model_path)
            joblib.dump(scalers.to_joblib_payload(), scaler_path)

        _write_and_publish(
            registry,
            symbol,
            version,
            metadata,
            write_files,
            keep=config.keep_versions,
            should_stop=should_stop,
        )
    log.info(
        "trained %s: %s (%s); champion %s: %s",
        symbol,
        "published " + version if publish else "not published",
        reason,
        selection.champion.forecaster,
        selection.champion.why,
    )
    return TrainingResult(
        symbol=symbol,
        version=version,
        published=publish,
        reason=reason,
        current_version=registry.current_version(symbol),
        previous_version=previous,
        epochs_run=len(history.history.get("loss", [])),
        seconds=round(time.perf_counter() - started, 3),
        evaluation=challenger.summary(),
        champion_evaluation=None if champion_eval is None else champion_eval.summary(),
    )


__all__ = ["NotEnoughData", "TrainingCancelled", "TrainingResult", "train_and_publish"]
