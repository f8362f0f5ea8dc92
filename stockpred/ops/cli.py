"""The `stockpred` command: setup, the storage test, the process set and its Redis."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from stockpred.storage.service import StorageService

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
    from stockpred.ops.provision import run_setup

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


def _storage_service(settings: Settings) -> StorageService:
    """The storage service with a Redis connection when one answers (for the snapshot)."""
    from stockpred.infra.redis_client import connect
    from stockpred.storage.service import StorageService

    client = connect(settings)
    try:
        client.ping()
    except Exception:
        return StorageService(settings, None)
    return StorageService(settings, client)


def _via_queue(path: str, body: dict[str, object]) -> None:
    """Submit a storage job through the running service and wait for its result."""
    from stockpred.ops.api_client import ApiClient, ApiUnavailable

    client = ApiClient(_settings())
    try:
        status, answer = client.call("POST", path, body)
        if status != 202:
            raise click.ClickException(
                f"HTTP {status}: {answer.get('error')}: {answer.get('detail')}"
            )
        click.echo(f"queued job {answer['task_id']}")
        job = _follow_job(client, str(answer["task_id"]))
    except ApiUnavailable as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(json.dumps(job.get("result") or job.get("error"), indent=2, default=str))
    if job.get("state") != "succeeded":
        sys.exit(1)


def _bytes_bar(label: str) -> tuple[Any, Callable[[int, int], None]]:
    """A click progress bar fed with (done, total) byte counts."""
    bar = click.progressbar(length=1, label=label, show_pos=False)
    shown = [0]

    def update(done: int, total: int) -> None:
        bar.length = max(total, 1)
        bar.update(done - shown[0])
        shown[0] = done

    return bar, update


def _storage_call(run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    from stockpred.storage.errors import BackupError

    try:
        result = run()
    except (BackupError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    return result


_CATEGORIES_HELP = "Comma-separated: models, ml_cache, stock_data, config, logs, redis, monitoring."


def _split(raw: str | None) -> list[str] | None:
    return [c.strip() for c in raw.split(",") if c.strip()] if raw else None


@storage.command("backup")
@click.option("--categories", default=None, help=_CATEGORIES_HELP)
@click.option("--incremental", is_flag=True, help="Store only files changed since the newest full.")
@click.option("--base", default=None, help="Incremental against this backup.")
@click.option("--encrypt/--no-encrypt", default=None, help="Default: when a key is configured.")
@click.option("--queue", is_flag=True, help="Run on the maintenance worker instead.")
def storage_backup(
    categories: str | None, incremental: bool, base: str | None, encrypt: bool | None, queue: bool
) -> None:
    """Back up persistent_data to backups/stock_prediction_backup_YYYYMMDD_HHMMSS.tar.gz."""
    if queue:
        body: dict[str, object] = {
            "categories": _split(categories),
            "incremental": incremental,
            "base": base,
        }
        if encrypt is not None:
            body["encrypt"] = encrypt
        _via_queue("/api/v1/storage/backup", body)
        return
    service = _storage_service(_settings())
    bar, update = _bytes_bar("backing up")
    with bar:
        result = _storage_call(
            lambda: service.backup(
                categories=_split(categories),
                base=base,
                incremental=incremental,
                encrypt=encrypt,
                progress=update,
            )
        )
    click.echo(
        f"Backup completed: {result['path']} ({result['size']} bytes, "
        f"{result['files']} files, {result['kind']})"
    )
    if result.get("skipped"):
        click.echo(f"Skipped: {result['skipped']}", err=True)


@storage.command("restore")
@click.argument("backup", required=False)
@click.option("--categories", default=None, help=_CATEGORIES_HELP)
@click.option("--dry-run", is_flag=True, help="List what would change; change nothing.")
@click.option("--queue", is_flag=True, help="Run on the maintenance worker instead.")
def storage_restore(backup: str | None, categories: str | None, dry_run: bool, queue: bool) -> None:
    """Verify every checksum, then restore BACKUP (default: the newest) without downtime."""
    if queue:
        _via_queue(
            "/api/v1/storage/restore",
            {"backup": backup, "categories": _split(categories), "dry_run": dry_run},
        )
        return
    service = _storage_service(_settings())
    result = _storage_call(
        lambda: service.restore(name=backup, categories=_split(categories), dry_run=dry_run)
    )
    changed, added = result["changed"], result["added"]
    assert isinstance(changed, list) and isinstance(added, list)
    verb = "would change" if dry_run else "changed"
    click.echo(
        f"{result['name']}: {verb} {len(changed)} file(s), "
        f"{'would add' if dry_run else 'added'} {len(added)}, "
        f"{result['unchanged']} already identical"
    )
    for path in changed + added:
        click.echo(f"  {path}")
    if result.get("safety_backup"):
        click.echo(f"Safety backup of what was replaced: {result['safety_backup']}")
    for staged in result.get("staged") or []:
        click.echo(
            f"Redis snapshot staged at {staged}: stop Redis, put it in place as "
            "dump.rdb with appendonly off for one start, then re-enable AOF."
        )


@storage.command("cleanup")
@click.option("--dry-run", is_flag=True, help="List what would be removed.")
@click.option("--caches-only", is_flag=True, help="Only expired cache entries.")
@click.option("--queue", is_flag=True, help="Run on the maintenance worker instead.")
def storage_cleanup(dry_run: bool, caches_only: bool, queue: bool) -> None:
    """Remove expired caches, old logs and predictions, orphaned temp files."""
    scope = "caches" if caches_only else "all"
    if queue:
        _via_queue("/api/v1/storage/cleanup", {"dry_run": dry_run, "scope": scope})
        return
    service = _storage_service(_settings())
    result = _storage_call(lambda: service.cleanup(dry_run=dry_run, scope=scope))
    removed = result["removed"]
    assert isinstance(removed, list)
    for item in removed:
        click.echo(f"  {item['rule']:11} {item['bytes']:>10}  {item['path']}")
    click.echo(
        f"{'Would free' if dry_run else 'Freed'} {result['bytes_freed']} bytes in "
        f"{len(removed)} file(s)"
    )


@storage.command("monitor")
@click.option("--json", "as_json", is_flag=True, help="Print the JSON report.")
@click.option("--queue", is_flag=True, help="Run on the maintenance worker instead.")
def storage_monitor(as_json: bool, queue: bool) -> None:
    """Usage per folder, free disk, backups, caches and health checks. Exit 1 if unhealthy."""
    if queue:
        from stockpred.ops.api_client import ApiClient, ApiUnavailable

        try:
            _, report = ApiClient(_settings()).call("GET", "/api/v1/storage/status?refresh=true")
        except ApiUnavailable as exc:
            raise click.ClickException(str(exc)) from None
    else:
        service = _storage_service(_settings())
        report = service.monitor()
    if as_json:
        click.echo(json.dumps({k: v for k, v in report.items() if k != "table"}, indent=2))
    else:
        click.echo(report.get("table") or json.dumps(report, indent=2))
    sys.exit(0 if report.get("ok") else 1)


@storage.command("verify")
@click.argument("backup", required=False)
def storage_verify(backup: str | None) -> None:
    """Check every checksum of BACKUP (default: the newest) and what it depends on."""
    service = _storage_service(_settings())
    result = _storage_call(lambda: service.verify(backup))
    for problem in result["problems"]:
        click.echo(f"  {problem}", err=True)
    click.echo(
        f"{result['name']}: {'verified' if result['ok'] else 'FAILED'} "
        f"({result['files']} files, {result['bytes']} bytes in "
        f"{len(result['archives'])} archive(s), {result['seconds']:.2f}s)"
    )
    sys.exit(0 if result["ok"] else 1)


@storage.command("list")
def storage_list() -> None:
    """Backups, newest first."""
    from stockpred.storage.catalog import describe_history

    for row in describe_history(DataTree.from_settings(_settings()).backups):
        click.echo(
            f"{row['name']}  {row['kind']:11} {row['size']:>12} bytes  "
            f"{row['age_seconds'] // 3600:>5}h old  "
            f"{'encrypted ' if row['encrypted'] else ''}"
            f"{'verified' if row['verified_at'] else ''}"
        )


@storage.command("keygen")
def storage_keygen() -> None:
    """Print a new BACKUP_ENCRYPTION_KEY (put it in persistent.env and keep a copy elsewhere)."""
    from cryptography.fernet import Fernet

    click.echo(Fernet.generate_key().decode())


@main.command()
def exporter() -> None:
    """Serve worker metrics and queue, data, model and storage facts on METRICS_PORT."""
    import time

    from prometheus_client import start_http_server

    from stockpred.infra.redis_client import connect
    from stockpred.ops.exporter import exporter_registry

    settings = _settings()
    registry = exporter_registry(settings, connect(settings), settings.metrics_dir / "workers")
    start_http_server(settings.metrics_port, addr=settings.metrics_address, registry=registry)
    click.echo(f"metrics on http://{settings.metrics_address}:{settings.metrics_port}/metrics")
    while True:
        time.sleep(3600)


@main.command("redis-server")
def redis_server() -> None:
    """Run the project's redis-server in the foreground (Unix socket, or REDIS_PORT)."""
    from stockpred.ops.redis_server import PreflightError, check_redis_listener, redis_server_argv

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
    from stockpred.ops.procset import run_process_set
    from stockpred.ops.provision import run_setup
    from stockpred.ops.redis_server import PreflightError

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

    from stockpred.ops.api_client import ApiClient

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
    from stockpred.ops.api_client import ApiClient, ApiUnavailable

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
    from stockpred.ops.api_client import ApiClient, ApiUnavailable

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
    from stockpred.ml.registry import ModelRegistry, RegistryError

    registry = _registry(_settings())
    assert isinstance(registry, ModelRegistry)
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
    from stockpred.infra.redis_client import connect
    from stockpred.ml.prediction_store import PredictionCache

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
