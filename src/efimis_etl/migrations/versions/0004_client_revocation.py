"""Clients of the built-in issuer can be revoked (`efimis-etl clients revoke`): when, or NULL if active.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("oauth_client", sa.Column("revoked_at", sa.DateTime(timezone=True)))


def downgrade() -> None:
    with op.batch_alter_table("oauth_client") as table:
        table.drop_column("revoked_at")
