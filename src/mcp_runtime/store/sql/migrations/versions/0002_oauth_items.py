"""OAuth records: clients, pending authorizations, authorization codes, grants (MCP authorization).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "oauth_items",
        sa.Column("key", sa.String(160), primary_key=True),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("expires_at", TZ, nullable=True),
        sa.Column("used_at", TZ, nullable=True),
    )
    op.create_index("ix_oauth_items_expires_at", "oauth_items", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_oauth_items_expires_at", table_name="oauth_items")
    op.drop_table("oauth_items")
