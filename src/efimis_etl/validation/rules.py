"""The validation rules: stable codes, severities, and the set-based SQL that finds each violation.

Every rule runs as one `INSERT INTO _Finding … SELECT …` per table and column inside the staging store,
with the tenant's production store attached as `production` so that references to objects promoted
earlier resolve. Nothing is checked row by row in Python, except the value conversions done while
reading (rules `type` and `precision`), which the reader records as it goes.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    MetaData,
    Select,
    UnicodeText,
    and_,
    cast,
    exists,
    func,
    insert,
    literal,
    not_,
    or_,
    select,
)
from sqlalchemy.dialects import sqlite
from sqlalchemy.sql.expression import null

from efimis_etl.schema.model import (
    ENTITIES,
    ENTITY_BY_NAME,
    ENTITY_BY_PREFIX,
    PLATFORM_ID_DIGITS,
    Column,
    Entity,
    Kind,
    platform_reference_glob,
)
from efimis_etl.schema.tables import PRODUCTION, STAGING
from efimis_etl.staging.store import FINDING
from efimis_etl.validation import business
from efimis_etl.validation.catalogue import ERROR, RULES, WARNING, Rule

__all__ = ["ERROR", "RULES", "WARNING", "Rule", "run_rules"]

# Staging tables, and the production tables as seen through the `production` attachment.
_PRODUCTION_ATTACHED = MetaData()
for _table in PRODUCTION.tables.values():
    _table.to_metadata(_PRODUCTION_ATTACHED, schema="production")


def _production(entity_name: str) -> Any:
    return _PRODUCTION_ATTACHED.tables[f"production.{entity_name}"]


def _staging(entity_name: str) -> Any:
    return STAGING.tables[entity_name]


def _findings(
    rule: str,
    entity: Entity,
    query: Select[Any],
    *,
    column: str | None,
    value: ColumnElement[Any] | None,
    detail: ColumnElement[Any] | str | None,
) -> Any:
    """`INSERT INTO _Finding SELECT …` for the rows `query` selects (its first column is ImportId)."""
    severity = RULES[rule].severity
    detail_expr = literal(detail) if isinstance(detail, str) else (detail if detail is not None else null())
    source = query.with_only_columns(
        literal(rule),
        literal(severity),
        literal(entity.name),
        query.selected_columns[0],
        literal(column) if column else null(),
        func.substr(value, 1, 200) if value is not None else null(),
        detail_expr,
    )
    return insert(FINDING).from_select(
        ["Rule", "Severity", "TableName", "ImportId", "ColumnName", "Value", "Detail"], source
    )


def _not_already_reported(table: Any, column: str) -> ColumnElement[bool]:
    """A value the reader rejected is NULL in staging: report its `type` finding, not also `required`."""
    return not_(
        exists().where(
            FINDING.c.TableName == table.name,
            FINDING.c.ColumnName == column,
            FINDING.c.ImportId == table.c.ImportId,
        )
    )


def _field_rules(entity: Entity) -> Iterator[Any]:
    table = _staging(entity.name)
    for column in entity.all_columns:
        c = table.c[column.name]
        if column.required:
            empty = c.is_(None)
            if column.kind in (Kind.TEXT, Kind.LONG_TEXT, Kind.REFERENCE):
                empty = or_(empty, func.trim(c) == "")
            yield _findings(
                "required",
                entity,
                select(table.c.ImportId).where(empty, _not_already_reported(table, column.name)),
                column=column.name,
                value=None,
                detail=f"{column.name} is required",
            )
        if column.max_length is not None:
            yield _findings(
                "max-length",
                entity,
                select(table.c.ImportId).where(func.length(c) > column.max_length),
                column=column.name,
                value=c,
                detail=literal(f"at most {column.max_length} characters allowed; this has ")
                + cast(func.length(c), UnicodeText())
                + literal(" characters"),
            )
        if column.enumeration is not None:
            allowed = sorted(column.enumeration.allowed)
            names = ", ".join(f"{v.value} ({v.name})" for v in column.enumeration.values)
            yield _findings(
                "enum",
                entity,
                select(table.c.ImportId).where(c.is_not(None), c.not_in(allowed)),
                column=column.name,
                value=c,
                detail=f"{column.enumeration.name} values are {names}",
            )


def _unique_import_id(entity: Entity) -> Any:
    table = _staging(entity.name)
    duplicated = (
        select(table.c.ImportId, func.count().label("n"))
        .where(table.c.ImportId.is_not(None))
        .group_by(table.c.ImportId)
        .having(func.count() > 1)
    )
    return _findings(
        "unique-import-id",
        entity,
        duplicated,
        column="ImportId",
        value=duplicated.selected_columns[0],
        detail=literal("ImportId used by ") + cast(duplicated.selected_columns[1], UnicodeText()) + " rows",
    )


def _is_platform_reference_of(value: ColumnElement[Any], prefix: str) -> ColumnElement[bool]:
    return value.op("GLOB", is_comparison=True)(platform_reference_glob(prefix))


def _platform_id_of(value: ColumnElement[Any]) -> ColumnElement[Any]:
    return func.substr(value, -PLATFORM_ID_DIGITS)


def _reference_rules(entity: Entity, column: Column) -> Iterator[Any]:
    assert column.target is not None
    target = ENTITY_BY_NAME[column.target]
    table = _staging(entity.name)
    value = table.c[column.name]
    # Aliased, so that a self-reference (an account's parent account) is not correlated away.
    staged = _staging(target.name).alias()
    promoted = _production(target.name).alias()
    own_form = _is_platform_reference_of(value, target.prefix)
    other_prefixes = [p for p in ENTITY_BY_PREFIX if p != target.prefix]
    other_form = or_(*(_is_platform_reference_of(value, p) for p in other_prefixes))

    yield _findings(
        "reference-missing-in-production",
        entity,
        select(table.c.ImportId).where(
            own_form, not_(exists().where(promoted.c.PlatformId == _platform_id_of(value)))
        ),
        column=column.name,
        value=value,
        detail=f"no {target.name} with this platform id exists in production",
    )
    yield _findings(
        "reference-wrong-entity",
        entity,
        select(table.c.ImportId).where(other_form),
        column=column.name,
        value=value,
        detail=f"{column.name} must refer to a {target.name} ({target.prefix}_<id>)",
    )
    yield _findings(
        "reference-unresolved",
        entity,
        select(table.c.ImportId).where(
            value.is_not(None),
            func.trim(value) != "",
            not_(own_form),
            not_(other_form),
            not_(exists().where(staged.c.ImportId == value)),
            not_(exists().where(promoted.c.ImportId == value)),
        ),
        column=column.name,
        value=value,
        detail=f"no {target.name} has this ImportId in this import or in production",
    )


def _date_order_rules() -> Iterator[Any]:
    for entity_name, earlier, later in (("Matter", "OpenedOn", "ClosedOn"), ("Invoice", "IssuedOn", "DueOn")):
        table = _staging(entity_name)
        yield _findings(
            "date-order",
            ENTITY_BY_NAME[entity_name],
            select(table.c.ImportId).where(and_(table.c[later] < table.c[earlier])),
            column=later,
            value=table.c[later],
            detail=f"{later} is before {earlier}",
        )


def validation_statements() -> Iterator[Any]:
    for entity in ENTITIES:
        yield from _field_rules(entity)
        yield _unique_import_id(entity)
        for column in entity.references:
            yield from _reference_rules(entity, column)
    yield from _date_order_rules()


@cache
def _compiled_rules() -> tuple[str, ...]:
    """The rules as SQLite text, compiled once per process: building and compiling ~300 statements
    costs far more than running them on a small import. Literals are all our own constants."""
    dialect = sqlite.dialect()
    compiled = tuple(
        str(statement.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
        for statement in validation_statements()
    )
    return compiled + business.statements()


def run_rules(conn: Connection) -> None:
    """Run every rule on the staging store `conn` is open on (production attached as `production`)."""
    # The field rules read the reader's findings, so those must stay first; order among rules is fixed,
    # which keeps finding ids (and so "the first findings") stable across runs.
    for statement in _compiled_rules():
        conn.exec_driver_sql(statement)
