"""`stockpred settings`: the effective settings, secrets masked."""

from __future__ import annotations

import json

import click

from stockpred.ops.cli.common import cli_settings
from stockpred.settings import masked_url


@click.command("settings")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of NAME = value lines.")
def show_settings(as_json: bool) -> None:
    """Print the effective settings (secrets masked)."""
    settings = cli_settings()
    values = settings.masked_values()
    values["broker"] = masked_url(settings.celery_url)
    if as_json:
        click.echo(json.dumps(values, indent=2))
    else:
        for name, value in values.items():
            click.echo(f"{name:24} {value}")
