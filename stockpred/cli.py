"""The `stockpred` command: setup, the storage test, the process set and its Redis."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sys
from pathlib import Path

import click

from stockpred.paths import DataTree
from stockpred.settings import Settings, SettingsError, format_duration, get_settings, load_settings

SECRET_FIELDS = {"api_token", "flower_basic_auth"}


def _settings() -> Settings:
    try:
        return get_settings()
    except SettingsError as exc:
        raise click.ClickException(f"invalid setting: {exc}") from None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Stock-price predictions over Celery and Redis: operator commands."""


@main.command()
@click.option(
    "--legacy-models",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Folder of the old layout's *.h5 and *.pkl files (default: models/ beside the data root).",
)
@click.option("-q", "--quiet", is_flag=True, help="Print only what changed.")
def setup(legacy_models: Path | None, quiet: bool) -> None:
    """Create the persistent_data tree, config templates and secrets; migrate old models."""
    from stockpred.provision import run_setup

    settings = _settings()
    report = run_setup(settings, legacy_models)
    for line in report.lines(settings):
        if not quiet or not line.startswith(("persistent_data root", "nothing to do")):
            click.echo(line)


@main.command("settings")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of NAME = value lines.")
def show_settings(as_json: bool) -> None:
    """Print the effective settings (secrets masked)."""
    settings = _settings()
    values: dict[str, object] = {}
    for field in dataclasses.fields(settings):
        value = getattr(settings, field.name)
        if field.name in SECRET_FIELDS:
            value = "(set)" if value else "(not set)"
        elif hasattr(value, "total_seconds"):
            value = format_duration(value)
        values[field.name] = str(value) if isinstance(value, Path) else value
    values["broker"] = settings.celery_url
    if as_json:
        click.echo(json.dumps(values, indent=2))
    else:
        for name, value in values.items():
            click.echo(f"{name:24} {value}")


@main.group()
def storage() -> None:
    """Storage of persistent_data: checks and usage."""


@storage.command("test")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def storage_test(as_json: bool) -> None:
    """Check every folder exists, is writable and not 777; print usage. Exit 1 on a problem."""
    from stockpred.storage.check import check_storage, human_bytes

    settings = _settings()
    report = check_storage(DataTree.from_settings(settings))
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        click.echo(f"Testing persistent storage at {report.root}")
        for item in report.directories:
            mark = "ok  " if item.ok else "FAIL"
            click.echo(f"  {mark} {item.name:34} {item.problem or ''}".rstrip())
        click.echo(
            f"Storage usage: {human_bytes(report.used_bytes)} in {report.file_count} files; "
            f"free: {human_bytes(report.free_bytes)}"
        )
        if report.ok:
            click.echo("Persistent storage test passed.")
        else:
            click.echo(
                f"Persistent storage test FAILED: {len(report.problems)} problem(s).", err=True
            )
            click.echo("Run `make storage-setup` to create missing folders.", err=True)
    sys.exit(0 if report.ok else 1)


@main.command("redis-server")
def redis_server() -> None:
    """Run the project's redis-server in the foreground (Unix socket, or REDIS_PORT)."""
    from stockpred.redis_server import PreflightError, check_redis_listener, redis_server_argv

    settings = _settings()
    try:
        check_redis_listener(settings)
        argv = redis_server_argv(settings)
    except PreflightError as exc:
        raise click.ClickException(str(exc)) from None
    if shutil.which(argv[0]) is None:
        raise click.ClickException("redis-server is not installed: run `make setup` (installs it)")
    os.execvp(argv[0], argv)


@main.command()
@click.option(
    "--procfile", type=click.Path(path_type=Path, dir_okay=False, exists=True), default=None
)
def run(procfile: Path | None) -> None:
    """Start Redis, the web app, three workers, beat and Flower; Ctrl-C stops them all."""
    from stockpred.procset import run_process_set
    from stockpred.provision import run_setup
    from stockpred.redis_server import PreflightError

    report = run_setup(_settings())
    for line in report.lines(_settings()):
        click.echo(line)
    try:
        settings = load_settings()  # again: setup may have generated secrets
    except SettingsError as exc:
        raise click.ClickException(f"invalid setting: {exc}") from None
    try:
        code = run_process_set(settings, procfile)
    except PreflightError as exc:
        raise click.ClickException(str(exc)) from None
    sys.exit(code)


def _symbol(raw: str) -> str:
    from stockpred.market.symbols import InvalidSymbol, normalize_symbol

    try:
        return normalize_symbol(raw)
    except InvalidSymbol as exc:
        raise click.BadParameter(str(exc), param_hint="SYMBOL") from None


def _local_market(settings: Settings) -> object:
    from stockpred.market.factory import build_market_data

    return build_market_data(settings)


def _follow_job(client: object, job_id: str) -> dict[str, object]:
    """Poll a job, drawing its epochs as a progress bar, until it finishes."""
    import time

    from stockpred.api_client import ApiClient

    assert isinstance(client, ApiClient)
    bar = None
    shown = 0
    try:
        while True:
            status, job = client.call("GET", f"/api/v1/tasks/{job_id}")
            if status != 200:
                raise click.ClickException(f"job {job_id}: {job.get('error')} {job.get('detail')}")
            progress = job.get("progress") or {}
            if isinstance(progress, dict) and progress.get("epochs"):
                if bar is None:
                    bar = click.progressbar(length=int(progress["epochs"]), label="training")
                    bar.__enter__()
                epoch = int(progress.get("epoch") or 0)
                bar.label = (
                    f"loss {progress.get('loss') or 0:.4f} val {progress.get('val_loss') or 0:.4f}"
                )
                bar.update(epoch - shown)
                shown = epoch
            if job.get("state") in ("succeeded", "failed", "cancelled"):
                return job
            time.sleep(1)
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)


@main.command()
@click.argument("symbol")
@click.option(
    "--epochs", type=click.IntRange(1, 1000), default=None, help="Default: ml_config.json."
)
@click.option("--force", is_flag=True, help="Publish even if worse than the current version.")
@click.option("--local", is_flag=True, help="Train in this process instead of through the queue.")
@click.option("--no-wait", is_flag=True, help="Queue the job and print its id.")
def train(symbol: str, epochs: int | None, force: bool, local: bool, no_wait: bool) -> None:
    """Train SYMBOL's model (through the running service by default) and show progress."""
    sym = _symbol(symbol)
    settings = _settings()
    if local:
        from stockpred.market.service import MarketData
        from stockpred.ml.config import load_ml_config
        from stockpred.ml.registry import ModelRegistry
        from stockpred.ml.training import train_and_publish

        market = _local_market(settings)
        assert isinstance(market, MarketData)
        bar = click.progressbar(
            length=epochs or load_ml_config(settings.data_dir / "ml_config.json").epochs,
            label=f"training {sym}",
        )
        with bar:
            result = train_and_publish(
                sym,
                market.bars(sym),
                config=load_ml_config(settings.data_dir / "ml_config.json"),
                registry=ModelRegistry(settings.ml_model_path, settings.scalers_path),
                band=settings.buy_threshold - 1,
                epochs=epochs,
                force=force,
                progress=lambda epoch, total, logs: bar.update(1),
            )
        click.echo(json.dumps(result.to_dict(), indent=2))
        return
    from stockpred.api_client import ApiClient, ApiUnavailable

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
        job = _follow_job(client, job_id)
    except ApiUnavailable as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(json.dumps(job.get("result") or job.get("error"), indent=2))
    if job.get("state") != "succeeded":
        sys.exit(1)


@main.command()
@click.argument("symbol")
@click.option("--horizon", type=click.IntRange(1, 30), default=1, show_default=True)
@click.option("--local", is_flag=True, help="Predict in this process (loads TensorFlow).")
def predict(symbol: str, horizon: int, local: bool) -> None:
    """Predict SYMBOL HORIZON trading days ahead with its current model."""
    sym = _symbol(symbol)
    settings = _settings()
    if local:
        from stockpred.market.service import MarketData
        from stockpred.ml.predict import ModelCache, NoModel
        from stockpred.ml.registry import ModelRegistry

        market = _local_market(settings)
        assert isinstance(market, MarketData)
        models = ModelCache(ModelRegistry(settings.ml_model_path, settings.scalers_path))
        try:
            from stockpred.ml.features import compute_features

            loaded = models.get(sym)
            import numpy as np

            features = compute_features(market.bars(sym))
            log_returns = loaded.forecast(features, np.array([len(features) - 1]))[0]
        except NoModel as exc:
            raise click.ClickException(str(exc)) from None
        current = float(features["close"].iloc[-1])
        click.echo(
            json.dumps(
                {
                    "symbol": sym,
                    "model_version": loaded.version,
                    "as_of": features.index[-1].strftime("%Y-%m-%d"),
                    "current_price": current,
                    "predicted_price": current * float(np.exp(log_returns[horizon - 1])),
                    "horizon": horizon,
                },
                indent=2,
            )
        )
        return
    from stockpred.api_client import ApiClient, ApiUnavailable

    try:
        status, answer = ApiClient(settings).call("GET", f"/api/v1/predict/{sym}?horizon={horizon}")
    except ApiUnavailable as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(json.dumps(answer, indent=2))
    if status not in (200, 202):
        sys.exit(1)


@main.group()
def models() -> None:
    """The model registry: list, show, roll back, import the original's files."""


def _registry(settings: Settings) -> object:
    from stockpred.ml.registry import ModelRegistry

    return ModelRegistry(settings.ml_model_path, settings.scalers_path)


@models.command("list")
def models_list() -> None:
    """Every symbol with a model and its current version."""
    from stockpred.ml.registry import ModelRegistry

    registry = _registry(_settings())
    assert isinstance(registry, ModelRegistry)
    symbols = registry.symbols()
    if not symbols:
        click.echo("no models yet: train one with `make train SYMBOL=NVDA`")
    for sym in symbols:
        info = registry.current(sym)
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
    from stockpred.ml.registry import ModelRegistry

    registry = _registry(_settings())
    assert isinstance(registry, ModelRegistry)
    click.echo(json.dumps(registry.describe(_symbol(symbol)), indent=2))


@models.command("rollback")
@click.argument("symbol")
@click.option("--to", "version", default=None, help="Version to publish (default: the previous).")
def models_rollback(symbol: str, version: str | None) -> None:
    """Publish an earlier version of SYMBOL's model (workers pick it up without restart)."""
    from stockpred.ml.registry import ModelRegistry, RegistryError

    settings = _settings()
    registry = _registry(settings)
    assert isinstance(registry, ModelRegistry)
    sym = _symbol(symbol)
    try:
        current = registry.rollback(sym, version)
    except RegistryError as exc:
        raise click.ClickException(str(exc)) from None
    _clear_prediction_cache(settings, sym)
    click.echo(f"{sym}: current version is now {current}")


def _clear_prediction_cache(settings: Settings, symbol: str) -> None:
    """Drop a symbol's cached predictions, if Redis is reachable (best effort)."""
    from stockpred.ml.prediction_store import PredictionCache
    from stockpred.redis_conn import connect

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
    from stockpred.market.service import MarketData
    from stockpred.ml.legacy_import import LegacyImportError, import_legacy
    from stockpred.ml.registry import ModelRegistry

    settings = _settings()
    sym = _symbol(symbol)
    model_file = model_file or settings.ml_model_path / f"{sym.lower()}_lstm_model.h5"
    scaler_file = scaler_file or settings.scalers_path / f"{sym.lower()}_scaler.pkl"
    for path in (model_file, scaler_file):
        if not path.is_file():
            raise click.ClickException(f"{path} does not exist")
    market = _local_market(settings)
    registry = _registry(settings)
    assert isinstance(market, MarketData) and isinstance(registry, ModelRegistry)
    try:
        result = import_legacy(
            sym,
            model_file=model_file,
            scaler_file=scaler_file,
            bars=market.bars(sym),
            registry=registry,
            band=settings.buy_threshold - 1,
            publish=publish,
        )
    except LegacyImportError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(json.dumps(result, indent=2))


if __name__ == "__main__":  # pragma: no cover
    main()
