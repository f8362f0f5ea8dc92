"""Alembic's environment for the ledger: migrate on the connection `stockpred.ledger.migrate`
passes, inside its transaction (DDL is transactional on PostgreSQL and, as we drive it, SQLite).
"""

from __future__ import annotations

from alembic import context

from stockpred.ledger.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None or context.is_offline_mode():
    raise RuntimeError(
        "the ledger's migrations run through `stockpred ledger upgrade`, on a live connection"
    )
context.configure(connection=connection, target_metadata=metadata)
with context.begin_transaction():
    context.run_migrations()
