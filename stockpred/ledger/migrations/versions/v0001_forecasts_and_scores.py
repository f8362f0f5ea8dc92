"""The forecast ledger: forecasts (append-only, one per natural key) and their scores.

Revision ID: 0001
Revises:
Create Date: 2026-11-20
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UTC_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "forecasts",
        sa.Column("id", ROW_ID, primary_key=True, autoincrement=True),
        sa.Column("symbol", sa.String(15), nullable=False),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("target_date", sa.Date(), nullable=False),
        sa.Column("horizon", sa.Integer(), nullable=False),
        sa.Column("forecaster", sa.String(32), nullable=False),
        sa.Column("model_version", sa.String(64), nullable=False),
        sa.Column("point", sa.Double(), nullable=False),
        sa.Column("lower", sa.Double(), nullable=True),
        sa.Column("upper", sa.Double(), nullable=True),
        sa.Column("level", sa.Double(), nullable=True),
        sa.Column("naive", sa.Double(), nullable=False),
        sa.Column("requested_at", UTC_TIME, nullable=False),
        sa.Column("origin", sa.String(16), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_forecasts"),
        sa.UniqueConstraint(
            "symbol",
            "as_of",
            "target_date",
            "horizon",
            "forecaster",
            "model_version",
            name="uq_forecasts_natural_key",
        ),
        sa.CheckConstraint("horizon >= 1", name="ck_forecasts_horizon_positive"),
        sa.CheckConstraint("target_date > as_of", name="ck_forecasts_target_after_as_of"),
        sa.CheckConstraint(
            "(lower IS NULL AND upper IS NULL AND level IS NULL) OR "
            "(lower IS NOT NULL AND upper IS NOT NULL AND level IS NOT NULL AND lower <= upper "
            "AND level > 0 AND level < 1)",
            name="ck_forecasts_interval_whole",
        ),
    )
    op.create_index("ix_forecasts_symbol_target_date", "forecasts", ["symbol", "target_date"])
    op.create_index("ix_forecasts_target_date", "forecasts", ["target_date"])
    op.create_table(
        "scores",
        sa.Column("forecast_id", ROW_ID, nullable=False),
        sa.Column("actual", sa.Double(), nullable=False),
        sa.Column("previous_close", sa.Double(), nullable=False),
        sa.Column("abs_error", sa.Double(), nullable=False),
        sa.Column("pct_error", sa.Double(), nullable=False),
        sa.Column("direction_hit", sa.Boolean(), nullable=False),
        sa.Column("inside", sa.Boolean(), nullable=True),
        sa.Column("naive_abs_error", sa.Double(), nullable=False),
        sa.Column("naive_pct_error", sa.Double(), nullable=False),
        sa.Column("naive_direction_hit", sa.Boolean(), nullable=False),
        sa.Column("scored_at", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint("forecast_id", name="pk_scores"),
        sa.ForeignKeyConstraint(
            ["forecast_id"], ["forecasts.id"], name="fk_scores_forecast_id_forecasts"
        ),
    )


def downgrade() -> None:
    op.drop_table("scores")
    op.drop_index("ix_forecasts_target_date", table_name="forecasts")
    op.drop_index("ix_forecasts_symbol_target_date", table_name="forecasts")
    op.drop_table("forecasts")
