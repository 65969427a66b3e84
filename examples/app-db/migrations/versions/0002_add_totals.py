"""Each order keeps its total, in cents.

Revision ID: 0002_add_totals
Revises: 0001_init
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_add_totals"
down_revision = "0001_init"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("orders", sa.Column("total_cents", sa.BigInteger, nullable=False, server_default="0"))
    op.create_check_constraint("orders_total_not_negative", "orders", "total_cents >= 0")


def downgrade() -> None:
    op.drop_constraint("orders_total_not_negative", "orders", type_="check")
    op.drop_column("orders", "total_cents")
