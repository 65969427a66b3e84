"""Refunds of an order: the migration the demo's database rollback reverses.

Revision ID: 0003_add_refunds
Revises: 0002_add_totals
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_add_refunds"
down_revision = "0002_add_totals"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "refunds",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("order_id", sa.BigInteger, sa.ForeignKey("orders.id"), nullable=False),
        sa.Column("amount_cents", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )


def downgrade() -> None:
    op.drop_table("refunds")
