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


if __name__ == "__main__":  # pragma: no cover
    main()
