"""The validation rules: stable codes, severities, and the set-based SQL that finds each violation.

Every rule runs as one `INSERT INTO _Finding … SELECT …` per table and column inside the staging store,
with the tenant's production tables reachable (SQLite: the production store attached as `production`;
PostgreSQL: the tenant's schema, or temporary copies) so that references to objects promoted earlier
resolve. Nothing is checked row by row in Python, except the value conversions done while reading (rules
`type` and `precision`), which the reader records as it goes.

The statements are rendered for one backend by a `business.RuleDialect` (SQLite by default), so that both
backends report the same findings in the same order.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache, lru_cache
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
from sqlalchemy.dialects.postgresql import psycopg
from sqlalchemy.sql.expression import null

from efimis_etl.schema.model import (
    ENTITIES,
    ENTITY_BY_NAME,
    ENTITY_BY_PREFIX,
    Column,
    Entity,
    Kind,
)
from efimis_etl.schema.tables import PRODUCTION, STAGING
from efimis_etl.stores.base import FINDING
from efimis_etl.validation import business
from efimis_etl.validation.business import SQLITE, RuleDialect
from efimis_etl.validation.catalogue import ERROR, RULES, WARNING, Rule

__all__ = ["ERROR", "RULES", "SQLITE", "WARNING", "Rule", "RuleDialect", "run_rules"]


@cache
def _production_metadata(schema: str) -> MetaData:
    """The production tables as the rules see them: in the schema `production` names."""
    metadata = MetaData()
    for table in PRODUCTION.tables.values():
        table.to_metadata(metadata, schema=schema)
    return metadata


def _production(d: RuleDialect, entity_name: str) -> Any:
    return _production_metadata(d.production_schema).tables[f"{d.production_schema}.{entity_name}"]


def _staging(entity_name: str) -> Any:
    return STAGING.tables[entity_name]


def _findings(
    d: RuleDialect,
    rule: str,
    entity: Entity,
    query: Select[Any],
    *,
    column: str | None,
    value: ColumnElement[Any] | None,
    detail: ColumnElement[Any] | str | None,
) -> Any:
    """`INSERT INTO _Finding SELECT …` for the rows `query` selects (its first column is ImportId),
    in the order of ImportId, value and detail (binary order), so both backends number them alike."""
    severity = RULES[rule].severity
    detail_expr = literal(detail) if isinstance(detail, str) else (detail if detail is not None else null())
    import_id = query.selected_columns[0]
    shown = func.substr(d.text_expr(value), 1, 200) if value is not None else None
    order = [d.sort_expr(import_id).nulls_first()]
    if shown is not None:
        order.append(d.sort_expr(shown).nulls_first())
    if detail is not None and not isinstance(detail, str):
        order.append(d.sort_expr(detail).nulls_first())
    source = query.with_only_columns(
        literal(rule),
        literal(severity),
        literal(entity.name),
        import_id,
        literal(column) if column else null(),
        shown if shown is not None else null(),
        detail_expr,
    ).order_by(*order)
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


def _field_rules(d: RuleDialect, entity: Entity) -> Iterator[Any]:
    table = _staging(entity.name)
    for column in entity.all_columns:
        c = table.c[column.name]
        if column.required:
            empty = c.is_(None)
            if column.kind in (Kind.TEXT, Kind.LONG_TEXT, Kind.REFERENCE):
                empty = or_(empty, func.trim(c) == "")
            yield _findings(
                d,
                "required",
                entity,
                select(table.c.ImportId).where(empty, _not_already_reported(table, column.name)),
                column=column.name,
                value=None,
                detail=f"{column.name} is required",
            )
        if column.max_length is not None:
            yield _findings(
                d,
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
                d,
                "enum",
                entity,
                select(table.c.ImportId).where(c.is_not(None), c.not_in(allowed)),
                column=column.name,
                value=c,
                detail=f"{column.enumeration.name} values are {names}",
            )


def _unique_import_id(d: RuleDialect, entity: Entity) -> Any:
    table = _staging(entity.name)
    duplicated = (
        select(table.c.ImportId, func.count().label("n"))
        .where(table.c.ImportId.is_not(None))
        .group_by(table.c.ImportId)
        .having(func.count() > 1)
    )
    return _findings(
        d,
        "unique-import-id",
        entity,
        duplicated,
        column="ImportId",
        value=duplicated.selected_columns[0],
        detail=literal("ImportId used by ") + cast(duplicated.selected_columns[1], UnicodeText()) + " rows",
    )


def _reference_rules(d: RuleDialect, entity: Entity, column: Column) -> Iterator[Any]:
    assert column.target is not None
    target = ENTITY_BY_NAME[column.target]
    table = _staging(entity.name)
    value = table.c[column.name]
    # Aliased, so that a self-reference (an account's parent account) is not correlated away.
    staged = _staging(target.name).alias()
    promoted = _production(d, target.name).alias()
    own_form = d.is_reference_expr(value, target.prefix)
    other_prefixes = [p for p in ENTITY_BY_PREFIX if p != target.prefix]
    other_form = d.is_reference_expr(value, *other_prefixes)

    yield _findings(
        d,
        "reference-missing-in-production",
        entity,
        select(table.c.ImportId).where(
            own_form, not_(exists().where(promoted.c.PlatformId == d.platform_id_expr(value)))
        ),
        column=column.name,
        value=value,
        detail=f"no {target.name} with this platform id exists in production",
    )
    yield _findings(
        d,
        "reference-wrong-entity",
        entity,
        select(table.c.ImportId).where(other_form),
        column=column.name,
        value=value,
        detail=f"{column.name} must refer to a {target.name} ({target.prefix}_<id>)",
    )
    yield _findings(
        d,
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


def _date_order_rules(d: RuleDialect) -> Iterator[Any]:
    for entity_name, earlier, later in (("Matter", "OpenedOn", "ClosedOn"), ("Invoice", "IssuedOn", "DueOn")):
        table = _staging(entity_name)
        yield _findings(
            d,
            "date-order",
            ENTITY_BY_NAME[entity_name],
            select(table.c.ImportId).where(and_(table.c[later] < table.c[earlier])),
            column=later,
            value=table.c[later],
            detail=f"{later} is before {earlier}",
        )


def validation_statements(d: RuleDialect = SQLITE) -> Iterator[Any]:
    for entity in ENTITIES:
        yield from _field_rules(d, entity)
        yield _unique_import_id(d, entity)
        for column in entity.references:
            yield from _reference_rules(d, entity, column)
    yield from _date_order_rules(d)


# On PostgreSQL the rules are compiled once against this schema name, and the tenant's schema is put in
# its place: compiling costs about a second, and there is one production schema per tenant.
_PLACEHOLDER = business.postgresql("efimis_production_schema")


@cache
def _compile(d: RuleDialect) -> tuple[str, ...]:
    dialect = psycopg.dialect() if d.postgresql else sqlite.dialect()
    compiled = tuple(
        str(statement.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
        for statement in validation_statements(d)
    )
    business_rules = business.statements(d)
    if d.postgresql:
        business_rules = tuple(s.replace("%", "%%") for s in business_rules)
    return compiled + business_rules


@lru_cache(maxsize=256)
def compiled_rules(d: RuleDialect = SQLITE) -> tuple[str, ...]:
    """The rules as SQL text for one dialect (and production schema), compiled once per process: building
    and compiling ~300 statements costs far more than running them on a small import. Literals are all
    our own constants. The text is for `exec_driver_sql`: on PostgreSQL (psycopg, pyformat) a literal
    `%` is doubled, as SQLAlchemy compiles it."""
    if not d.postgresql:
        return _compile(d)
    name, schema = _PLACEHOLDER.production_schema, d.production + "."
    rules = []
    for statement in _compile(_PLACEHOLDER):
        replaced = statement.replace(f'"{name}".', schema).replace(f"{name}.", schema)
        assert name not in replaced
        rules.append(replaced)
    return tuple(rules)


def run_rules(conn: Connection, production_schema: str) -> None:
    """Run every rule on the staging store `conn` is open on (its tables unqualified), with the tenant's
    production tables under `production_schema`."""
    dialect = SQLITE if conn.dialect.name == "sqlite" else business.postgresql(production_schema)
    # The field rules read the reader's findings, so those must stay first; order among rules is fixed,
    # which keeps finding ids (and so "the first findings") stable across runs.
    for statement in compiled_rules(dialect):
        conn.exec_driver_sql(statement)
