"""`stockpred ledger ...`: migrate the forecast ledger's database, show it, score due forecasts."""

from __future__ import annotations

import json

import click

from stockpred.ledger.errors import LedgerUnavailable
from stockpred.ops.cli.common import cli_settings, local_market


@click.group()
def ledger() -> None:
    """The forecast ledger: its database schema, what it holds, scoring."""


@ledger.command("upgrade")
def ledger_upgrade() -> None:
    """Create or upgrade the ledger's tables (DATABASE_URL, default SQLite in persistent_data)."""
    # Deferred: SQLAlchemy and Alembic load only for the ledger's commands.
    from stockpred.ledger.migrate import upgrade_database

    try:
        migration = upgrade_database(cli_settings())
    except LedgerUnavailable as exc:
        raise click.ClickException(str(exc)) from None
    if migration.changed:
        click.echo(
            f"ledger {migration.database}: migrated from {migration.before or 'empty'} "
            f"to {migration.after}"
        )
    else:
        click.echo(f"ledger {migration.database}: at {migration.after}, nothing to do")


@ledger.command("status")
def ledger_status() -> None:
    """The ledger's database (password masked), its revision and how many forecasts it holds."""
    from sqlalchemy.exc import DBAPIError

    from stockpred.ledger.database import engine_from_settings, shown_url
    from stockpred.ledger.migrate import current_revision, head_revision
    from stockpred.ledger.store import ForecastLedger

    engine = engine_from_settings(cli_settings())
    try:
        revision = current_revision(engine)
        head = head_revision()
        counts = ForecastLedger(engine).counts().to_dict() if revision == head else None
    except DBAPIError as exc:
        raise click.ClickException(
            f"the ledger's database {shown_url(engine.url)} cannot be read: {exc.orig}"
        ) from None
    finally:
        engine.dispose()
    status = {"database": shown_url(engine.url), "revision": revision, "head": head}
    click.echo(json.dumps({**status, "counts": counts}, indent=2))
    if revision != head:
        raise click.ClickException(
            "the ledger is not at the head revision: run `stockpred ledger upgrade`"
        )


@ledger.command("score")
def ledger_score() -> None:
    """Score every forecast whose target date has a closing price (reads prices in this process)."""
    from stockpred.ledger.database import engine_from_settings
    from stockpred.ledger.service import score_due
    from stockpred.ledger.store import ForecastLedger

    settings = cli_settings()
    engine = engine_from_settings(settings)
    try:
        report = score_due(ledger=ForecastLedger(engine), market=local_market(settings))
    finally:
        engine.dispose()
    click.echo(json.dumps(report.to_dict(), indent=2))
