"""Which worker process started each attempt of an import (`attemptWorkers` in the status).

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("import_request", sa.Column("attempt_workers", sa.JSON()))


def downgrade() -> None:
    with op.batch_alter_table("import_request") as table:
        table.drop_column("attempt_workers")
