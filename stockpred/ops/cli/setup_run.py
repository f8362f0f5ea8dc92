"""Commands that set up and run the process set: setup, run, ctl, redis-server, exporter."""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

import click
from prometheus_client import start_http_server

from stockpred.infra.redis_client import connect
from stockpred.ledger.errors import LedgerUnavailable
from stockpred.ops.cli.common import cli_settings
from stockpred.ops.exporter import exporter_registry
from stockpred.ops.procset import run_process_set
from stockpred.ops.provision import run_setup
from stockpred.ops.redis_server import PreflightError, check_redis_listener, redis_server_argv
from stockpred.paths import DataTree
from stockpred.settings import SettingsError, load_settings


@click.command()
@click.option(
    "--legacy-models",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Folder of the old layout's *.h5 and *.pkl files (default: models/ beside the data root).",
)
@click.option("-q", "--quiet", is_flag=True, help="Print only what changed.")
def setup(legacy_models: Path | None, quiet: bool) -> None:
    """Create the persistent_data tree, config templates and secrets; migrate old models."""
    settings = cli_settings()
    try:
        report = run_setup(settings, legacy_models)
    except LedgerUnavailable as exc:
        raise click.ClickException(str(exc)) from None
    for line in report.lines(settings):
        if not quiet or not line.startswith(("persistent_data root", "nothing to do")):
            click.echo(line)


@click.command()
def exporter() -> None:
    """Serve worker metrics and queue, data, model and storage facts on METRICS_PORT."""
    settings = cli_settings()
    worker_metrics = DataTree.from_settings(settings).worker_metrics
    registry = exporter_registry(settings, connect(settings, fail_fast=True), worker_metrics)
    start_http_server(settings.metrics_port, addr=settings.metrics_address, registry=registry)
    click.echo(f"metrics on http://{settings.metrics_address}:{settings.metrics_port}/metrics")
    while True:
        time.sleep(3600)


@click.command("redis-server")
def redis_server() -> None:
    """Run the project's redis-server in the foreground (Unix socket, or REDIS_PORT)."""
    settings = cli_settings()
    try:
        check_redis_listener(settings)
        argv = redis_server_argv(settings)
    except PreflightError as exc:
        raise click.ClickException(str(exc)) from None
    if shutil.which(argv[0]) is None:
        raise click.ClickException("redis-server is not installed: run `make setup` (installs it)")
    os.execvp(argv[0], argv)


@click.command()
@click.option(
    "--procfile", type=click.Path(path_type=Path, dir_okay=False, exists=True), default=None
)
def run(procfile: Path | None) -> None:
    """Run Redis, the web app, three workers, beat, Flower and the exporter under supervisord."""
    try:
        report = run_setup(cli_settings())
    except LedgerUnavailable as exc:
        raise click.ClickException(str(exc)) from None
    for line in report.lines(cli_settings()):
        click.echo(line)
    try:
        settings = load_settings()  # again: setup may have generated secrets
    except SettingsError as exc:
        raise click.ClickException(f"invalid setting: {exc}") from None
    try:
        run_process_set(settings, procfile)
    except PreflightError as exc:
        raise click.ClickException(str(exc)) from None


@click.command(context_settings={"ignore_unknown_options": True})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def ctl(args: tuple[str, ...]) -> None:
    """supervisorctl on this data folder's running set: `status` (default), `restart app:web`."""
    conf = DataTree.from_settings(cli_settings()).supervisord_conf
    if not conf.is_file():
        raise click.ClickException(f"{conf} is missing: the process set was never started here")
    argv = [sys.executable, "-m", "supervisor.supervisorctl", "--configuration", str(conf)]
    os.execv(sys.executable, [*argv, *(args or ("status",))])
