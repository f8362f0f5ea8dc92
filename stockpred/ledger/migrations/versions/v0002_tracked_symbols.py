"""The tracked-symbol list's changes made through the API, shared by every host.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tracked_symbols",
        sa.Column("symbol", sa.String(15), nullable=False),
        sa.Column("tracked", sa.Boolean(), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("symbol", name="pk_tracked_symbols"),
    )


def downgrade() -> None:
    op.drop_table("tracked_symbols")
