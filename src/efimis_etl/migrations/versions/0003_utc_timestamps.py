"""Timestamps become real timestamps (TIMESTAMP WITH TIME ZONE; SQLite: its DATETIME text), in UTC.

They were VARCHAR(32) holding ISO-8601 text (`2024-05-01T09:30:00.123Z`). Each column is converted through
a new column: its text is parsed here, in Python, for both databases alike (a type change in place would
make SQLite cast the text to a number), then the old column is dropped and the new one takes its name.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# table: (its key, [(timestamp column, nullable)])
COLUMNS: dict[str, tuple[str, list[tuple[str, bool]]]] = {
    "import_request": (
        "id",
        [
            ("created_at", False),
            ("updated_at", False),
            ("import_started_at", True),
            ("import_finished_at", True),
            ("promotion_requested_at", True),
            ("promotion_started_at", True),
            ("promotion_finished_at", True),
        ],
    ),
    "audit_event": ("id", [("at", False)]),
    "oauth_client": ("client_id", [("created_at", False)]),
}
TIMESTAMP = sa.DateTime(timezone=True)
TEXT = sa.String(32)
CHUNK = 5000


def _to_timestamp(table: str, column: str, key: Any, value: Any) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        raise ValueError(
            f"{table}.{column} of row {key!r} holds {value!r}, which is not an ISO-8601 timestamp: correct "
            "or delete that row, then run `efimis-etl migrate` again."
        ) from None
    # Every value was written as UTC; one without an offset can only be UTC too.
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _to_text(table: str, column: str, key: Any, value: Any) -> str | None:
    if value is None:
        return None
    moment = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _convert(
    table: str,
    key: str,
    columns: list[tuple[str, bool]],
    old: sa.types.TypeEngine[Any],
    new: sa.types.TypeEngine[Any],
    convert: Callable[[str, str, Any, Any], Any],
) -> None:
    """Replace each column by one of type `new`, its values passed through `convert`."""
    names = [name for name, _ in columns]
    for name in names:
        op.add_column(table, sa.Column(f"{name}__new", new))
    rows = sa.table(
        table,
        sa.column(key),
        *(sa.column(n, old) for n in names),
        *(sa.column(f"{n}__new", new) for n in names),
    )
    connection = op.get_bind()
    found = connection.execute(sa.select(rows.c[key], *(rows.c[n] for n in names))).all()
    change = (
        sa.update(rows)
        .where(rows.c[key] == sa.bindparam("row_key"))
        .values({f"{n}__new": sa.bindparam(f"value_{n}") for n in names})
    )
    values = [
        {
            "row_key": row[0],
            **{f"value_{n}": convert(table, n, row[0], v) for n, v in zip(names, row[1:], strict=True)},
        }
        for row in found
    ]
    for start in range(0, len(values), CHUNK):
        connection.execute(change, values[start : start + CHUNK])
    with op.batch_alter_table(table) as batch:
        for name, nullable in columns:
            batch.drop_column(name)
            batch.alter_column(f"{name}__new", new_column_name=name, existing_type=new, nullable=nullable)


def upgrade() -> None:
    for table, (key, columns) in COLUMNS.items():
        _convert(table, key, columns, TEXT, TIMESTAMP, _to_timestamp)


def downgrade() -> None:
    for table, (key, columns) in COLUMNS.items():
        _convert(table, key, columns, TIMESTAMP, TEXT, _to_text)
