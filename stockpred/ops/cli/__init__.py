"""The `stockpred` command: one module per command group, wired onto `main` here.

`setup_run` (setup, run, ctl, redis-server, exporter), `settings_cmd` (settings), `storage`
(storage ...), `models` (models ...), `ledger` (ledger ...), `backtest` (the ledger's
backfill), `train_predict` (train, predict).
Shared helpers are in `common`. Each command imports what it needs when it runs, so
`stockpred --help` stays quick.
"""

from __future__ import annotations

import click

from stockpred.ops.cli import (
    backtest,
    ledger,
    models,
    settings_cmd,
    setup_run,
    storage,
    train_predict,
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Stock-price predictions over Celery and Redis: operator commands."""


for command in (
    setup_run.setup,
    settings_cmd.show_settings,
    storage.storage,
    setup_run.exporter,
    setup_run.redis_server,
    setup_run.run,
    setup_run.ctl,
    train_predict.train,
    train_predict.predict,
    models.models,
    ledger.ledger,
    backtest.backtest,
):
    main.add_command(command)

__all__ = ["main"]
