"""`stockpred settings`: the effective settings, secrets masked."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import click

from stockpred.ops.cli.common import cli_settings
from stockpred.settings import format_duration

SECRET_FIELDS = {"api_token", "flower_basic_auth"}


@click.command("settings")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of NAME = value lines.")
def show_settings(as_json: bool) -> None:
    """Print the effective settings (secrets masked)."""
    settings = cli_settings()
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
