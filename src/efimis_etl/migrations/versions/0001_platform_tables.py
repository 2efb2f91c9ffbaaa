"""The platform's tables: import requests, per-table progress, audit events, OAuth clients, queued secrets.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "import_request",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("tenant", sa.String(63), nullable=False, index=True),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("source", sa.UnicodeText, nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("updated_at", sa.String(32), nullable=False),
        sa.Column("import_started_at", sa.String(32)),
        sa.Column("import_finished_at", sa.String(32)),
        sa.Column("promotion_requested_at", sa.String(32)),
        sa.Column("promotion_started_at", sa.String(32)),
        sa.Column("promotion_finished_at", sa.String(32)),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("failure_code", sa.String(60)),
        sa.Column("failure_reason", sa.UnicodeText),
        sa.Column("validation", sa.JSON),
        sa.Column("promotion", sa.JSON),
    )
    op.create_table(
        "import_table",
        sa.Column("request_id", sa.String(32), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("name", sa.String(60), nullable=False),
        sa.Column("rows_expected", sa.Integer),
        sa.Column("rows_read", sa.Integer, nullable=False),
        sa.Column("rows_loaded", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("request_id", "name"),
    )
    op.create_table(
        "audit_event",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", sa.String(32), nullable=False),
        sa.Column("tenant", sa.String(63), nullable=False, index=True),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.Column("action", sa.String(40), nullable=False),
        sa.Column("request_id", sa.String(32)),
        sa.Column("remote_address", sa.String(64)),
        sa.Column("outcome", sa.String(40), nullable=False),
        sa.Column("detail", sa.UnicodeText),
    )
    op.create_table(
        "oauth_client",
        sa.Column("client_id", sa.String(100), primary_key=True),
        sa.Column("secret_hash", sa.String(200), nullable=False),
        sa.Column("tenant", sa.String(63), nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
    )
    op.create_table(
        "import_secret",
        sa.Column("request_id", sa.String(32), primary_key=True),
        sa.Column("ciphertext", sa.LargeBinary, nullable=False),
    )


def downgrade() -> None:
    for table in ("import_secret", "oauth_client", "audit_event", "import_table", "import_request"):
        op.drop_table(table)
